package consensus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/transport"
)

// Proposer is what a Client sends commands to: a *Node, or a stub that
// forwards to a node over the network. Propose follows Node.Propose's
// error contract (ErrNotLeader carrying a *raft.NotLeaderError, ErrClosed,
// ErrProposalLost, ErrOutcomeUnknown, ErrStopped).
type Proposer interface {
	Propose(ctx context.Context, cmd []byte) (any, error)
}

var _ Proposer = (*Node)(nil)

// ClientConfig configures a Client.
type ClientConfig struct {
	// AttemptTimeout bounds one attempt on one node, so a partitioned or
	// dead node, or one whose loop is stuck, costs at most this much (to
	// 9/8 of it for callers without a deadline, who share coarse ones)
	// before the next is tried.
	AttemptTimeout time.Duration
	// RetryInterval is the first pause after a round in which no node
	// knew the leader (an election is under way); it doubles up to
	// 8*RetryInterval.
	RetryInterval time.Duration
}

// DefaultClientConfig returns a configuration suited to DefaultConfig
// nodes.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{AttemptTimeout: time.Second, RetryInterval: 20 * time.Millisecond}
}

// Validate reports the first problem with c.
func (c ClientConfig) Validate() error {
	switch {
	case c.AttemptTimeout <= 0:
		return fmt.Errorf("%w: client AttemptTimeout is %v; want > 0", ErrInvalidConfig, c.AttemptTimeout)
	case c.RetryInterval <= 0:
		return fmt.Errorf("%w: client RetryInterval is %v; want > 0", ErrInvalidConfig, c.RetryInterval)
	}
	return nil
}

// Client sends commands to a cluster: it remembers the leader, follows
// ErrNotLeader's hint, moves on from dead nodes and retries until the
// caller's context ends. It is safe for concurrent use.
//
// When the cluster keeps client sessions (its state machine is wrapped by
// WithSessions, which a member reports through SessionKeeper), every
// command goes through a session and is applied exactly once: the Client
// registers a session on first use, stamps each command with (session,
// sequence number), and retries a command whose outcome is unknown (an
// attempt timed out, the node stopped with it in flight) with the same
// stamp, so a copy that was applied already is answered from the session
// cache instead of being applied again. If the session expired, the Client
// opens a new one and proposes the command again when no earlier attempt
// of it can have been applied; otherwise it reports the outcome as unknown
// (ErrOutcomeUnknown wrapping ErrSessionExpired).
//
// Without sessions, a failure with unknown outcome is returned to the
// caller, never retried: retrying could apply the command twice.
type Client struct {
	cfg      ClientConfig
	ids      []transport.NodeID // sorted, for a deterministic search order
	procs    []Proposer         // procs[i] is member ids[i]
	members  map[transport.NodeID]Proposer
	sessions bool          // commands go through sessions
	register chan struct{} // size 1: a token held by the goroutine registering a session
	// inFlight is how many commands a session numbers past its oldest
	// unanswered one (see clientSession.limit): sessionRing, or the
	// smallest SessionConfig.MaxPending of the members that are *Nodes
	// (sessionLimiter), whose tables then never refuse a command as too
	// many pending.
	inFlight int

	// bounded[i] is procs[i] if it is a *Node itself, else nil: a *Node
	// takes attempts through its unexported propose, which a type
	// embedding *Node inherits too, but such a wrapper's own Propose (an
	// access check, say) must not be skipped. Kept rather than asserted
	// per attempt so that BenchmarkClientOverhead can stand in for a
	// *Node.
	bounded []boundedProposer

	leader atomic.Int32                  // index in ids of the presumed leader
	sess   atomic.Pointer[clientSession] // nil until registered, and after it expired
	// windows are the attempt contexts shared by the attempts of callers
	// whose context never ends (see attemptContext). Each attempt picks
	// one at random: a Node.Propose waits on its context's Done channel,
	// and one channel for all callers would be a point of contention.
	windows [attemptWindows]atomic.Pointer[attemptWindow]
}

// attemptWindows is the number of shared attempt contexts of a Client.
const attemptWindows = 8

// attemptWindow is a context shared by attempts (see attemptContext).
type attemptWindow struct {
	ctx      context.Context
	cancel   context.CancelFunc // never called: the context ends at its deadline
	deadline time.Time          // ctx's
	stale    atomic.Bool        // set once the window is too old for a new attempt
}

// clientSession is the Client's side of a session. Numbering a command
// and noting that its caller returned take no lock: they are atomic
// operations on a ring of the open numbers.
type clientSession struct {
	// Read by every command (the ring's slice header too), written
	// (almost) never: kept off the cache lines of the counters below,
	// which callers on every core write, so that reading them does not
	// miss the cache each time one moves.
	id SessionID
	// limit is how many numbers from low up may be taken at once (at
	// most len(ended)): begin waits while that many are. Kept at or
	// below the table's MaxPending, it spares the table refusing
	// commands as too many pending: every result the table caches, and
	// the command it applies, then have a seq in [A, A+limit), A the
	// highest ack mark it has seen (a command is numbered less than
	// limit past the mark it is stamped with, which is at most A).
	limit uint64
	// ended is a ring: ended[seq&(len(ended)-1)] == seq once the Propose
	// of seq returned (a slot holds the number that last used it, so an
	// older lap never reads as ended). begin waits while limit
	// numbers from low up are taken, which keeps the slots of open
	// numbers distinct.
	ended []atomic.Uint64 // its length is a power of two
	// full is the ack mark of the last command the table refused with
	// ErrTooManyPending (0: none yet): while low stays at or below it,
	// the session's cache is full and a new command would be refused too.
	full    atomic.Uint64
	waiters atomic.Int32 // callers in awaitLow
	mu      sync.Mutex   // guards moved
	// moved, when not nil, is closed (and set to nil) when low moves: a
	// command waiting for room (see awaitLow) waits on it.
	moved chan struct{}
	// beginHook, if set (by a test), runs in begin between its reading
	// of low and of next.
	beginHook func()

	_ cacheLinePad
	// next is the next sequence number; next-low <= limit. Every
	// begin writes it.
	//
	// low is the lowest sequence number whose Propose has not returned
	// (next if none): the "acked" mark sent with every command. It only
	// moves up, by the caller of the oldest open number (see end).
	//
	// The two share a cache line: every command reads low right after
	// it moved next (begin, then its stamp) and moves low when it ends,
	// so on a machine of several cores one transfer of the line serves
	// both; on lines of their own, each would cost a transfer.
	next atomic.Uint64
	low  atomic.Uint64
	_    cacheLinePad
}

// cacheLinePad keeps the fields around it on separate cache lines (64
// bytes on the machines Go runs on most; 128 covers those that fetch
// lines in pairs).
type cacheLinePad [128]byte

// sessionRing is the size of a clientSession's ring: how many commands a
// Client may number past its oldest unanswered one when it does not know
// the members' SessionConfig.MaxPending (they are not *Nodes). It is twice
// the default MaxPending, past which the session's cache refuses them
// anyway.
const sessionRing = 8192

// newClientSession returns the Client's side of session id with a ring of
// ring slots, a power of two, and a limit of as many open numbers.
func newClientSession(id SessionID, ring int) *clientSession {
	return newLimitedSession(id, ring, ring)
}

// newLimitedSession returns the Client's side of session id numbering at
// most limit commands past its oldest unanswered one (0 < limit <= ring),
// with a ring of ring slots, a power of two.
func newLimitedSession(id SessionID, ring, limit int) *clientSession {
	if ring <= 0 || ring&(ring-1) != 0 || limit <= 0 || limit > ring {
		panic(fmt.Sprintf("consensus: client session ring of %d slots, limit %d; want a power of two and 0 < limit <= ring", ring, limit))
	}
	s := &clientSession{id: id, ended: make([]atomic.Uint64, ring), limit: uint64(limit)}
	s.low.Store(1)
	s.next.Store(1)
	return s
}

// NewClient returns a Client for the given members. It uses sessions when
// a member reports that it keeps them (SessionKeeper); members that
// disagree are refused.
func NewClient(members map[transport.NodeID]Proposer, cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("%w: client has no members", ErrInvalidConfig)
	}
	c := &Client{cfg: cfg, members: make(map[transport.NodeID]Proposer, len(members)), register: make(chan struct{}, 1), inFlight: sessionRing}
	without := transport.NodeID("")
	for id, p := range members {
		if id == "" || isNil(p) {
			return nil, fmt.Errorf("%w: client member %q is empty or nil", ErrInvalidConfig, id)
		}
		c.members[id] = p
		c.ids = append(c.ids, id)
		if l, ok := p.(sessionLimiter); ok {
			if k := l.sessionMaxPending(); k > 0 {
				c.inFlight = min(c.inFlight, k)
			}
		}
		if k, ok := p.(SessionKeeper); ok {
			if k.KeepsSessions() {
				c.sessions = true
			} else {
				without = id
			}
		}
	}
	if c.sessions && without != "" {
		return nil, fmt.Errorf("%w: client member %q keeps no sessions but others do: wrap every node's state machine with WithSessions", ErrInvalidConfig, without)
	}
	slices.Sort(c.ids)
	for _, id := range c.ids {
		c.procs = append(c.procs, c.members[id])
		var b boundedProposer
		if n, ok := c.members[id].(*Node); ok {
			b = n
		}
		c.bounded = append(c.bounded, b)
	}
	return c, nil
}

// errNoClient is what a Client not created by NewClient reports.
var errNoClient = fmt.Errorf("%w: Client not created by NewClient", ErrInvalidConfig)

// Leader returns the node the client currently believes leads ("" for a
// Client not created by NewClient).
func (c *Client) Leader() transport.NodeID {
	if c == nil || len(c.ids) == 0 {
		return ""
	}
	return c.ids[c.leader.Load()]
}

// Sessions reports whether the client sends commands through sessions.
func (c *Client) Sessions() bool { return c != nil && c.sessions }

// Propose proposes cmd to the leader and returns the result of applying it.
// It returns when the command is applied, when a failure is final, or when
// ctx ends; the error then wraps ctx's error (outcome unknown) and names
// the last failure. With sessions, failures with unknown outcome are
// retried with the command's stamp; without, they are returned. After
// trying as many nodes as there are members without success (an election
// is under way), it pauses before the next round.
func (c *Client) Propose(ctx context.Context, cmd []byte) (any, error) {
	if c == nil || len(c.ids) == 0 {
		return nil, errNoClient
	}
	if ctx == nil {
		return nil, ErrNilContext
	}
	if !c.sessions {
		res, _, err := c.send(ctx, &request{plain: cmd}, false)
		return res, err
	}
	for {
		s, err := c.session(ctx)
		if err != nil {
			return nil, err
		}
		seq, err := c.begin(ctx, s)
		if err != nil {
			return nil, err
		}
		res, reopen, err := c.proposeStamped(ctx, s, seq, cmd)
		c.end(s, seq)
		if !reopen {
			return res, err
		}
		// Certainly not applied, and the session expired: propose it in
		// a new session.
	}
}

// proposeStamped proposes cmd as command seq of session s until it is
// applied (or answered from the session cache), fails for good, or ctx
// ends. Every attempt carries the same (session, seq) stamp. It reports
// reopen when the session expired and the command was certainly not
// applied, so that the caller can propose it in a new session.
func (c *Client) proposeStamped(ctx context.Context, s *clientSession, seq uint64, cmd []byte) (res any, reopen bool, err error) {
	ambiguous := false // an attempt may have been applied
	pause := c.cfg.RetryInterval
	if full := s.full.Load(); full != 0 && s.low.Load() <= full && seq != s.low.Load() {
		// The cache was full at the current mark: wait for room rather
		// than send a command bound to be refused (a wasted log entry).
		if err := c.awaitLow(ctx, s, full, 8*c.cfg.RetryInterval); err != nil {
			return nil, false, fmt.Errorf("consensus: client: %w (waiting for room in the session cache)", err)
		}
	}
	r := &request{s: s, seq: seq, plain: cmd}
	// The common case first, without send's loop: one attempt on the
	// presumed leader, if it is a *Node. Answered (with a result or a
	// refusal), the answer is handled below as send's would be; failed,
	// the failure is handed to sendAfter, which goes on from it as if it
	// had made the attempt (ambiguity included) and does not try that
	// node again at once.
	var amb bool
	sent := false // res, amb and err hold an answer not yet handled
	if leader := int(c.leader.Load()); c.bounded[leader] != nil {
		var timedOut bool
		if res, timedOut, err = c.propose(ctx, leader, r); err != nil {
			res, amb, err = c.sendAfter(ctx, r, true, leader, &failedAttempt{err: err, timedOut: timedOut})
		}
		sent = true
	}
	for {
		if !sent {
			res, amb, err = c.send(ctx, r, true)
		}
		sent = false
		ambiguous = ambiguous || amb
		refused := refusal(res)
		if err != nil {
			// A forwarding Proposer may report a refusal as an error.
			if refused = refusal(err); refused == nil {
				return nil, false, err
			}
		}
		switch {
		case refused == nil:
			return res, false, nil
		case errors.Is(refused, ErrTooManyPending):
			// Not applied: the session caches as many results as it may,
			// because an older command of this client is still in flight
			// (its result cannot be dropped). Wait until it returns (the
			// mark moves), at most pause, then retry.
			s.full.Store(r.acked)
			if err := c.awaitLow(ctx, s, r.acked, pause); err != nil {
				return nil, false, fmt.Errorf("consensus: client: %w (last failure: %v)", err, refused)
			}
			pause = min(2*pause, 8*c.cfg.RetryInterval)
		case errors.Is(refused, ErrSessionExpired):
			c.expire(s)
			if ambiguous {
				// An earlier attempt may have been applied before the
				// session expired, and its result went with the session:
				// proposing the command again under a new session could
				// apply it twice.
				return nil, false, fmt.Errorf("consensus: client: %w: %w", ErrOutcomeUnknown, refused)
			}
			return nil, true, nil
		default:
			return nil, false, refused
		}
	}
}

// request is what send proposes: a session command (s non-nil: plain
// stamped as command seq of s), or plain as it is.
type request struct {
	s     *clientSession
	seq   uint64
	plain []byte
	acked uint64 // the ack mark of the last attempt's stamp
}

// boundedProposer is a Proposer that takes an attempt's bound (and, with
// owned, the command itself) instead of a context: *Node, and the
// benchmarks' stand-in for one.
type boundedProposer interface {
	propose(ctx context.Context, cmd []byte, owned bool, bound time.Time) (any, error)
}

var _ boundedProposer = (*Node)(nil)

// propose makes one attempt of r on member i, bounded by AttemptTimeout
// (and ctx). A *Node is handed the bound itself (Node.propose), which
// costs its caller no context and no second channel to wait on; other
// Proposers get a context that ends at the bound (attemptContext).
func (c *Client) propose(ctx context.Context, i int, r *request) (res any, timedOut bool, err error) {
	if r.s != nil {
		r.acked = r.s.low.Load()
	}
	if n := c.bounded[i]; n != nil {
		cmd, owned := r.plain, false
		if r.s != nil {
			// A fresh buffer for every attempt, handed over to the node:
			// it may still hold an earlier attempt's.
			cmd, owned = c.stamp(nil, r), true
		}
		res, err := n.propose(ctx, cmd, owned, c.attemptBound(ctx, r.seq))
		return res, err != nil && errors.Is(err, errAttemptBound), err
	}
	p := c.procs[i]
	actx, cancel := c.attemptContext(ctx, r.seq)
	defer cancel()
	cmd := r.plain
	if r.s != nil {
		cmd = c.stamp(nil, r)
	}
	res, err = p.Propose(actx, cmd)
	return res, err != nil && actx.Err() != nil && ctx.Err() == nil, err
}

// send proposes r until an attempt succeeds, a failure is final, or ctx
// ends. With retryUnknown, failures after which the command may or may not
// have been applied are retried; ambiguous reports whether there was one.
func (c *Client) send(ctx context.Context, r *request, retryUnknown bool) (res any, ambiguous bool, err error) {
	return c.sendAfter(ctx, r, retryUnknown, int(c.leader.Load()), nil)
}

// failedAttempt is an attempt made outside send (proposeStamped's first),
// for sendAfter to go on from.
type failedAttempt struct {
	err      error
	timedOut bool
}

// sendAfter is send starting with member target, the presumed leader. If
// failed is not nil, an attempt on target was made already and failed so:
// sendAfter goes on from that failure as if it had made the attempt (it
// does not try target again at once, which would cost a stuck leader's
// attempt bound twice).
func (c *Client) sendAfter(ctx context.Context, r *request, retryUnknown bool, target int, failed *failedAttempt) (res any, ambiguous bool, err error) {
	first := target
	pause := c.cfg.RetryInterval
	tried := 0 // nodes tried since the last pause
	var lastErr error
	for {
		var attemptTimedOut bool
		if failed != nil {
			err, attemptTimedOut, failed = failed.err, failed.timedOut, nil
		} else {
			if err := ctx.Err(); err != nil {
				if lastErr != nil {
					return nil, ambiguous, fmt.Errorf("consensus: client: %w (last failure: %v)", err, lastErr)
				}
				return nil, ambiguous, fmt.Errorf("consensus: client: %w", err)
			}
			res, attemptTimedOut, err = c.propose(ctx, target, r)
			if err == nil {
				if target != first {
					c.leader.Store(int32(target))
				}
				return res, ambiguous, nil
			}
		}
		lastErr = err
		var nle *raft.NotLeaderError
		switch {
		case errors.As(err, &nle) && nle.Leader != "" && nle.Leader != c.ids[target] && c.members[nle.Leader] != nil:
			// Follow the hint at once. It still counts as a try below:
			// stale hints during an election can point in a circle.
			target = slices.Index(c.ids, nle.Leader)
		case errors.Is(err, ErrNotLeader), errors.Is(err, ErrProposalLost), errors.Is(err, ErrClosed),
			errors.Is(err, raft.ErrProposalDropped):
			// Certainly not applied: safe to retry anywhere.
			target = (target + 1) % len(c.ids)
		case errors.Is(err, ErrStopped), errors.Is(err, ErrOutcomeUnknown), attemptTimedOut:
			ambiguous = true
			if !retryUnknown {
				return nil, ambiguous, err
			}
			// Session-stamped: a copy that was applied is answered from
			// the session cache, not applied again.
			target = (target + 1) % len(c.ids)
		default:
			return nil, ambiguous, err
		}
		if tried++; tried >= len(c.ids) {
			tried = 0
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			pause = min(2*pause, 8*c.cfg.RetryInterval)
		}
	}
}

// Close ends the client's session, if one is open, through the log: every
// node frees its cached results at once instead of when it expires. Call
// it when no Propose of this client is in flight (those would find the
// session closed); a later Propose opens a new session. Without sessions
// it does nothing.
func (c *Client) Close(ctx context.Context) error {
	if c == nil || len(c.ids) == 0 {
		return errNoClient
	}
	if ctx == nil {
		return ErrNilContext
	}
	s := c.sess.Swap(nil)
	if s == nil {
		return nil
	}
	res, _, err := c.send(ctx, &request{plain: session.AppendClose(nil, s.id)}, true)
	if err == nil {
		err = refusal(res)
	}
	if err != nil && !errors.Is(err, ErrSessionExpired) { // expired: gone anyway
		return fmt.Errorf("consensus: client: close session %d: %w", s.id, err)
	}
	return nil
}

// attemptContext returns the context for one attempt on a Proposer other
// than a *Node: ctx bounded by attemptBound. A context.WithTimeout per
// attempt costs a timer and several allocations on the hot path, so two
// common cases share or skip it: a ctx whose deadline comes first already
// bounds the attempt, and callers whose ctx never ends share the context
// of their window.
func (c *Client) attemptContext(ctx context.Context, spread uint64) (context.Context, context.CancelFunc) {
	if ctx == context.Background() || ctx == context.TODO() {
		return c.window(spread).ctx, noCancel
	}
	bound := c.attemptBound(ctx, spread)
	if bound.IsZero() {
		return ctx, noCancel
	}
	return context.WithDeadline(ctx, bound)
}

// attemptBound returns the bound of an attempt: zero when ctx's own
// deadline comes first, else AttemptTimeout from now. Callers whose ctx
// never ends (Done returns nil: context.Background, TODO, and values or
// WithoutCancel over them) share one of a few windows instead, whose
// deadline is 9/8 of AttemptTimeout after they were made and which are
// used for the first eighth of it (a timer then marks them stale): an
// attempt gets between AttemptTimeout and 9/8 of it (a little less if that
// timer runs late), without reading the clock. spread picks the window
// (see window).
func (c *Client) attemptBound(ctx context.Context, spread uint64) time.Time {
	if ctx.Done() == nil { // one call; comparing ctx with Background costs two
		return c.window(spread).deadline
	}
	limit := time.Now().Add(c.cfg.AttemptTimeout)
	if d, ok := ctx.Deadline(); ok && !d.After(limit) {
		return time.Time{}
	}
	return limit
}

// window returns a fresh attempt window, one of attemptWindows (each
// attempt waiting on a window's Done channel would otherwise contend for
// one channel), installing a new one if that is stale. spread picks it: a
// session command's sequence number, which concurrent callers hold
// distinct and consecutive, spreads them evenly at no cost; 0 (a command
// without a session) picks at random.
func (c *Client) window(spread uint64) *attemptWindow {
	if spread == 0 {
		spread = uint64(rand.Uint32())
	}
	slot := &c.windows[spread%attemptWindows]
	for {
		w := slot.Load()
		if w != nil && !w.stale.Load() {
			return w
		}
		fresh := c.cfg.AttemptTimeout / 8
		deadline := time.Now().Add(c.cfg.AttemptTimeout + fresh)
		wctx, cancel := context.WithDeadline(context.Background(), deadline)
		nw := &attemptWindow{ctx: wctx, cancel: cancel, deadline: deadline}
		if slot.CompareAndSwap(w, nw) {
			time.AfterFunc(fresh, func() { nw.stale.Store(true) })
			return nw
		}
		cancel() // another attempt installed a window first
	}
}

func noCancel() {}

// session returns the client's open session, registering one through the
// log if there is none. Concurrent callers wait for one registration.
func (c *Client) session(ctx context.Context) (*clientSession, error) {
	for {
		if s := c.sess.Load(); s != nil {
			return s, nil
		}
		select {
		case c.register <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("consensus: client: register session: %w", ctx.Err())
		}
		if s := c.sess.Load(); s != nil {
			<-c.register
			return s, nil
		}
		// A register entry with unknown outcome is retried: at worst it
		// opens a session nobody uses, which expires.
		res, _, err := c.send(ctx, &request{plain: session.AppendRegister(nil)}, true)
		<-c.register
		if err != nil {
			return nil, fmt.Errorf("consensus: client: register session: %w", err)
		}
		id, ok := res.(SessionID)
		if !ok {
			return nil, fmt.Errorf("%w: client: registering a session answered %T, not a SessionID: is every node's state machine wrapped by WithSessions?", ErrInvalidConfig, res)
		}
		c.sess.Store(newLimitedSession(id, sessionRing, c.inFlight))
	}
}

// begin takes the next sequence number of s for a new command. While
// limit numbers are open (a command is stuck while many newer
// ones were answered), it waits for the oldest to return, or for ctx.
func (c *Client) begin(ctx context.Context, s *clientSession) (uint64, error) {
	for {
		// low, then next: low <= next at every instant and both only
		// move up, so a next read after low is at least that low. Read
		// the other way round, other callers could take and finish
		// numbers in between, low would pass the next read, and seq-low
		// would wrap around: the ring would look full for good.
		low := s.low.Load()
		if s.beginHook != nil {
			s.beginHook()
		}
		seq := s.next.Load()
		if seq-low >= s.limit {
			if err := c.awaitLow(ctx, s, low, time.Hour); err != nil {
				return 0, fmt.Errorf("consensus: client: %w (%d commands of the session open past the oldest unanswered)", err, seq-low)
			}
			continue
		}
		// low only moves up, so seq-low stays below the limit (and the
		// ring's size).
		if s.next.CompareAndSwap(seq, seq+1) {
			return seq, nil
		}
	}
}

// end notes that the caller of seq no longer waits for it (answered or
// given up): later commands tell the table to drop its result, and to
// refuse a late copy of it.
func (c *Client) end(s *clientSession, seq uint64) {
	mask := uint64(len(s.ended) - 1)
	moved := false
	// One read-modify-write, not a load and then one: low's line is
	// usually another core's, and a load would fetch it shared only for
	// the CAS to fetch it again.
	if s.low.CompareAndSwap(seq, seq+1) {
		// The oldest open number (most often, answers come back in
		// about the order the numbers were taken): low moves past it
		// without its slot being marked. Nobody else could have moved
		// low past seq (its slot was not marked), and no slot below low
		// is read again: a later number using it compares with itself.
		moved = true
	} else {
		s.ended[seq&mask].Store(seq)
		// Only the caller of the oldest open number moves low; the
		// others (most of them, with many commands in flight) are done
		// after one load. Whoever moves low past an ended number also
		// checks the next one, so a number that ended while another
		// caller moved low is not missed: this caller read low after its
		// Store, so either low had already reached seq (and this caller
		// moves it on), or the mover reaches seq later and sees the
		// Store.
		if s.low.Load() != seq {
			return
		}
	}
	for {
		low := s.low.Load()
		if s.ended[low&mask].Load() != low {
			break
		}
		if s.low.CompareAndSwap(low, low+1) {
			moved = true
		}
	}
	if !moved {
		return
	}
	if s.waiters.Load() > 0 {
		s.mu.Lock()
		if s.moved != nil {
			close(s.moved) // wake the commands waiting for room
			s.moved = nil
		}
		s.mu.Unlock()
	}
}

// stamp appends r's command to dst as command r.seq of session r.s, with
// r.acked (the lowest sequence number still waited for) as the
// acknowledgement mark.
func (c *Client) stamp(dst []byte, r *request) []byte {
	if dst == nil {
		dst = make([]byte, 0, len(r.plain)+session.MaxCommandOverhead)
	}
	return session.AppendCommand(dst, r.s.id, r.seq, r.acked, r.plain)
}

// awaitLow waits until the ack mark of s is above mark, for at most
// pause, or until ctx ends (its error).
func (c *Client) awaitLow(ctx context.Context, s *clientSession, mark uint64, pause time.Duration) error {
	// Counted before low is checked: end moves low before it reads
	// waiters, so one of the two sees the other.
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	s.mu.Lock()
	if s.low.Load() > mark {
		s.mu.Unlock()
		return nil
	}
	if s.moved == nil {
		s.moved = make(chan struct{})
	}
	moved := s.moved
	s.mu.Unlock()
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-moved:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// expire forgets s if it is still the client's session.
func (c *Client) expire(s *clientSession) {
	c.sess.CompareAndSwap(s, nil)
}

// refusal returns the session table's refusal carried by a command's
// result, or nil for a result of the state machine.
func refusal(res any) error {
	err, ok := res.(error)
	if ok && (errors.Is(err, ErrSessionExpired) || errors.Is(err, ErrResultDiscarded) ||
		errors.Is(err, ErrTooManyPending) || errors.Is(err, session.ErrMalformed)) {
		return err
	}
	return nil
}
