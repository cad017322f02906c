package consensus

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/transport"
)

func newSessionMachine(t testing.TB, sm StateMachine) *SessionMachine {
	t.Helper()
	m, err := WithSessions(sm, DefaultSessionConfig())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sessionLog feeds entries to a SessionMachine with consecutive indices.
type sessionLog struct {
	m     *SessionMachine
	index uint64
}

func (l *sessionLog) apply(cmd []byte, now int64) any {
	cmd = bytes.Clone(cmd)
	session.Stamp(cmd, now)
	l.index++
	return l.m.Apply(Entry{Index: l.index, Term: 1, Command: cmd})
}

// TestSessionMachinePlainCommands: commands that are not session envelopes
// reach the wrapped machine unchanged, with their own results.
func TestSessionMachinePlainCommands(t *testing.T) {
	rec := &recordSM{}
	l := &sessionLog{m: newSessionMachine(t, rec)}
	for i, cmd := range []string{"a", "b", "a"} {
		if res := l.apply([]byte(cmd), 0); res != i+1 {
			t.Fatalf("Apply(%q) = %v; want %d", cmd, res, i+1)
		}
	}
	if fmt.Sprint(rec.applied) != "[a b a]" {
		t.Fatalf("applied %q; want [a b a]", rec.applied)
	}
}

// TestSessionMachineDuplicateAfterRestore: a duplicate answered after the
// machine was snapshotted and restored elsewhere gets the same result and
// is not applied again; the wrapped state comes back too.
func TestSessionMachineDuplicateAfterRestore(t *testing.T) {
	l := &sessionLog{m: newSessionMachine(t, &recordSM{})}
	id := l.apply(session.AppendRegister(nil), 1).(SessionID)
	put := session.AppendCommand(nil, id, 1, 1, []byte("put x A"))
	if res := l.apply(put, 2); res != 1 {
		t.Fatalf("first apply = %v; want 1", res)
	}
	var snap bytes.Buffer
	if err := l.m.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	rec := &recordSM{}
	restored := &sessionLog{m: newSessionMachine(t, rec), index: l.index}
	if err := restored.m.Restore(bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if res := restored.apply(put, 3); res != 1 || len(rec.applied) != 1 {
		t.Fatalf("duplicate after restore = %v with %d applied; want 1 with 1 applied (the cached result)", res, len(rec.applied))
	}
	if restored.m.Sessions() != 1 {
		t.Fatalf("Sessions() = %d after restore; want 1", restored.m.Sessions())
	}
}

// TestSessionMachineRefusals: refused session commands are not applied
// and answer an error the Client recognizes.
func TestSessionMachineRefusals(t *testing.T) {
	// A later format of envelope: refused, never applied as a plain
	// command.
	unknownFormat := session.AppendCommand(nil, 1, 1, 1, []byte("x"))
	unknownFormat[len(session.Magic)-1]++
	rec := &recordSM{}
	l := &sessionLog{m: newSessionMachine(t, rec)}
	tests := []struct {
		name string
		cmd  []byte
		want error
	}{
		{"unknown session", session.AppendCommand(nil, 99, 1, 1, []byte("x")), ErrSessionExpired},
		{"malformed envelope", session.Magic[:], session.ErrMalformed},
		{"unknown envelope format", unknownFormat, session.ErrMalformed},
		{"close of unknown session", session.AppendClose(nil, 99), ErrSessionExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := l.apply(tt.cmd, 1)
			err, _ := res.(error)
			if !errors.Is(err, tt.want) || len(rec.applied) != 0 {
				t.Fatalf("Apply = %v with %d applied; want %v, nothing applied", res, len(rec.applied), tt.want)
			}
		})
	}
}

// TestSessionMachineRestoreRefusesCorruption: snapshots without the
// session header, of another version, or with a damaged table are refused.
func TestSessionMachineRestoreRefusesCorruption(t *testing.T) {
	l := &sessionLog{m: newSessionMachine(t, &recordSM{})}
	id := l.apply(session.AppendRegister(nil), 1).(SessionID)
	l.apply(session.AppendCommand(nil, id, 1, 1, []byte("x")), 2)
	var snap bytes.Buffer
	if err := l.m.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	good := snap.Bytes()
	flipped := bytes.Clone(good)
	flipped[len(sessionSnapshotMagic)+2] ^= 0xff // the table's version byte
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unwrapped snapshot", []byte(`["x"]`)},
		{"other version", append(append(sessionSnapshotMagic[:], 9), good[len(sessionSnapshotMagic)+1:]...)},
		{"truncated table", good[:len(sessionSnapshotMagic)+4]},
		{"corrupt table", flipped},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := newSessionMachine(t, &recordSM{}).Restore(bytes.NewReader(tt.b)); err == nil {
				t.Fatalf("Restore(%q) = nil; want an error", tt.b)
			}
		})
	}
}

// FuzzSessionMachineRestore: Restore refuses or accepts any bytes without
// panicking or allocating what the data cannot back.
func FuzzSessionMachineRestore(f *testing.F) {
	l := &sessionLog{m: newSessionMachine(f, &recordSM{})}
	id := l.apply(session.AppendRegister(nil), 1).(SessionID)
	l.apply(session.AppendCommand(nil, id, 1, 1, []byte("x")), 2)
	var snap bytes.Buffer
	l.m.Snapshot(&snap)
	f.Add(snap.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		m := newSessionMachine(t, &recordSM{})
		if err := m.Restore(bytes.NewReader(b)); err != nil {
			return
		}
		var out bytes.Buffer
		if err := m.Snapshot(&out); err != nil {
			t.Fatalf("Snapshot after a successful Restore: %v", err)
		}
	})
}

func TestBasicResultsRoundTrip(t *testing.T) {
	tests := []any{nil, []byte("b"), []byte{}, "s", true, false, 42, int64(-7), uint64(1 << 60)}
	for _, v := range tests {
		b, err := (BasicResults{}).EncodeResult(v)
		if err != nil {
			t.Fatalf("EncodeResult(%#v) = %v", v, err)
		}
		got, err := (BasicResults{}).DecodeResult(b)
		if err != nil || fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", v) {
			t.Fatalf("DecodeResult(EncodeResult(%#v)) = %#v, %v", v, got, err)
		}
	}
	b, _ := (BasicResults{}).EncodeResult(errors.New("boom"))
	if got, _ := (BasicResults{}).DecodeResult(b); fmt.Sprint(got) != "boom" {
		t.Fatalf("error round trip = %v; want boom", got)
	}
	if _, err := (BasicResults{}).EncodeResult(struct{ X int }{}); err == nil {
		t.Fatalf("EncodeResult(struct{}{}) = nil error; want one")
	}
	// Apply caches a nil result as cachedNil without encoding it: the
	// same bytes as the encoding.
	m := newSessionMachine(t, &recordSM{})
	if got := m.encode(nil); !bytes.Equal(got, cachedNil) {
		t.Fatalf("encode(nil) = %v; cachedNil is %v", got, cachedNil)
	}
}

// structSM returns a result BasicResults cannot encode.
type structSM struct{ recordSM }

func (s *structSM) Apply(e Entry) any { s.recordSM.Apply(e); return struct{ N int }{len(s.applied)} }

// TestSessionMachineUncacheableResult: a result the codec cannot encode is
// returned the first time; a duplicate gets ErrResultNotCacheable and is
// not applied again.
func TestSessionMachineUncacheableResult(t *testing.T) {
	sm := &structSM{}
	l := &sessionLog{m: newSessionMachine(t, sm)}
	id := l.apply(session.AppendRegister(nil), 1).(SessionID)
	cmd := session.AppendCommand(nil, id, 1, 1, []byte("x"))
	if res := l.apply(cmd, 2); fmt.Sprint(res) != "{1}" {
		t.Fatalf("first apply = %v; want {1}", res)
	}
	res := l.apply(cmd, 3)
	if err, _ := res.(error); !errors.Is(err, ErrResultNotCacheable) || len(sm.applied) != 1 {
		t.Fatalf("duplicate = %v with %d applied; want ErrResultNotCacheable, applied once", res, len(sm.applied))
	}
}

func TestWithSessionsRejectsBadArguments(t *testing.T) {
	bad := DefaultSessionConfig()
	bad.TTL = 0
	tests := []struct {
		name string
		sm   StateMachine
		cfg  SessionConfig
	}{
		{"nil state machine", nil, DefaultSessionConfig()},
		{"typed nil state machine", (*recordSM)(nil), DefaultSessionConfig()},
		{"zero TTL", &recordSM{}, bad},
		{"zero config", &recordSM{}, SessionConfig{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := WithSessions(tt.sm, tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("WithSessions = %v; want ErrInvalidConfig", err)
			}
		})
	}
}

func TestZeroSessionMachine(t *testing.T) {
	for _, m := range []*SessionMachine{{}, nil} {
		if res := m.Apply(Entry{Index: 1}); !errors.Is(res.(error), ErrInvalidConfig) {
			t.Errorf("Apply on %#v = %v; want ErrInvalidConfig", m, res)
		}
		if err := m.Snapshot(&bytes.Buffer{}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Snapshot on %#v = %v; want ErrInvalidConfig", m, err)
		}
		if err := m.Restore(&bytes.Buffer{}); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Restore on %#v = %v; want ErrInvalidConfig", m, err)
		}
		if n := m.Sessions(); n != 0 {
			t.Errorf("Sessions on %#v = %d; want 0", m, n)
		}
	}
	if (*Node)(nil).KeepsSessions() {
		t.Errorf("KeepsSessions on a nil Node = true")
	}
}

// lossyProposer forwards to a real node and, at random, loses the answer
// of a command that was applied (reporting ErrStopped), as a forwarding
// hop that times out after the leader committed the command does.
type lossyProposer struct {
	n   *Node
	mu  sync.Mutex // guards rng
	rng *rand.Rand
}

func (p *lossyProposer) KeepsSessions() bool { return p.n.KeepsSessions() }

func (p *lossyProposer) Propose(ctx context.Context, cmd []byte) (any, error) {
	res, err := p.n.Propose(ctx, cmd)
	p.mu.Lock()
	lose := p.rng.IntN(3) == 0
	p.mu.Unlock()
	if err == nil && lose {
		return nil, fmt.Errorf("%w: answer lost on the way back", ErrStopped)
	}
	return res, err
}

// TestSessionsExactlyOnceOverNodes: three real nodes whose state machines
// are wrapped by WithSessions, clients whose answers are lost at random
// after the command was applied, snapshots taken along the way: every
// command is applied exactly once on every node, and the leader stamped
// its clock into the session commands.
func TestSessionsExactlyOnceOverNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now().UnixNano()
	recs := map[transport.NodeID]*syncRecordSM{}
	machines := map[transport.NodeID]*SessionMachine{}
	nodes := startThree(t, func(cfg *Config) { cfg.SnapshotThreshold = 16 }, func(id transport.NodeID) StateMachine {
		recs[id] = &syncRecordSM{}
		machines[id] = newSessionMachine(t, recs[id])
		return machines[id]
	})
	members := map[transport.NodeID]Proposer{}
	for i, id := range three {
		members[id] = &lossyProposer{n: nodes[id], rng: rand.New(rand.NewPCG(uint64(i), 9))}
	}
	cl, err := NewClient(members, DefaultClientConfig())
	if err != nil || !cl.Sessions() {
		t.Fatalf("NewClient = %v, sessions %v; want a session client", err, cl.Sessions())
	}
	const callers, each = 4, 20
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				if _, err := cl.Propose(ctx, fmt.Appendf(nil, "g%d-%d", g, i)); err != nil {
					t.Errorf("Propose = %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	// A last plain command through the leader marks the end of the log.
	last, err := members[cl.Leader()].(*lossyProposer).n.Propose(ctx, []byte("end"))
	if err != nil {
		t.Fatal(err)
	}
	for id, rec := range recs {
		applied := rec.waitFor(ctx, last.(int))
		seen := map[string]bool{}
		for _, cmd := range applied {
			if seen[cmd] {
				t.Fatalf("%s applied %s twice", id, cmd)
			}
			seen[cmd] = true
		}
		if len(seen) != callers*each+1 {
			t.Fatalf("%s applied %d distinct commands; want %d", id, len(seen), callers*each+1)
		}
	}
	// The table belongs to the node's goroutine: read it once the node
	// has stopped.
	leader := members[cl.Leader()].(*lossyProposer).n
	leader.Close()
	now := machines[cl.Leader()].table.Now()
	if now < start {
		t.Fatalf("session table time %d; want the leader's clock (>= %d)", now, start)
	}
}

// syncRecordSM is a recordSM that tests can wait on from other goroutines.
type syncRecordSM struct {
	mu      sync.Mutex // guards rec and changed
	rec     recordSM
	changed chan struct{}
}

func (s *syncRecordSM) Apply(e Entry) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := s.rec.Apply(e)
	s.signal()
	return res
}

func (s *syncRecordSM) signal() {
	if s.changed != nil {
		close(s.changed)
	}
	s.changed = make(chan struct{})
}

func (s *syncRecordSM) Snapshot(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Snapshot(w)
}

func (s *syncRecordSM) Restore(r io.Reader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.signal()
	return s.rec.Restore(r)
}

// waitFor waits until n commands are applied and returns them.
func (s *syncRecordSM) waitFor(ctx context.Context, n int) []string {
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		applied, changed := slices.Clone(s.rec.applied), s.changed
		s.mu.Unlock()
		if len(applied) >= n {
			return applied
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return applied
		}
	}
}

type jsonResult struct {
	Value string
	Found bool
}

// TestMarshalResultRoundTrip: what a forwarding Proposer carries over the
// network comes back as the Client needs it: a SessionID, a refusal that
// still matches its sentinel, or the codec's result.
func TestMarshalResultRoundTrip(t *testing.T) {
	codec := JSONResults[jsonResult]{}
	tests := []struct {
		name  string
		v     any
		check func(any) bool
	}{
		{"session", SessionID(42), func(v any) bool { return v == SessionID(42) }},
		{"expired", fmt.Errorf("consensus: sessions: %w: session 3", ErrSessionExpired), func(v any) bool {
			err, _ := v.(error)
			return errors.Is(err, ErrSessionExpired) && refusal(v) != nil
		}},
		{"too many pending", fmt.Errorf("x: %w", ErrTooManyPending), func(v any) bool {
			err, _ := v.(error)
			return errors.Is(err, ErrTooManyPending)
		}},
		{"result", jsonResult{Value: "v", Found: true}, func(v any) bool { return v == jsonResult{Value: "v", Found: true} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := MarshalResult(codec, tt.v)
			if err != nil {
				t.Fatalf("MarshalResult(%v) = %v", tt.v, err)
			}
			got, err := UnmarshalResult(codec, b)
			if err != nil || !tt.check(got) {
				t.Fatalf("UnmarshalResult(MarshalResult(%v)) = %#v, %v", tt.v, got, err)
			}
		})
	}
	for _, bad := range [][]byte{nil, {9}, {forwardSession}, {forwardRefusal, 99}, {forwardResult, '{'}} {
		if _, err := UnmarshalResult(codec, bad); err == nil {
			t.Errorf("UnmarshalResult(%x) = nil error; want one", bad)
		}
	}
}

// TestJSONResultsCachesStructs: a SessionMachine with JSONResults answers a
// duplicate with the struct the first application returned.
func TestJSONResultsCachesStructs(t *testing.T) {
	cfg := DefaultSessionConfig()
	cfg.Codec = JSONResults[jsonResult]{}
	m, err := WithSessions(jsonSM{}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := &sessionLog{m: m}
	id := l.apply(session.AppendRegister(nil), 1).(SessionID)
	cmd := session.AppendCommand(nil, id, 1, 1, []byte("k"))
	first, dup := l.apply(cmd, 2), l.apply(cmd, 3)
	if first != dup || first != (jsonResult{Value: "k", Found: true}) {
		t.Fatalf("first %#v, duplicate %#v; want equal jsonResults", first, dup)
	}
}

// jsonSM answers every command with a jsonResult.
type jsonSM struct{}

func (jsonSM) Apply(e Entry) any         { return jsonResult{Value: string(e.Command), Found: true} }
func (jsonSM) Snapshot(io.Writer) error  { return nil }
func (jsonSM) Restore(r io.Reader) error { return nil }

// entryRecorder records the index and term of every entry applied to it.
type entryRecorder struct{ got []Entry }

func (r *entryRecorder) Apply(e Entry) any {
	r.got = append(r.got, Entry{Index: e.Index, Term: e.Term, Command: bytes.Clone(e.Command)})
	return nil
}
func (r *entryRecorder) Snapshot(io.Writer) error { return nil }
func (r *entryRecorder) Restore(io.Reader) error  { return nil }

// TestSessionMachinePassesIndexAndTerm: the wrapped machine gets each
// session command with the log index and term of its entry and the
// client's payload, on the table's fast path (a new command of the
// session last used) and on its general path (a command of another
// session), as it gets plain commands.
func TestSessionMachinePassesIndexAndTerm(t *testing.T) {
	rec := &entryRecorder{}
	m := newSessionMachine(t, rec)
	reg := session.AppendRegister(nil)
	session.Stamp(reg, 1)
	steps := []struct {
		index, term uint64
		cmd         []byte
	}{
		{1, 2, reg}, // session 1
		{2, 2, session.AppendCommand(nil, 1, 1, 1, []byte("fast"))},
		{3, 3, reg}, // session 3: the one last used now
		{4, 5, session.AppendCommand(nil, 1, 2, 1, []byte("general"))},
		{5, 5, []byte("plain")},
	}
	for _, s := range steps {
		if v := m.Apply(Entry{Index: s.index, Term: s.term, Command: s.cmd}); v != nil {
			if _, ok := v.(SessionID); !ok {
				t.Fatalf("Apply(index %d) = %v", s.index, v)
			}
		}
	}
	want := []Entry{{Index: 2, Term: 2, Command: []byte("fast")}, {Index: 4, Term: 5, Command: []byte("general")}, {Index: 5, Term: 5, Command: []byte("plain")}}
	if len(rec.got) != len(want) {
		t.Fatalf("wrapped machine got %d entries; want %d", len(rec.got), len(want))
	}
	for i, w := range want {
		if g := rec.got[i]; g.Index != w.Index || g.Term != w.Term || !bytes.Equal(g.Command, w.Command) {
			t.Fatalf("entry %d: got index %d term %d %q; want index %d term %d %q", i, g.Index, g.Term, g.Command, w.Index, w.Term, w.Command)
		}
	}
}
