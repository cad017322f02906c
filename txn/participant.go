package txn

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/distkit/distkit/transport"
)

// Participant puts a ResourceManager into transactions: it drives a
// RawParticipant over a Transport (service ServiceParticipant) with a
// durable Log and real timers. It is safe for concurrent use.
type Participant struct {
	t      transport.Transport
	log    Log
	rm     ResourceManager
	cfg    Config
	logger *slog.Logger
	debug  bool // logger has debug enabled (checked once: it is hot)
	loop   *loop
	ctx    context.Context // cancelled by Close; passed to Prepare and sends
	cancel context.CancelFunc

	// mu guards core, err and closed.
	mu     sync.Mutex
	core   *RawParticipant
	err    error // sticky storage or resource-manager failure
	closed bool
}

// NewParticipant recovers a participant from log, restores rm from it
// (ResourceManager.Recover) and starts it. Transactions prepared before a
// crash are in doubt again: their locks are held and the participant asks
// the coordinator and its peers for the outcome until it learns it. The
// caller keeps ownership of t, log and rm: Close does not close them.
func NewParticipant(t transport.Transport, log Log, rm ResourceManager, cfg Config) (*Participant, error) {
	if t == nil || log == nil || rm == nil {
		return nil, fmt.Errorf("%w: nil transport, log or resource manager", ErrInvalid)
	}
	core, err := NewRawParticipant(t.ID(), cfg)
	if err != nil {
		return nil, err
	}
	recs, err := log.Load()
	if err != nil {
		return nil, fmt.Errorf("txn: participant recovery: %w", err)
	}
	rec, err := core.Recover(time.Now(), recs)
	if err != nil {
		return nil, fmt.Errorf("txn: participant recovery: %w", err)
	}
	if err := rm.Recover(rec); err != nil {
		return nil, fmt.Errorf("txn: participant recovery: resource manager: %w", err)
	}
	p := &Participant{t: t, log: log, rm: rm, cfg: cfg, logger: orDiscard(cfg.Logger).With("participant", string(t.ID())),
		loop: newLoop(), core: core}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.debug = p.logger.Enabled(p.ctx, slog.LevelDebug)
	if len(rec.InDoubt) > 0 {
		p.logger.Debug("txn: recovered", "in-doubt", len(rec.InDoubt), "committed-replayed", len(rec.Committed))
	}
	t.Handle(ServiceParticipant, p.receive)
	p.loop.start(cfg.TickInterval, p.tick, p.process)
	p.tick() // in-doubt transactions ask at once
	p.loop.wake()
	return p, nil
}

func (p *Participant) usableLocked() error {
	if p.closed {
		return ErrClosed
	}
	return p.err
}

func (p *Participant) receive(msg transport.Message) {
	m, err := UnmarshalMessage(msg.Payload)
	if err != nil {
		p.logger.Debug("txn: dropped malformed message", "from", msg.From, "err", err)
		return
	}
	p.mu.Lock()
	if p.usableLocked() == nil {
		p.core.Step(time.Now(), msg.From, m)
	}
	p.mu.Unlock()
	p.loop.wake()
}

func (p *Participant) tick() {
	p.mu.Lock()
	if p.usableLocked() == nil {
		p.core.Tick(time.Now())
	}
	p.mu.Unlock()
}

// process drains the core in the order Ready prescribes: log, resource
// manager, checkpoint (with the resource manager's snapshot), messages.
func (p *Participant) process() {
	for {
		p.mu.Lock()
		if p.usableLocked() != nil || !p.core.HasReady() {
			p.mu.Unlock()
			return
		}
		rd := p.core.Ready()
		p.mu.Unlock()

		logRecords(p.logger, rd.Log)
		if err := p.log.Append(rd.Log); err != nil {
			p.fail(err)
			return
		}
		for _, a := range rd.Actions {
			if err := p.act(a); err != nil {
				p.fail(err)
				return
			}
		}
		if rd.Checkpoint != nil {
			snap, err := p.rm.Snapshot()
			if err == nil {
				p.logger.Debug("txn: checkpoint", "records", len(rd.Checkpoint)+1)
				err = p.log.Replace(append([]Record{{Type: RecSnapshot, Data: snap}}, rd.Checkpoint...))
			}
			if err != nil {
				p.fail(err)
				return
			}
		}
		send(p.ctx, p.t, p.logger, rd.Messages)
	}
}

func (p *Participant) act(a Action) error {
	switch a.Kind {
	case ActPrepare:
		// A participant may abort on its own before voting: a preparation
		// that takes longer than VoteTimeout is abandoned (its error is a
		// NO vote), since the coordinator has given up on the vote by then
		// and a late YES would only hold locks until the ABORT arrives.
		ctx, cancel := context.WithTimeout(p.ctx, p.cfg.VoteTimeout)
		intent, err := p.rm.Prepare(ctx, a.Txn, a.Data)
		cancel()
		if p.debug {
			p.logger.Debug("txn: prepared", "txn", a.Txn, "yes", err == nil, "err", err)
		}
		p.mu.Lock()
		p.core.Prepared(time.Now(), a.Txn, intent, err)
		p.mu.Unlock()
	case ActCommit:
		if p.debug {
			p.logger.Debug("txn: commit applied", "txn", a.Txn)
		}
		if err := p.rm.Commit(a.Txn, a.Data); err != nil {
			return fmt.Errorf("resource manager commit %s: %w", a.Txn, err)
		}
	case ActAbort:
		if p.debug {
			p.logger.Debug("txn: abort applied", "txn", a.Txn)
		}
		if err := p.rm.Abort(a.Txn, a.Data); err != nil {
			return fmt.Errorf("resource manager abort %s: %w", a.Txn, err)
		}
	}
	return nil
}

// fail stops the participant: after a log or resource-manager failure its
// memory may be ahead of its log, so the safe course is to stop and be
// recovered from the log (open a new Participant).
func (p *Participant) fail(err error) {
	p.logger.Error("txn: participant stopped", "err", err)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = fmt.Errorf("txn: participant: %w", err)
	}
}

// ParticipantStats are a participant's current state.
type ParticipantStats struct {
	ParticipantStatus
	Err error // the failure that stopped it, if any
}

// Stats returns the participant's state.
func (p *Participant) Stats() ParticipantStats {
	if p == nil || p.loop == nil {
		return ParticipantStats{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return ParticipantStats{ParticipantStatus: p.core.Status(), Err: p.err}
}

// Close stops the participant and waits for its goroutine. Prepared
// transactions stay prepared in the log; a Participant opened later on it
// resolves them. Close is idempotent.
func (p *Participant) Close() error {
	if p == nil || p.loop == nil {
		return errNotBuilt
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.t.Handle(ServiceParticipant, nil)
	p.cancel()
	p.loop.stop()
	return nil
}
