package raft

import (
	"errors"
	"strings"
	"testing"

	"github.com/distkit/distkit/transport"
)

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.ID, c.Peers, c.Storage = "a", []transport.NodeID{"a", "b", "c"}, NewMemoryStorage()
		return c
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantMsg string // substring of the error; "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"empty ID", func(c *Config) { c.ID = "" }, "ID is empty"},
		{"nil storage", func(c *Config) { c.Storage = nil }, "Storage is nil"},
		{"nil *MemoryStorage", func(c *Config) { c.Storage = (*MemoryStorage)(nil) }, "Storage is nil"},
		{"zero MemoryStorage", func(c *Config) { c.Storage = &MemoryStorage{} }, ""},
		{"zero heartbeat", func(c *Config) { c.HeartbeatTicks = 0 }, "HeartbeatTicks"},
		{"election not above heartbeat", func(c *Config) { c.ElectionTicks = 1 }, "ElectionTicks (1)"},
		{"zero max message bytes", func(c *Config) { c.MaxMsgBytes = 0 }, "MaxMsgBytes"},
		{"zero inflight", func(c *Config) { c.MaxInflightMsgs = 0 }, "MaxInflightMsgs"},
		{"zero committed bytes", func(c *Config) { c.MaxCommittedBytesPerReady = 0 }, "MaxCommittedBytesPerReady"},
		{"empty peer", func(c *Config) { c.Peers = []transport.NodeID{"a", ""} }, "Peers[1] is empty"},
		{"duplicate peer", func(c *Config) { c.Peers = []transport.NodeID{"a", "b", "a"} }, `lists "a" twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantMsg == "" && err != nil {
				t.Fatalf("Validate() = %v; want nil", err)
			}
			if tt.wantMsg != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Errorf("Validate() = %v; want ErrInvalidConfig mentioning %q", err, tt.wantMsg)
			}
		})
	}
}

func TestNewRawNodeMembershipErrors(t *testing.T) {
	tests := []struct {
		name  string
		peers []transport.NodeID
	}{
		{"no peers", nil},
		{"ID not a peer", []transport.NodeID{"b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ID, cfg.Peers, cfg.Storage = "a", tt.peers, NewMemoryStorage()
			if _, err := NewRawNode(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("NewRawNode() error = %v; want ErrInvalidConfig", err)
			}
		})
	}
}

func TestStepRejectsBadMessages(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"unknown type", Message{Type: 99, From: "b", To: "a", Term: 1}, ErrInvalidMessage},
		{"zero type", Message{From: "b", To: "a", Term: 1}, ErrInvalidMessage},
		{"transfer mark on a heartbeat", Message{Type: MsgHeartbeat, From: "b", To: "a", Term: 1, Transfer: true}, ErrInvalidMessage},
		{"no sender", Message{Type: MsgHeartbeat, To: "a", Term: 1}, ErrInvalidMessage},
		{"from itself", Message{Type: MsgHeartbeat, From: "a", To: "a", Term: 1}, ErrInvalidMessage},
		{"implausible term", Message{Type: MsgHeartbeat, From: "b", To: "a", Term: 1 << 63}, ErrInvalidMessage},
		{"implausible snapshot index", Message{Type: MsgSnap, From: "b", To: "a", Term: 2, Snapshot: &SnapshotMeta{Index: 1<<64 - 1, Term: 1}}, ErrInvalidMessage},
		{"undecodable conf change", Message{Type: MsgApp, From: "b", To: "a", Term: 1, Entries: []Entry{{Term: 1, Index: 1, Type: EntryConfChange, Data: []byte{1, 0, 9}}}}, ErrInvalidMessage},
		{"snapshot with a learner that votes", Message{Type: MsgSnap, From: "b", To: "a", Term: 2, Snapshot: &SnapshotMeta{Index: 5, Term: 2, Membership: Membership{Voters: []transport.NodeID{"a"}, Learners: []transport.NodeID{"a"}}}}, ErrInvalidMessage},
		{"stranger (accepted: membership views may lag)", Message{Type: MsgVote, From: "x", To: "a", Term: 9}, nil},
		{"read index (follower read to a follower: dropped)", Message{Type: MsgReadIndex, From: "b", To: "a", Term: 1}, nil},
		{"wrong recipient", Message{Type: MsgHeartbeat, From: "b", To: "c", Term: 1}, ErrInvalidMessage},
		{"term zero", Message{Type: MsgApp, From: "b", To: "a"}, ErrInvalidMessage},
		{"snapshot without meta", Message{Type: MsgSnap, From: "b", To: "a", Term: 1}, ErrInvalidMessage},
		{"snapshot resp without meta", Message{Type: MsgSnapResp, From: "b", To: "a", Term: 1}, ErrInvalidMessage},
		{"snapshot from the future", Message{Type: MsgSnap, From: "b", To: "a", Term: 1, Snapshot: &SnapshotMeta{Index: 5, Term: 2}}, ErrInvalidMessage},
		{"entries not after prev", Message{Type: MsgApp, From: "b", To: "a", Term: 1, Index: 3, Entries: []Entry{{Term: 1, Index: 5}}}, ErrInvalidMessage},
		{"entry term above message term", Message{Type: MsgApp, From: "b", To: "a", Term: 1, Entries: []Entry{{Term: 2, Index: 1}}}, ErrInvalidMessage},
		{"entry terms decreasing", Message{Type: MsgApp, From: "b", To: "a", Term: 3, Entries: []Entry{{Term: 2, Index: 1}, {Term: 1, Index: 2}}}, ErrInvalidMessage},
		{"entries on a heartbeat", Message{Type: MsgHeartbeat, From: "b", To: "a", Term: 1, Entries: []Entry{{Term: 1, Index: 1}}}, ErrInvalidMessage},
		{"valid heartbeat", Message{Type: MsgHeartbeat, From: "b", To: "a", Term: 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ID, cfg.Peers, cfg.Storage = "a", []transport.NodeID{"a", "b", "c"}, NewMemoryStorage()
			rn, err := NewRawNode(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := rn.Step(tt.m); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Step(%+v) = %v; want %v", tt.m, err, tt.want)
			}
		})
	}
}

func TestProposeOnFollowerNamesLeader(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.elect()
	for _, id := range c.ids {
		if id == lead {
			continue
		}
		_, _, err := c.nodes[id].Propose([]byte("x"))
		var nl *NotLeaderError
		if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) || nl.Leader != lead {
			t.Errorf("%s: Propose error = %v; want NotLeaderError naming %s", id, err, lead)
		}
	}
}

// Proposals accepted between two Readys travel in one MsgApp per follower.
func TestProposalsAreBatched(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.elect()
	rn := c.nodes[lead]
	for range 50 {
		if _, _, err := rn.Propose([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	rd, err := rn.Ready()
	if err != nil {
		t.Fatal(err)
	}
	apps := 0
	for _, m := range rd.Messages {
		if m.Type == MsgApp {
			apps++
			if len(m.Entries) != 50 {
				t.Errorf("MsgApp to %s carries %d entries; want 50", m.To, len(m.Entries))
			}
		}
	}
	if apps != 2 {
		t.Errorf("Ready has %d MsgApps; want 2 (one per follower)", apps)
	}
	if len(rd.Entries) != 50 || !rd.MustSync {
		t.Errorf("Ready has %d entries to persist, MustSync %v; want 50, true", len(rd.Entries), rd.MustSync)
	}
	if _, err := rn.Ready(); !errors.Is(err, ErrReadyPending) {
		t.Errorf("second Ready before Advance: error = %v; want ErrReadyPending", err)
	}
	if rn.HasReady() {
		t.Errorf("HasReady() = true before Advance; want false")
	}
}

// Flow control: a follower that stops answering receives at most
// MaxInflightMsgs MsgApps, and the leader refuses proposals beyond
// MaxUncommittedBytes.
func TestFlowControl(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.MaxInflightMsgs = 4
		cfg.MaxUncommittedBytes = 1000
	})
	lead := c.elect()
	rn := c.nodes[lead]
	// Both followers go silent: nothing commits.
	sent := map[transport.NodeID]int{}
	c.drop = func(m Message) bool {
		if m.From == lead && m.Type == MsgApp && len(m.Entries) > 0 {
			sent[m.To]++
		}
		return m.From != lead
	}
	data := make([]byte, 100)
	accepted := 0
	var err error
	for range 50 {
		if _, _, err = rn.Propose(data); err != nil {
			break
		}
		accepted++
		c.process()
	}
	if !errors.Is(err, ErrProposalDropped) {
		t.Fatalf("Propose error = %v after %d proposals; want ErrProposalDropped", err, accepted)
	}
	if accepted != 10 {
		t.Errorf("leader accepted %d uncommitted 100-byte proposals; want 10 (limit 1000 bytes)", accepted)
	}
	for id, n := range sent {
		if n > 4 {
			t.Errorf("%d MsgApps in flight to silent %s; want at most MaxInflightMsgs = 4", n, id)
		}
	}
	// Once the followers answer again, everything commits and the window
	// reopens.
	c.drop = nil
	for range 5 {
		c.tickAll()
	}
	if st := rn.Status(); st.Commit != st.LastIndex || st.UncommittedBytes != 0 {
		t.Errorf("after recovery commit = %d, last = %d, uncommitted = %d; want all committed", st.Commit, st.LastIndex, st.UncommittedBytes)
	}
	if _, _, err := rn.Propose(data); err != nil {
		t.Errorf("Propose after recovery: %v", err)
	}
}

// A restarted node keeps its term and vote and gets the committed entries
// after Config.Applied again.
func TestRestartRedeliversCommitted(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.elect()
	for _, d := range []string{"a", "b", "c"} {
		if _, _, err := c.nodes[lead].Propose([]byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	c.process()
	c.tickAll()
	before := c.nodes[lead].Status()
	c.applied[lead] = nil
	c.restart(lead, nil)
	after := c.nodes[lead].Status()
	if after.Term != before.Term || after.Vote != before.Vote || after.Commit != before.Commit || after.Role != Follower {
		t.Errorf("after restart %+v; want term %d, vote %s, commit %d, follower", after, before.Term, before.Vote, before.Commit)
	}
	c.process()
	if got := c.appliedData(lead); strings.Join(got, ",") != "a,b,c" {
		t.Errorf("restarted node re-applied %q; want [a b c]", got)
	}
}

func TestSingleNodeCommitsAlone(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	lead := c.elect()
	idx, term, err := c.nodes[lead].Propose([]byte("solo"))
	if err != nil {
		t.Fatal(err)
	}
	c.process()
	e := c.applied[lead][len(c.applied[lead])-1]
	if e.Index != idx || e.Term != term || string(e.Data) != "solo" {
		t.Errorf("applied %+v; want index %d term %d data solo", e, idx, term)
	}
}

// Ready.SnapshotDue fires once per SnapshotThreshold applied entries.
func TestSnapshotDueSignal(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotThreshold = 10 })
	lead := c.elect()
	for range 25 {
		if _, _, err := c.nodes[lead].Propose([]byte("x")); err != nil {
			t.Fatal(err)
		}
		c.process()
	}
	// 26 entries applied (with the leader's no-op): signals at 10 and 20.
	if got := c.due[lead]; got != 2 {
		t.Errorf("leader got SnapshotDue %d times for 26 applied entries; want 2 (threshold 10)", got)
	}
}

// failingStorage fails every read once armed.
type failingStorage struct {
	*MemoryStorage
	armed bool
}

var errDisk = errors.New("disk on fire")

func (f *failingStorage) Entries(lo, hi, maxBytes uint64) ([]Entry, error) {
	if f.armed {
		return nil, errDisk
	}
	return f.MemoryStorage.Entries(lo, hi, maxBytes)
}

func (f *failingStorage) Term(i uint64) (uint64, error) {
	if f.armed {
		return 0, errDisk
	}
	return f.MemoryStorage.Term(i)
}

// A storage failure surfaces as an error wrapping ErrStorage (and the
// storage's own error), never as a panic, and the node stays stopped.
func TestStorageFailureIsAnError(t *testing.T) {
	st := &failingStorage{MemoryStorage: NewMemoryStorage()}
	if err := st.Append(logOf(1, 1, 1)); err != nil {
		t.Fatal(err)
	}
	_ = st.SetHardState(HardState{Term: 1, Commit: 3})
	cfg := DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage = "a", []transport.NodeID{"a", "b", "c"}, st
	rn, err := NewRawNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.armed = true
	if !rn.HasReady() {
		t.Fatalf("HasReady() = false with committed entries to deliver")
	}
	if _, err := rn.Ready(); !errors.Is(err, ErrStorage) || !errors.Is(err, errDisk) {
		t.Fatalf("Ready() error = %v; want ErrStorage wrapping the disk error", err)
	}
	if err := rn.Step(Message{Type: MsgHeartbeat, From: "b", To: "a", Term: 1}); !errors.Is(err, ErrStorage) {
		t.Errorf("Step after a storage failure: error = %v; want ErrStorage", err)
	}
	if _, _, err := rn.Propose([]byte("x")); !errors.Is(err, ErrStorage) {
		t.Errorf("Propose after a storage failure: error = %v; want ErrStorage", err)
	}
}

// ReportUnreachable stops the pipeline to a follower (back to probing);
// ReportSnapshot with an error abandons the transfer, which restarts later.
func TestReports(t *testing.T) {
	c := newTestCluster(t, 3, snapshotTweak)
	lead := c.elect()
	rn := c.nodes[lead]
	var f transport.NodeID
	for _, id := range c.ids {
		if id != lead {
			f = id
			break
		}
	}
	if st := rn.Status().Progress[f]; st.State != ProgressReplicate {
		t.Fatalf("progress = %+v; want replicate", st)
	}
	rn.ReportUnreachable(f)
	if st := rn.Status().Progress[f]; st.State != ProgressProbe {
		t.Errorf("after ReportUnreachable: state %v; want probe", st.State)
	}
	// Cut f off, compact, and let the leader start a snapshot transfer.
	c.drop = func(m Message) bool { return m.To == f || m.From == f }
	for range 5 {
		if _, _, err := rn.Propose([]byte("x")); err != nil {
			t.Fatal(err)
		}
		c.process()
	}
	c.compact(lead, []byte("state"))
	c.drop = func(m Message) bool { return m.Type == MsgSnap }
	for range 5 {
		c.tickAll()
	}
	if st := rn.Status().Progress[f]; st.State != ProgressSnapshot {
		t.Fatalf("progress = %+v; want a snapshot transfer", st)
	}
	rn.ReportSnapshot(f, errors.New("connection reset"))
	if st := rn.Status().Progress[f]; st.State != ProgressProbe {
		t.Errorf("after a failed ReportSnapshot: state %v; want probe", st.State)
	}
	c.drop = nil
	for range 5 {
		c.tickAll()
	}
	if got, _ := c.stores[f].Snapshot(); got.Meta.Index == 0 {
		t.Errorf("follower has no snapshot after the transfer was restarted")
	}
}

// MustSync is set exactly when the term, the vote, the log or the snapshot
// changed: a new commit index alone need not be synced.
func TestMustSync(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	lead := c.elect()
	var f transport.NodeID
	for _, id := range c.ids {
		if id != lead {
			f = id
			break
		}
	}
	fn := c.nodes[f]
	st := fn.Status()
	tests := []struct {
		name string
		m    Message
		want bool
	}{
		{"new entry", Message{Type: MsgApp, From: lead, To: f, Term: st.Term, Index: st.LastIndex, LogTerm: st.Term, Commit: st.Commit,
			Entries: []Entry{{Term: st.Term, Index: st.LastIndex + 1, Data: []byte("x")}}}, true},
		{"commit only", Message{Type: MsgHeartbeat, From: lead, To: f, Term: st.Term, Commit: st.LastIndex + 1}, false},
		{"new term", Message{Type: MsgHeartbeat, From: lead, To: f, Term: st.Term + 1, Commit: st.LastIndex + 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := fn.Step(tt.m); err != nil {
				t.Fatal(err)
			}
			rd, err := fn.Ready()
			if err != nil {
				t.Fatal(err)
			}
			if rd.MustSync != tt.want {
				t.Errorf("MustSync = %v (HardState %+v, %d entries); want %v", rd.MustSync, rd.HardState, len(rd.Entries), tt.want)
			}
			_ = c.stores[f].Append(rd.Entries)
			fn.Advance(rd)
		})
	}
}

// A state machine that is durable on its own may be ahead of the saved
// commit index (a commit-only HardState change is not synced). Entries up
// to Config.Applied must not be delivered a second time.
// firstIndexOf returns the index of ents[0], or 0 if ents is empty.
func firstIndexOf(ents []Entry) uint64 {
	if len(ents) == 0 {
		return 0
	}
	return ents[0].Index
}

func TestRestartAppliedAheadOfSavedCommit(t *testing.T) {
	// Log [1 1 1] in term 1, saved commit index 1.
	restart := func(applied uint64) (*RawNode, error) {
		s := NewMemoryStorage()
		_ = s.Append(logOf(1, 1, 1))
		_ = s.SetHardState(HardState{Term: 1, Commit: 1})
		cfg := DefaultConfig()
		cfg.ID, cfg.Peers, cfg.Storage, cfg.Applied = "a", []transport.NodeID{"a", "b", "c"}, s, applied
		return NewRawNode(cfg)
	}
	tests := []struct {
		name       string
		applied    uint64
		wantCommit uint64
		wantFirst  uint64 // index of the first CommittedEntries (0 = none)
	}{
		{"behind the saved commit", 0, 1, 1},
		{"at the saved commit", 1, 1, 0},
		{"ahead of the saved commit", 3, 3, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rn, err := restart(tt.applied)
			if err != nil {
				t.Fatalf("NewRawNode(Applied: %d): %v", tt.applied, err)
			}
			if got := rn.Status().Commit; got != tt.wantCommit {
				t.Errorf("commit = %d; want %d", got, tt.wantCommit)
			}
			rd, err := rn.Ready()
			if err != nil {
				t.Fatal(err)
			}
			if first := firstIndexOf(rd.CommittedEntries); first != tt.wantFirst {
				t.Errorf("first committed entry delivered = %d; want %d", first, tt.wantFirst)
			}
		})
	}
	if _, err := restart(4); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("NewRawNode(Applied: 4) with last index 3: error = %v; want ErrInvalidConfig", err)
	}
}

// A zero RawNode (not built by NewRawNode) reports errors and ignores the
// rest; it never panics.
func TestZeroRawNode(t *testing.T) {
	var rn RawNode
	rn.Tick()
	rn.Advance(Ready{})
	rn.ReportUnreachable("b")
	rn.ReportSnapshot("b", errors.New("lost"))
	_, _, errPropose := rn.Propose([]byte("x"))
	_, errReady := rn.Ready()
	tests := []struct {
		name string
		err  error
	}{
		{"Step", rn.Step(Message{Type: MsgHeartbeat, From: "b", To: "a", Term: 1})},
		{"Propose", errPropose},
		{"Ready", errReady},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, ErrInvalidConfig) {
			t.Errorf("%s on a zero RawNode: %v; want ErrInvalidConfig", tt.name, tt.err)
		}
	}
	if !rn.HasReady() {
		t.Errorf("HasReady() = false on a zero RawNode; want true, so that Ready reports the error")
	}
	if st := rn.Status(); st.ID != "" || st.Role != Follower {
		t.Errorf("Status() = %+v; want the zero Status", st)
	}
}

// Advance reads the log too (a leader counts its own durable entries
// towards a commit): a storage failure there must become the node's sticky
// error, reported by the next Ready, not a panic in the caller.
func TestStorageFailureInAdvance(t *testing.T) {
	st := &failingStorage{MemoryStorage: NewMemoryStorage()}
	cfg := DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage = "a", []transport.NodeID{"a"}, st
	rn, err := NewRawNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 * cfg.ElectionTicks {
		rn.Tick()
	}
	if got := rn.Status().Role; got != Leader {
		t.Fatalf("single node is %v after two election timeouts; want leader", got)
	}
	rd, err := rn.Ready()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Append(rd.Entries); err != nil {
		t.Fatal(err)
	}
	_ = st.SetHardState(rd.HardState)
	st.armed = true
	rn.Advance(rd)
	if _, err := rn.Ready(); !errors.Is(err, ErrStorage) || !errors.Is(err, errDisk) {
		t.Errorf("Ready() after a failing Advance: error = %v; want ErrStorage wrapping the disk error", err)
	}
}

// MaxInflightBytes bounds the entry bytes in flight to a follower that
// stopped answering, whatever MaxInflightMsgs allows: the leader stops
// once the bytes in flight reach the limit (the last message may cross it
// by at most its own size).
func TestFlowControlInflightBytes(t *testing.T) {
	const limit = 1000
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.MaxInflightMsgs = 100
		cfg.MaxInflightBytes = limit
		cfg.MaxUncommittedBytes = 0
	})
	lead := c.elect()
	rn := c.nodes[lead]
	inflight := map[transport.NodeID]uint64{}
	largest := uint64(0)
	c.drop = func(m Message) bool {
		if m.From == lead && m.Type == MsgApp && len(m.Entries) > 0 {
			n := entsSize(m.Entries)
			inflight[m.To] += n
			largest = max(largest, n)
		}
		return m.From != lead
	}
	for range 50 {
		if _, _, err := rn.Propose(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
		c.process()
	}
	for _, id := range c.ids {
		if id == lead {
			continue
		}
		if got := inflight[id]; got < limit || got >= limit+largest {
			t.Errorf("%d entry bytes sent to silent %s; want the limit %d reached and crossed by less than one message (%d bytes)", got, id, limit, largest)
		}
		if st := rn.Status().Progress[id]; st.InflightBytes != inflight[id] {
			t.Errorf("Status().Progress[%s].InflightBytes = %d; want %d", id, st.InflightBytes, inflight[id])
		}
	}
}

// Advance acts on what the node handed out, not on the Ready value it is
// given: a caller that passes a copy with its slices cleared (or the zero
// Ready) still releases the flow-control window of what it applied.
func TestAdvanceUsesWhatWasHandedOut(t *testing.T) {
	st := NewMemoryStorage()
	cfg := DefaultConfig()
	cfg.ID, cfg.Peers, cfg.Storage, cfg.MaxUncommittedBytes = "a", []transport.NodeID{"a"}, st, 1000
	rn, err := NewRawNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 * cfg.ElectionTicks {
		rn.Tick()
	}
	if _, _, err := rn.Propose(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	for rn.HasReady() {
		rd, err := rn.Ready()
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Append(rd.Entries)
		_ = st.SetHardState(rd.HardState)
		rn.Advance(Ready{})
	}
	if s := rn.Status(); s.Applied != s.Commit || s.UncommittedBytes != 0 {
		t.Errorf("after applying everything: applied %d, commit %d, uncommitted bytes %d; want applied = commit and 0 bytes", s.Applied, s.Commit, s.UncommittedBytes)
	}
}
