package lock

import (
	"bytes"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
)

// smLog is a replicated log of lock commands over three terms, each led by
// a member whose clock is offset from the others'.
func smLog() []consensus.Entry {
	var log []consensus.Entry
	add := func(term uint64, at time.Duration, req Request) {
		log = append(log, consensus.Entry{Index: uint64(len(log) + 1), Term: term,
			Command: encodeCommand(t0Internal.Add(at), req)})
	}
	ttl := time.Second
	add(1, 0, Request{Op: OpOpen, Session: 1, Owner: "a", TTL: ttl})
	add(1, 0, Request{Op: OpOpen, Session: 2, Owner: "b", TTL: ttl})
	add(1, 10*time.Millisecond, Request{Op: OpAcquire, Session: 1, Name: "x"})
	add(1, 20*time.Millisecond, Request{Op: OpAcquire, Session: 2, Name: "x"})
	// Term 2's leader runs 5 s behind: without the rebase it would expire
	// nothing for a long while; with it, every lease gets a TTL from its time.
	log = append(log, consensus.Entry{Index: uint64(len(log) + 1), Term: 2}) // the new leader's empty entry
	add(2, -5*time.Second, Request{Op: OpKeepAlive, Session: 2})
	add(2, -5*time.Second+900*time.Millisecond, Request{Op: opTick})
	// Term 3's leader runs 1 h ahead: the rebase keeps it from expiring
	// every lease at once.
	add(3, time.Hour, Request{Op: opTick})
	add(3, time.Hour+500*time.Millisecond, Request{Op: OpKeepAlive, Session: 2})
	add(3, time.Hour+1200*time.Millisecond, Request{Op: opTick})
	add(3, time.Hour+1300*time.Millisecond, Request{Op: OpAcquire, Session: 2, Name: "y"})
	return log
}

func smSnapshot(t *testing.T, sm *StateMachine) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := sm.Snapshot(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestStateMachineSnapshotAtEveryIndex checks that a replica restored from
// a snapshot taken at any point of the log, then applying the rest, ends in
// exactly the state of a replica that applied the whole log: the term
// travels with the snapshot, so a restored replica rebases on the same
// entries as the others, and the token counter keeps rising.
func TestStateMachineSnapshotAtEveryIndex(t *testing.T) {
	log := smLog()
	whole, err := NewStateMachine(DefaultTableConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range log {
		whole.Apply(e)
	}
	want := smSnapshot(t, whole)
	if got := whole.LastToken(); got < 3 {
		t.Fatalf("LastToken() = %d after the log; want at least 3 grants", got)
	}
	for cut := range len(log) + 1 {
		first, _ := NewStateMachine(DefaultTableConfig())
		for _, e := range log[:cut] {
			first.Apply(e)
		}
		restored, _ := NewStateMachine(DefaultTableConfig())
		if err := restored.Restore(bytes.NewReader(smSnapshot(t, first))); err != nil {
			t.Fatalf("Restore(snapshot at %d) = %v", cut, err)
		}
		for _, e := range log[cut:] {
			restored.Apply(e)
		}
		if got := smSnapshot(t, restored); !bytes.Equal(got, want) {
			t.Errorf("replica restored at index %d diverged:\n got %x\nwant %x", cut, got, want)
		}
	}
}

// TestSettledHolderOnlyInTheAppliedTerm: a holder read is answered from
// the table only by the leader of the term whose stamp the table last
// applied; a new leader's clock is another machine's, so until its first
// stamped command (which rebases the table) the log must answer.
func TestSettledHolderOnlyInTheAppliedTerm(t *testing.T) {
	sm, err := NewStateMachine(DefaultTableConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i, req := range []Request{
		{Op: OpOpen, Session: 1, Owner: "a", TTL: time.Second},
		{Op: OpAcquire, Session: 1, Name: "x"},
	} {
		e := consensus.Entry{Index: uint64(i + 1), Term: 1, Command: encodeCommand(t0Internal, req)}
		if r := sm.Apply(e).(applied); r.err != nil {
			t.Fatalf("Apply(%v) = %v", req.Op, r.err)
		}
	}
	now := t0Internal.Add(10 * time.Millisecond)
	tests := []struct {
		term   uint64
		wantOK bool
	}{
		{1, true},  // the leader that stamped the table
		{2, false}, // a new leader that has not stamped yet
	}
	for _, tt := range tests {
		if g, held, ok := sm.settledHolder("x", tt.term, now); ok != tt.wantOK || (ok && (!held || g.Session != 1)) {
			t.Errorf("settledHolder(x, term %d) = %+v, %v, %v; want ok = %v (and session 1 holding when ok)",
				tt.term, g, held, ok, tt.wantOK)
		}
	}
}
