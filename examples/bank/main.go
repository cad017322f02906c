// Command bank replays the classic two-phase-commit story: move 100 from
// account A at bank1 to account B at bank2, atomically.
//
//	go run ./examples/bank
//
// Three scenes, on an in-memory network, printing every message and every
// state change (log writes, votes, decisions, applied commits):
//
//  1. Success: both banks vote YES, the coordinator logs COMMIT, both apply.
//  2. Insufficient funds: bank1 votes NO, the transfer aborts, nothing moves.
//  3. The coordinator crashes right after logging its decision, before any
//     COMMIT leaves. Both banks are in doubt, holding their locks, asking
//     for the outcome; a new coordinator recovers the decision from the log
//     and completes the commit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
	"github.com/distkit/distkit/txn"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

// printer serializes the output of the nodes' goroutines.
type printer struct {
	mu sync.Mutex // guards w
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// tracer is a transport.Transport that prints every message sent through
// it, and marks those lost because the sender or the receiver is down.
type tracer struct {
	transport.Transport
	net *memnet.Network
	out *printer
}

func (t *tracer) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	line := fmt.Sprintf("    %-11s → %-11s %s", t.ID(), to, describe(payload))
	if t.net.Crashed(t.ID()) || t.net.Crashed(to) {
		line += "   ✗ lost (node down)"
	}
	t.out.printf("%s\n", line)
	return t.Transport.Send(ctx, to, service, payload)
}

func describe(payload []byte) string {
	m, err := txn.UnmarshalMessage(payload)
	if err != nil {
		return "(malformed)"
	}
	if m.Type == txn.MsgDecision && m.Outcome == txn.Unknown {
		return "STILL VOTING"
	}
	return strings.Replace(m.String(), " "+m.Txn.String()[:8], "", 1)
}

// stateLog is a slog.Handler that prints the drivers' state changes.
type stateLog struct {
	out   *printer
	attrs []slog.Attr
}

func (h *stateLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *stateLog) Handle(_ context.Context, r slog.Record) error {
	var node, detail string
	attrs := append([]slog.Attr(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool { attrs = append(attrs, a); return true })
	for _, a := range attrs {
		switch a.Key {
		case "coordinator", "participant":
			node = a.Value.String()
		case "record":
			detail = a.Value.String()
		case "yes":
			if a.Value.Bool() {
				detail = "prepares: its locks are taken, it can vote YES"
			}
		case "err":
			if a.Value.Any() != nil {
				detail = fmt.Sprintf("cannot prepare (%v): it votes NO", a.Value)
			}
		case "outcome":
			detail = "decided: " + a.Value.String()
		}
	}
	switch r.Message {
	case "txn: log":
		switch kind := strings.SplitN(detail, " ", 2)[0]; kind {
		case "BEGIN", "END":
			// Lazy records: written with the next batch, nothing waits.
			h.out.printf("  %-11s writes %s to its log (lazily: nothing waited for it)\n", node, kind)
		default:
			h.out.printf("  %-11s writes %s to its log\n", node, kind)
		}
	case "txn: prepared":
		h.out.printf("  %-11s %s\n", node, detail)
	case "txn: commit applied":
		h.out.printf("  %-11s applies the commit, releases its locks\n", node)
	case "txn: abort applied":
		h.out.printf("  %-11s releases its locks\n", node)
	case "txn: decided":
		h.out.printf("  %-11s %s\n", node, detail)
	case "txn: recovered":
		h.out.printf("  %-11s recovers: a COMMIT in its log awaits acknowledgements\n", node)
	}
	return nil
}

func (h *stateLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &stateLog{out: h.out, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *stateLog) WithGroup(string) slog.Handler { return h }

// crashAfterCommit is a txn.Log that takes the coordinator off the network
// right after its COMMIT record is durable: the process dies between its
// decision and its first COMMIT message.
type crashAfterCommit struct {
	txn.Log
	mu      sync.Mutex // guards armed
	armed   bool
	crash   func()
	crashed chan struct{}
}

func (l *crashAfterCommit) Append(recs []txn.Record) error {
	if err := l.Log.Append(recs); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range recs {
		if r.Type == txn.RecCommit && l.armed {
			l.armed = false
			l.crash()
			close(l.crashed)
		}
	}
	return nil
}

func run(w io.Writer) error {
	out := &printer{w: w}
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		return err
	}
	defer net.Close()
	cfg := txn.DefaultConfig()
	cfg.RetryInterval = 60 * time.Millisecond
	cfg.TickInterval = 10 * time.Millisecond
	cfg.Logger = slog.New(&stateLog{out: out})

	join := func(id transport.NodeID) (transport.Transport, error) {
		tr, err := net.Join(id)
		if err != nil {
			return nil, err
		}
		return &tracer{Transport: tr, net: net, out: out}, nil
	}
	stores := map[transport.NodeID]*txn.Store{}
	for _, bank := range []transport.NodeID{"bank1", "bank2"} {
		tr, err := join(bank)
		if err != nil {
			return err
		}
		stores[bank] = txn.NewStore()
		p, err := txn.NewParticipant(tr, txn.NewMemoryLog(), stores[bank], cfg)
		if err != nil {
			return err
		}
		defer p.Close()
	}
	stores["bank1"].Set("A", 100)
	stores["bank2"].Set("B", 0)
	ctr, err := join("coordinator")
	if err != nil {
		return err
	}
	clog := &crashAfterCommit{Log: txn.NewMemoryLog(), crash: func() { net.Crash("coordinator") }, crashed: make(chan struct{})}
	coord, err := txn.NewCoordinator(ctr, clog, cfg)
	if err != nil {
		return err
	}
	defer func() { coord.Close() }()

	balances := func() {
		a, _ := stores["bank1"].Get("A")
		b, _ := stores["bank2"].Get("B")
		out.printf("  balances: A@bank1 = %d, B@bank2 = %d\n\n", a, b)
	}
	debit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "A", Amount: -100})
	credit, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "B", Amount: 100})
	work := []txn.Work{{Participant: "bank1", Ops: debit}, {Participant: "bank2", Ops: credit}}
	ctx := context.Background()

	out.printf("Scene 1: transfer 100 from A@bank1 to B@bank2\n")
	balances()
	if _, err := coord.Run(ctx, work...); err != nil {
		return fmt.Errorf("scene 1: %w", err)
	}
	if err := coord.Quiesce(ctx); err != nil {
		return err
	}
	out.printf("  outcome: committed\n")
	balances()

	out.printf("Scene 2: transfer 100 again; A holds 0\n")
	_, err = coord.Run(ctx, work...)
	var abort *txn.AbortError
	if !errors.As(err, &abort) {
		return fmt.Errorf("scene 2: %v; want an abort", err)
	}
	if err := coord.Quiesce(ctx); err != nil {
		return err
	}
	out.printf("  outcome: aborted, %v voted NO: %s\n", abort.Participants, abort.Reason)
	balances()

	out.printf("Scene 3: A receives 100; transfer it; the coordinator crashes right after logging COMMIT\n")
	stores["bank1"].Set("A", 100)
	clog.mu.Lock()
	clog.armed = true
	clog.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = coord.Run(ctx, work...) // its answer dies with the process
	}()
	<-clog.crashed
	coord.Close() // the process is gone
	<-done
	out.printf("  -- coordinator crashed; both banks voted YES and are in doubt, holding %d locks --\n",
		stores["bank1"].Locked()+stores["bank2"].Locked())
	time.Sleep(5 * cfg.RetryInterval) // let the banks ask around, in vain
	out.printf("  -- the banks also ask each other, but both are in doubt: this is 2PC's blocking case --\n")
	out.printf("  -- coordinator restarts and reads its log --\n")
	if err := net.Restart("coordinator"); err != nil {
		return err
	}
	if coord, err = txn.NewCoordinator(ctr, clog.Log, cfg); err != nil {
		return err
	}
	if err := coord.Quiesce(ctx); err != nil {
		return err
	}
	out.printf("  outcome: committed by the recovered coordinator; %d locks held\n",
		stores["bank1"].Locked()+stores["bank2"].Locked())
	balances()
	return nil
}
