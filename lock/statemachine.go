package lock

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/distkit/distkit/consensus"
)

// StateMachine is the lock table as the state machine of a consensus.Node:
// the replicated lock service's state. Server builds one; use it directly
// only to run the table under your own Raft plumbing.
//
// Time enters only through the commands: the leader stamps each command
// with its clock before proposing it, and Apply passes that stamp to the
// table. Apply never reads a clock, so every replica computes the same
// expiries. The first stamped command of a new term rebases the table
// (Table.Rebase): every lease gets a full TTL from the new leader's time,
// because the new leader cannot know how long its predecessor waited, and
// its clock is another machine's.
//
// Apply, Snapshot and Restore are called by the Node's goroutine; the other
// methods may be called concurrently with them.
type StateMachine struct {
	mu       sync.Mutex // guards table, term and watchers
	table    *Table
	term     uint64 // term of the last stamped command applied
	watchers map[waitKey][]chan Grant
}

var _ consensus.StateMachine = (*StateMachine)(nil)

// errStateMachineNotNew is what the methods of a StateMachine not made by
// NewStateMachine report.
var errStateMachineNotNew = fmt.Errorf("%w: StateMachine not created by NewStateMachine", ErrInvalidConfig)

// applied is what Apply returns to the proposer.
type applied struct {
	resp Response
	err  error
}

// NewStateMachine returns an empty lock state machine.
func NewStateMachine(cfg TableConfig) (*StateMachine, error) {
	t, err := NewTable(cfg)
	if err != nil {
		return nil, err
	}
	return &StateMachine{table: t, watchers: make(map[waitKey][]chan Grant)}, nil
}

// encodeCommand stamps req with the proposer's time.
func encodeCommand(now time.Time, req Request) []byte {
	b := binary.AppendVarint(make([]byte, 0, 32+len(req.Name)+len(req.Owner)), now.UnixNano())
	return AppendRequest(b, req)
}

func decodeCommand(b []byte) (time.Time, Request, error) {
	d := decoder{b: b}
	now := d.varint("time")
	req := decodeRequestOps(&d, opTick)
	if err := d.done(); err != nil {
		return time.Time{}, Request{}, err
	}
	return time.Unix(0, now), req, nil
}

// Apply applies one stamped command. Its result (for the proposer) is an
// internal value that Server unpacks.
func (sm *StateMachine) Apply(e consensus.Entry) any {
	if len(e.Command) == 0 {
		return nil // a new leader's empty entry
	}
	now, req, err := decodeCommand(e.Command)
	if err != nil {
		return applied{err: fmt.Errorf("lock: bad command at index %d: %w", e.Index, err)}
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if e.Term > sm.term {
		sm.term = e.Term
		sm.table.Rebase(now)
	}
	resp, err := apply(sm.table, now, req)
	for _, g := range sm.table.Granted() {
		key := waitKey{g.Session, g.Name}
		for _, ch := range sm.watchers[key] {
			select {
			case ch <- g:
			default: // already holds this grant
			}
		}
	}
	return applied{resp: resp, err: err}
}

// watch returns a channel that receives the grant of name to session when
// this replica applies it. Call unwatch with it when done.
func (sm *StateMachine) watch(session SessionID, name string) chan Grant {
	ch := make(chan Grant, 1)
	key := waitKey{session, name}
	sm.mu.Lock()
	sm.watchers[key] = append(sm.watchers[key], ch)
	sm.mu.Unlock()
	return ch
}

func (sm *StateMachine) unwatch(session SessionID, name string, ch chan Grant) {
	key := waitKey{session, name}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	w := slices.DeleteFunc(sm.watchers[key], func(c chan Grant) bool { return c == ch })
	if len(w) == 0 {
		delete(sm.watchers, key)
	} else {
		sm.watchers[key] = w
	}
}

// Holder returns this replica's view of the holder of name. It may be
// stale; for a linearizable read send an OpHolder request to the service.
func (sm *StateMachine) Holder(name string) (Grant, bool) {
	if sm == nil || sm.table == nil {
		return Grant{}, false
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.table.Holder(name)
}

// settledHolder returns the holder of name as an OpHolder stamped now
// would report it, if that needs no log entry: ok is true only when the
// last stamped command applied is of term (so the table's times are on the
// clock of term's leader, the caller) and no lease or lock-delay ends by
// now (so Tick(now) would change nothing). Callers make sure the replica
// is up to date first (consensus.Node.Read).
func (sm *StateMachine) settledHolder(name string, term uint64, now time.Time) (g Grant, held, ok bool) {
	if sm == nil || sm.table == nil {
		return Grant{}, false, false
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if sm.term != term {
		return Grant{}, false, false
	}
	if due, pending := sm.table.NextDeadline(); pending && !due.After(now) {
		return Grant{}, false, false
	}
	g, held = sm.table.Holder(name)
	return g, held, true
}

// Sessions returns the number of open sessions in this replica's view.
func (sm *StateMachine) Sessions() int {
	if sm == nil || sm.table == nil {
		return 0
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.table.Sessions()
}

// Stats returns this replica's table counts.
func (sm *StateMachine) Stats() Stats {
	if sm == nil || sm.table == nil {
		return Stats{}
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.table.Stats()
}

// LastToken returns the highest fencing token this replica has applied.
func (sm *StateMachine) LastToken() Token {
	if sm == nil || sm.table == nil {
		return 0
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	return sm.table.LastToken()
}

// Snapshot writes the term and the table.
func (sm *StateMachine) Snapshot(w io.Writer) error {
	if sm == nil || sm.table == nil {
		return errStateMachineNotNew
	}
	sm.mu.Lock()
	b := binary.AppendUvarint(nil, sm.term)
	b = append(b, sm.table.Snapshot()...)
	sm.mu.Unlock()
	_, err := w.Write(b)
	return err
}

// Restore replaces the state with a snapshot written by Snapshot.
func (sm *StateMachine) Restore(r io.Reader) error {
	if sm == nil || sm.table == nil {
		return errStateMachineNotNew
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("lock: restore: %w", err)
	}
	term, n := binary.Uvarint(b)
	if n <= 0 {
		return fmt.Errorf("%w: snapshot term", ErrCorrupt)
	}
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if err := sm.table.Restore(b[n:]); err != nil {
		return err
	}
	sm.term = term
	return nil
}
