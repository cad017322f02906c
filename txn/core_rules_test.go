package txn_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
)

// coreT0 is the start of the core tests' clock.
var coreT0 = time.Unix(1000, 0)

func newCoordinatorCore(t *testing.T, cfg txn.Config) *txn.RawCoordinator {
	t.Helper()
	c, err := txn.NewRawCoordinator("c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Recover(coreT0, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

func newParticipantCore(t *testing.T, id transport.NodeID, cfg txn.Config) *txn.RawParticipant {
	t.Helper()
	p, err := txn.NewRawParticipant(id, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Recover(coreT0, nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func twoWork() []txn.Work {
	return []txn.Work{{Participant: "p1"}, {Participant: "p2"}}
}

// TestCoordinatorVotes: the coordinator commits only once every participant
// voted YES; a duplicated YES counts once, a NO aborts at once (ErrVotedNo,
// with the reason), and a missing vote aborts at the deadline (ErrTimeout),
// which is never later than Config.VoteTimeout.
func TestCoordinatorVotes(t *testing.T) {
	cfg := testConfig()
	yes := txn.Message{Type: txn.MsgVote, Outcome: txn.Committed}
	no := txn.Message{Type: txn.MsgVote, Outcome: txn.Aborted, Reason: "locked"}
	type vote struct {
		from transport.NodeID
		m    txn.Message
	}
	tests := []struct {
		name    string
		timeout time.Duration
		votes   []vote
		tick    time.Duration // after the votes; 0: no tick
		want    txn.Outcome   // Unknown: still voting
		cause   error
	}{
		{"all yes", 0, []vote{{"p1", yes}, {"p2", yes}}, 0, txn.Committed, nil},
		{"one vote missing", 0, []vote{{"p1", yes}}, 0, txn.Unknown, nil},
		{"duplicated yes", 0, []vote{{"p1", yes}, {"p1", yes}}, 0, txn.Unknown, nil},
		{"yes and no", 0, []vote{{"p1", yes}, {"p2", no}}, 0, txn.Aborted, txn.ErrVotedNo},
		{"yes from a stranger", 0, []vote{{"p1", yes}, {"p3", yes}}, 0, txn.Unknown, nil},
		{"vote missing at the deadline", 0, []vote{{"p1", yes}}, cfg.VoteTimeout, txn.Aborted, txn.ErrTimeout},
		{"vote missing just before the deadline", 0, []vote{{"p1", yes}}, cfg.VoteTimeout - time.Millisecond, txn.Unknown, nil},
		{"timeout above VoteTimeout is capped", 2 * cfg.VoteTimeout, []vote{{"p1", yes}}, cfg.VoteTimeout, txn.Aborted, txn.ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCoordinatorCore(t, cfg)
			id := uuid.New()
			if err := c.Begin(coreT0, id, twoWork(), tt.timeout); err != nil {
				t.Fatal(err)
			}
			rds := []txn.Ready{c.Ready()}
			for _, v := range tt.votes {
				v.m.Txn = id
				c.Step(coreT0, v.from, v.m)
				rds = append(rds, c.Ready())
			}
			if tt.tick > 0 {
				c.Tick(coreT0.Add(tt.tick))
				rds = append(rds, c.Ready())
			}
			var res []txn.Result
			for _, rd := range rds {
				res = append(res, rd.Results...)
			}
			got, cause := txn.Unknown, error(nil)
			if len(res) > 0 {
				got = res[0].Outcome
				if res[0].Err != nil {
					cause = res[0].Err
				}
			}
			if len(res) > 1 || got != tt.want || tt.cause != nil && !errors.Is(cause, tt.cause) {
				t.Fatalf("results = %+v; want one %v (cause %v)", res, tt.want, tt.cause)
			}
			if tt.cause == txn.ErrVotedNo {
				var ae *txn.AbortError
				if !errors.As(cause, &ae) || ae.Reason != "locked" || !slices.Equal(ae.Participants, []transport.NodeID{"p2"}) {
					t.Fatalf("abort = %+v; want p2's NO with its reason", cause)
				}
			}
		})
	}
}

// TestCoordinatorKeepsDecision: the caller giving up (Abort) aborts only
// a transaction still voting; a committed one stays committed and its
// COMMIT goes on being sent. A QUERY while voting is answered "still
// voting", never with a decision.
func TestCoordinatorKeepsDecision(t *testing.T) {
	cfg := testConfig()
	c := newCoordinatorCore(t, cfg)
	id := uuid.New()
	if err := c.Begin(coreT0, id, twoWork(), 0); err != nil {
		t.Fatal(err)
	}
	c.Ready()
	c.Step(coreT0, "p1", txn.Message{Type: txn.MsgVote, Txn: id, Outcome: txn.Committed})
	c.Ready()
	c.Step(coreT0, "p1", txn.Message{Type: txn.MsgQuery, Txn: id})
	if got := decisionsSent(c.Ready()); got["p1"] != txn.Unknown || len(got) != 1 {
		t.Fatalf("answer to a QUERY while voting = %v; want Unknown to p1", got)
	}
	c.Step(coreT0, "p2", txn.Message{Type: txn.MsgVote, Txn: id, Outcome: txn.Committed})
	c.Ready()
	if c.Abort(coreT0, id) {
		t.Fatalf("Abort() of a committed transaction = true; want false")
	}
	rd := c.Ready()
	if len(rd.Results) != 0 || len(rd.Messages) != 0 {
		t.Fatalf("Abort() of a committed transaction produced %+v; want nothing", rd)
	}
	if s := c.Status(); s.Committed != 1 || s.Aborted != 0 {
		t.Fatalf("Status() = %+v; want one committed", s)
	}
	c.Tick(coreT0.Add(cfg.RetryInterval))
	if got := decisionsSent(c.Ready()); got["p1"] != txn.Committed || got["p2"] != txn.Committed {
		t.Fatalf("decisions re-sent = %v; want COMMIT to p1 and p2", got)
	}
}

// TestCoordinatorForgetsOnlyOnceAllAcked: a duplicated ACK counts once;
// the transaction is forgotten (END) only when every participant has
// acknowledged, and until then its decision is re-sent to the others.
func TestCoordinatorForgetsOnlyOnceAllAcked(t *testing.T) {
	cfg := testConfig()
	c := newCoordinatorCore(t, cfg)
	id := uuid.New()
	if err := c.Begin(coreT0, id, twoWork(), 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range []transport.NodeID{"p1", "p2"} {
		c.Step(coreT0, p, txn.Message{Type: txn.MsgVote, Txn: id, Outcome: txn.Committed})
	}
	c.Ready()
	ack := txn.Message{Type: txn.MsgAck, Txn: id}
	c.Step(coreT0, "p1", ack)
	c.Step(coreT0, "p1", ack)
	if rd := c.Ready(); len(rd.Lazy) != 0 || c.Status().Committed != 1 {
		t.Fatalf("after p1's ACK twice: lazy %v, status %+v; want no END, still committed", rd.Lazy, c.Status())
	}
	c.Tick(coreT0.Add(cfg.RetryInterval))
	if got := decisionsSent(c.Ready()); len(got) != 1 || got["p2"] != txn.Committed {
		t.Fatalf("decisions re-sent = %v; want COMMIT to p2 only", got)
	}
	c.Step(coreT0, "p2", ack)
	if rd := c.Ready(); len(rd.Lazy) != 1 || rd.Lazy[0].Type != txn.RecEnd || c.Status() != (txn.CoordinatorStatus{}) {
		t.Fatalf("after every ACK: lazy %v, status %+v; want an END and nothing tracked", rd.Lazy, c.Status())
	}
}

// TestCoordinatorCheckpointKeepsCommits: a checkpoint records a committed
// transaction awaiting ACKs as a COMMIT, so a coordinator recovered from
// it re-sends COMMIT, never ABORT.
func TestCoordinatorCheckpointKeepsCommits(t *testing.T) {
	cfg := testConfig()
	cfg.CheckpointEvery = 1
	c := newCoordinatorCore(t, cfg)
	id := uuid.New()
	if err := c.Begin(coreT0, id, twoWork(), 0); err != nil {
		t.Fatal(err)
	}
	c.Ready()
	for _, p := range []transport.NodeID{"p1", "p2"} {
		c.Step(coreT0, p, txn.Message{Type: txn.MsgVote, Txn: id, Outcome: txn.Committed})
	}
	rd := c.Ready()
	if rd.Checkpoint == nil {
		t.Fatalf("no checkpoint after the COMMIT; want one")
	}
	c2, err := txn.NewRawCoordinator("c", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.Recover(coreT0, rd.Checkpoint); err != nil {
		t.Fatal(err)
	}
	if got := decisionsSent(c2.Ready()); got["p1"] != txn.Committed || got["p2"] != txn.Committed {
		t.Fatalf("recovered from checkpoint %v: decisions %v; want COMMIT to p1 and p2", rd.Checkpoint, got)
	}
}

// preparedParticipant returns a participant core that voted YES on id
// (coordinator "c", peers p1 and p2) and the Ready of its vote.
func preparedParticipant(t *testing.T, cfg txn.Config, id uuid.UUID) (*txn.RawParticipant, txn.Ready) {
	t.Helper()
	p := newParticipantCore(t, "p1", cfg)
	p.Step(coreT0, "c", txn.Message{Type: txn.MsgPrepare, Txn: id, Coordinator: "c", Participants: []transport.NodeID{"p1", "p2"}})
	p.Ready()
	p.Prepared(coreT0, id, []byte("intent"), nil)
	return p, p.Ready()
}

func votesOf(rd txn.Ready) []txn.Message {
	var out []txn.Message
	for _, e := range rd.Messages {
		if e.Msg.Type == txn.MsgVote {
			out = append(out, e.Msg)
		}
	}
	return out
}

// TestParticipantVoteRules: a YES vote goes in the same Ready as the
// PREPARED record holding the intent; an ABORT before or during the
// preparation makes the participant vote NO (and never take the locks, or
// release them), and a repeated PREPARE of an aborted transaction gets
// the same NO.
func TestParticipantVoteRules(t *testing.T) {
	cfg := testConfig()
	id := uuid.New()
	_, rd := preparedParticipant(t, cfg, id)
	if v := votesOf(rd); len(v) != 1 || v[0].Outcome != txn.Committed || len(rd.Log) != 1 || rd.Log[0].Type != txn.RecPrepared || string(rd.Log[0].Data) != "intent" {
		t.Fatalf("YES Ready: votes %v, log %v; want one YES with a PREPARED record of the intent", v, rd.Log)
	}

	prepare := txn.Message{Type: txn.MsgPrepare, Txn: id, Coordinator: "c", Participants: []transport.NodeID{"p1", "p2"}}
	abort := txn.Message{Type: txn.MsgDecision, Txn: id, Outcome: txn.Aborted}

	// ABORT overtakes the PREPARE.
	p := newParticipantCore(t, "p1", cfg)
	p.Step(coreT0, "c", abort)
	p.Ready()
	p.Step(coreT0, "c", prepare)
	rd = p.Ready()
	if v := votesOf(rd); len(rd.Actions) != 0 || len(v) != 1 || v[0].Outcome != txn.Aborted {
		t.Fatalf("PREPARE after ABORT: actions %v, votes %v; want no preparation and a NO", rd.Actions, v)
	}

	// ABORT while the resource manager prepares.
	p = newParticipantCore(t, "p1", cfg)
	p.Step(coreT0, "c", prepare)
	p.Ready()
	p.Step(coreT0, "c", abort)
	p.Prepared(coreT0, id, []byte("intent"), nil)
	rd = p.Ready()
	if v := votesOf(rd); len(v) != 1 || v[0].Outcome != txn.Aborted || len(rd.Actions) != 1 || rd.Actions[0].Kind != txn.ActAbort {
		t.Fatalf("ABORT during Prepare: votes %v, actions %v; want a NO and the preparation aborted", v, rd.Actions)
	}

	// A NO vote is repeated, with its reason, to a re-sent PREPARE.
	p = newParticipantCore(t, "p1", cfg)
	p.Step(coreT0, "c", prepare)
	p.Ready()
	p.Prepared(coreT0, id, nil, errors.New("key locked"))
	p.Ready()
	p.Step(coreT0, "c", prepare)
	rd = p.Ready()
	if v := votesOf(rd); len(v) != 1 || v[0].Outcome != txn.Aborted || v[0].Reason != "key locked" {
		t.Fatalf("re-sent PREPARE after NO: votes %v; want the NO again with its reason", v)
	}
}

// TestParticipantDecisionRules: an in-doubt participant takes a decision
// only from its coordinator or a peer, logs DONE in the Ready that applies
// and acknowledges it (a restart re-applies a commit it finds so), and
// remembers the outcome for FinishedTTL.
func TestParticipantDecisionRules(t *testing.T) {
	cfg := testConfig()
	id := uuid.New()
	p, prd := preparedParticipant(t, cfg, id)
	p.Step(coreT0, "stranger", txn.Message{Type: txn.MsgDecision, Txn: id, Outcome: txn.Aborted})
	if rd := p.Ready(); len(rd.Actions) != 0 || p.Outcome(id) != txn.Unknown {
		t.Fatalf("decision from a stranger: actions %v, outcome %v; want ignored", rd.Actions, p.Outcome(id))
	}
	p.Step(coreT0, "c", txn.Message{Type: txn.MsgDecision, Txn: id, Outcome: txn.Committed})
	rd := p.Ready()
	if len(rd.Log) != 1 || rd.Log[0].Type != txn.RecDone || rd.Log[0].Outcome != txn.Committed ||
		len(rd.Actions) != 1 || rd.Actions[0].Kind != txn.ActCommit {
		t.Fatalf("COMMIT: log %v, actions %v; want DONE(committed) logged with the commit", rd.Log, rd.Actions)
	}
	restarted, err := txn.NewRawParticipant("p1", cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := restarted.Recover(coreT0, append(prd.Log, rd.Log...))
	if err != nil || len(rec.Committed) != 1 || string(rec.Committed[0].Data) != "intent" || len(rec.InDoubt) != 0 {
		t.Fatalf("Recover(PREPARED, DONE) = %+v, %v; want the intent to re-apply, nothing in doubt", rec, err)
	}
	p.Tick(coreT0.Add(cfg.FinishedTTL - time.Millisecond))
	if got := p.Outcome(id); got != txn.Committed {
		t.Fatalf("Outcome() just before FinishedTTL = %v; want committed", got)
	}
	p.Tick(coreT0.Add(cfg.FinishedTTL))
	if got := p.Outcome(id); got != txn.Unknown {
		t.Fatalf("Outcome() at FinishedTTL = %v; want forgotten", got)
	}
}

// TestParticipantNoRecordAnswer: a participant asked by a peer about a
// transaction it has no record of aborts it durably (DONE in the Ready of
// its answer) and vouches for its memory only back to its last restart;
// after a restart from its log (or a checkpoint) it still votes NO to the
// late PREPARE.
func TestParticipantNoRecordAnswer(t *testing.T) {
	cfg := testConfig()
	cfg.CheckpointEvery = 1
	id := uuid.New()
	p := newParticipantCore(t, "p2", cfg)
	asked := coreT0.Add(time.Second)
	p.Step(asked, "p1", txn.Message{Type: txn.MsgQuery, Txn: id})
	rd := p.Ready()
	if len(rd.Log) != 1 || rd.Log[0].Type != txn.RecDone || rd.Log[0].Outcome != txn.Aborted {
		t.Fatalf("no-record answer's log = %v; want DONE(aborted)", rd.Log)
	}
	if len(rd.Messages) != 1 || rd.Messages[0].Msg.Outcome != txn.Aborted || rd.Messages[0].Msg.KnownFor > asked.Sub(coreT0) {
		t.Fatalf("answer = %+v; want an abort vouched for at most %v (the uptime)", rd.Messages, asked.Sub(coreT0))
	}
	for _, log := range [][]txn.Record{rd.Log, rd.Checkpoint} {
		p2, err := txn.NewRawParticipant("p2", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p2.Recover(asked, log); err != nil {
			t.Fatal(err)
		}
		p2.Step(asked, "c", txn.Message{Type: txn.MsgPrepare, Txn: id, Coordinator: "c", Participants: []transport.NodeID{"p1", "p2"}})
		rd2 := p2.Ready()
		if v := votesOf(rd2); len(rd2.Actions) != 0 || len(v) != 1 || v[0].Outcome != txn.Aborted {
			t.Fatalf("recovered from %v: late PREPARE gave actions %v, votes %v; want a NO", log, rd2.Actions, v)
		}
	}
}

// TestParticipantCheckpointKeepsInDoubt: a participant checkpoint keeps
// every in-doubt transaction with its intent, so a restart from it is in
// doubt again (locks re-taken) rather than presuming abort.
func TestParticipantCheckpointKeepsInDoubt(t *testing.T) {
	cfg := testConfig()
	cfg.CheckpointEvery = 1
	id := uuid.New()
	_, rd := preparedParticipant(t, cfg, id)
	if rd.Checkpoint == nil {
		t.Fatalf("no checkpoint after PREPARED; want one")
	}
	p2, err := txn.NewRawParticipant("p1", cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := p2.Recover(coreT0, rd.Checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.InDoubt) != 1 || rec.InDoubt[0].Txn != id || string(rec.InDoubt[0].Data) != "intent" {
		t.Fatalf("recovered from checkpoint %v: in doubt %v; want %v with its intent", rd.Checkpoint, rec.InDoubt, id)
	}
}

// TestCoordinatorPresumedAbortAnswers: a coordinator with no record of a
// transaction answers a QUERY or a YES vote with ABORT at once (presumed
// abort), and a YES from a participant that already acknowledged the
// decision (a duplicate PREPARE made it prepare again) is told to abort
// that preparation, never sent the COMMIT again (it would apply twice).
// Begin refuses an ID it still tracks.
func TestCoordinatorPresumedAbortAnswers(t *testing.T) {
	cfg := testConfig()
	c := newCoordinatorCore(t, cfg)
	unknown := uuid.New()
	c.Step(coreT0, "p1", txn.Message{Type: txn.MsgQuery, Txn: unknown})
	c.Step(coreT0, "p2", txn.Message{Type: txn.MsgVote, Txn: unknown, Outcome: txn.Committed})
	if got := decisionsSent(c.Ready()); got["p1"] != txn.Aborted || got["p2"] != txn.Aborted {
		t.Fatalf("answers about an unknown transaction = %v; want ABORT to p1 and p2", got)
	}

	id := uuid.New()
	if err := c.Begin(coreT0, id, twoWork(), 0); err != nil {
		t.Fatal(err)
	}
	if err := c.Begin(coreT0, id, twoWork(), 0); !errors.Is(err, txn.ErrDuplicateTxn) {
		t.Fatalf("Begin() of a tracked ID = %v; want ErrDuplicateTxn", err)
	}
	for _, p := range []transport.NodeID{"p1", "p2"} {
		c.Step(coreT0, p, txn.Message{Type: txn.MsgVote, Txn: id, Outcome: txn.Committed})
	}
	c.Ready()
	c.Step(coreT0, "p1", txn.Message{Type: txn.MsgAck, Txn: id})
	c.Ready()
	c.Step(coreT0, "p1", txn.Message{Type: txn.MsgVote, Txn: id, Outcome: txn.Committed})
	if got := decisionsSent(c.Ready()); len(got) != 1 || got["p1"] != txn.Aborted {
		t.Fatalf("answer to a YES after p1's ACK = %v; want ABORT to p1", got)
	}
}

// TestParticipantQueryRules: an in-doubt participant asks its coordinator
// every RetryInterval and turns to its peers only once the coordinator has
// been silent for three rounds (while it answers "still voting" a peer
// that has not received its PREPARE yet would only abort a slow
// transaction). A peer's "no record" abort counts only if it vouches for
// its memory, with a k/8 margin, back to the preparation.
func TestParticipantQueryRules(t *testing.T) {
	cfg := testConfig()
	id := uuid.New()
	queries := func(rd txn.Ready) map[transport.NodeID]bool {
		got := map[transport.NodeID]bool{}
		for _, e := range rd.Messages {
			if e.Msg.Type == txn.MsgQuery {
				got[e.To] = true
			}
		}
		return got
	}
	p, _ := preparedParticipant(t, cfg, id)
	for round := 1; round <= 4; round++ {
		now := coreT0.Add(time.Duration(round) * cfg.RetryInterval)
		p.Tick(now)
		if got := queries(p.Ready()); !got["c"] || got["p2"] {
			t.Fatalf("round %d, coordinator answering: queries to %v; want the coordinator only", round, got)
		}
		p.Step(now, "c", txn.Message{Type: txn.MsgDecision, Txn: id, Outcome: txn.Unknown})
	}
	p, _ = preparedParticipant(t, cfg, id)
	p.Tick(coreT0.Add(3 * cfg.RetryInterval))
	if got := queries(p.Ready()); !got["c"] || !got["p2"] {
		t.Fatalf("coordinator silent for 3 rounds: queries to %v; want the coordinator and p2", got)
	}

	at := coreT0.Add(900 * time.Millisecond)
	p, _ = preparedParticipant(t, cfg, id)
	p.Step(at, "p2", txn.Message{Type: txn.MsgDecision, Txn: id, Outcome: txn.Aborted, KnownFor: time.Second})
	if got := p.Outcome(id); got != txn.Unknown {
		t.Fatalf("abort vouched for 1s, 0.9s after preparing: outcome %v; want still in doubt (k/8 margin)", got)
	}
	p.Step(at, "p2", txn.Message{Type: txn.MsgDecision, Txn: id, Outcome: txn.Aborted, KnownFor: 2 * time.Second})
	if got := p.Outcome(id); got != txn.Aborted {
		t.Fatalf("abort vouched for 2s, 0.9s after preparing: outcome %v; want aborted", got)
	}
}

// TestParticipantIgnoresPrepareNotNamingIt: a PREPARE whose participant
// list does not name the participant (or that names no coordinator) is
// dropped: it could never resolve the transaction by asking its peers.
func TestParticipantIgnoresPrepareNotNamingIt(t *testing.T) {
	cfg := testConfig()
	tests := []struct {
		name string
		m    txn.Message
	}{
		{"not a participant", txn.Message{Type: txn.MsgPrepare, Coordinator: "c", Participants: []transport.NodeID{"p2", "p3"}}},
		{"no coordinator", txn.Message{Type: txn.MsgPrepare, Participants: []transport.NodeID{"p1", "p2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newParticipantCore(t, "p1", cfg)
			tt.m.Txn = uuid.New()
			p.Step(coreT0, "c", tt.m)
			if rd := p.Ready(); len(rd.Actions) != 0 || len(rd.Messages) != 0 || p.Status() != (txn.ParticipantStatus{}) {
				t.Fatalf("PREPARE %+v: Ready %+v, status %+v; want it dropped", tt.m, rd, p.Status())
			}
		})
	}
}
