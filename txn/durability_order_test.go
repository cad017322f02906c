package txn_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
)

// decisionLog is a Log that remembers which COMMIT records are durable
// (their Append has returned).
type decisionLog struct {
	txn.Log
	// mu guards durable.
	mu      sync.Mutex
	durable map[uuid.UUID]bool
}

func (l *decisionLog) Append(recs []txn.Record) error {
	err := l.Log.Append(recs)
	if err == nil {
		l.mu.Lock()
		for _, r := range recs {
			if r.Type == txn.RecCommit {
				l.durable[r.Txn] = true
			}
		}
		l.mu.Unlock()
	}
	return err
}

func (l *decisionLog) isDurable(id uuid.UUID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durable[id]
}

// orderCheckingTransport checks, for every COMMIT message the coordinator
// sends, that the decision was durable in its log when the message left.
type orderCheckingTransport struct {
	transport.Transport
	log *decisionLog
	// mu guards early and commits.
	mu      sync.Mutex
	early   []uuid.UUID
	commits int
}

func (t *orderCheckingTransport) Send(ctx context.Context, to transport.NodeID, service string, payload []byte) error {
	if m, err := txn.UnmarshalMessage(payload); err == nil && m.Type == txn.MsgDecision && m.Outcome == txn.Committed {
		t.mu.Lock()
		t.commits++
		if !t.log.isDurable(m.Txn) {
			t.early = append(t.early, m.Txn)
		}
		t.mu.Unlock()
	}
	return t.Transport.Send(ctx, to, service, payload)
}

// TestRuntimeCommitLeavesOnlyOnceDurable holds the write-ahead rule of the
// runtime coordinator: a COMMIT message may leave only after the COMMIT
// record is durable, or a crash between the two would leave a participant
// that committed and a recovered coordinator that presumes abort.
func TestRuntimeCommitLeavesOnlyOnceDurable(t *testing.T) {
	c := newCluster(t, "bank1", "bank2")
	c.coord.Close() // replaced below by one whose log and transport are observed
	dl := &decisionLog{Log: txn.NewMemoryLog(), durable: map[uuid.UUID]bool{}}
	ot := &orderCheckingTransport{Transport: c.trs["c"], log: dl}
	coord, err := txn.NewCoordinator(ot, dl, runtimeConfig())
	if err != nil {
		t.Fatal(err)
	}
	c.coord = coord

	const n = 10
	for range n {
		if _, err := coord.Run(context.Background(), transferWorkRT(t, "bank1", "bank2", 1)...); err != nil {
			t.Fatalf("Run() = %v; want committed", err)
		}
	}
	quiesce(t, coord)
	ot.mu.Lock()
	defer ot.mu.Unlock()
	if ot.commits < n*2 {
		t.Fatalf("saw %d COMMIT messages; want at least %d", ot.commits, n*2)
	}
	if len(ot.early) > 0 {
		t.Fatalf("%d COMMIT messages left before their decision was durable (first: %s)", len(ot.early), ot.early[0])
	}
}
