package consensus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/consensus/session"
)

// SessionID names a client session: the log index of the entry that
// registered it. A SessionMachine answers a register command with one.
type SessionID = session.ID

// Errors of client sessions. Compare with errors.Is. A command refused with
// one of them was not applied.
var (
	// ErrSessionExpired refuses a command whose session expired, was
	// evicted or closed (see package consensus/session). A Client reopens
	// a session on its own; it reports the command's outcome as unknown
	// (wrapping both ErrOutcomeUnknown and ErrSessionExpired) when an
	// earlier attempt of it may have been applied before the expiry.
	ErrSessionExpired = session.ErrSessionExpired
	// ErrResultDiscarded refuses a command that its client had already
	// acknowledged or abandoned.
	ErrResultDiscarded = session.ErrResultDiscarded
	// ErrTooManyPending refuses a command when its session caches
	// SessionConfig.MaxPending unacknowledged results.
	ErrTooManyPending = session.ErrTooManyPending
	// ErrResultNotCacheable is the answer to a duplicate of a command
	// whose first result the ResultCodec could not encode. The command was
	// applied once; its result is lost.
	ErrResultNotCacheable = errors.New("consensus: result not cacheable")
)

// ResultCodec turns the results of StateMachine.Apply into bytes for the
// session cache and back. The cache must survive snapshots, so it holds
// bytes, not values. DecodeResult(EncodeResult(v)) must stand for v: a
// duplicate of a command is answered with it.
type ResultCodec interface {
	EncodeResult(v any) ([]byte, error)
	DecodeResult(b []byte) (any, error)
}

// SessionConfig configures WithSessions. Every node of a cluster must use
// the same values: they decide which commands are applied.
type SessionConfig struct {
	// TTL is how long a session may stay idle, in leader-stamped time,
	// before it expires. Keep it far above any client's retry window.
	TTL time.Duration
	// MaxSessions bounds the open sessions; one more evicts the least
	// recently active.
	MaxSessions int
	// MaxPending bounds the results a session caches for commands its
	// client has not acknowledged. Beyond it a command is refused with
	// ErrTooManyPending (not applied; a Client waits and retries it),
	// except the oldest one its client waits for. Make it larger than the
	// number of commands one Client has in flight at once. A Client with
	// a *Node member has at most MaxPending in flight: more callers wait in
	// Propose, and none is refused as too many pending.
	MaxPending int
	// Codec encodes results for the cache. Nil means BasicResults.
	Codec ResultCodec
}

// DefaultSessionConfig returns a one-hour TTL, 10000 sessions, 4096
// pending results per session and BasicResults.
func DefaultSessionConfig() SessionConfig {
	d := session.DefaultConfig()
	return SessionConfig{TTL: d.TTL, MaxSessions: d.MaxSessions, MaxPending: d.MaxPending}
}

// Validate reports the first problem with c.
func (c SessionConfig) Validate() error {
	if err := c.table().Validate(); err != nil {
		return fmt.Errorf("%w: sessions: %w", ErrInvalidConfig, err)
	}
	return nil
}

func (c SessionConfig) table() session.Config {
	return session.Config{TTL: c.TTL, MaxSessions: c.MaxSessions, MaxPending: c.MaxPending}
}

// SessionMachine wraps a StateMachine with the replicated session table
// that applies each client command at most once (Raft thesis §6.3; see
// package consensus/session). Build it with WithSessions and hand it to
// New in place of the wrapped machine.
//
// It passes plain commands (those not built by a Client of a session) to
// the wrapped machine unchanged. A session command is applied once; its
// result is encoded with the ResultCodec and cached until the client
// acknowledges it, and a duplicate is answered with the decoded cached
// result, also after a snapshot restore. Refused commands (expired
// session, ...) are not applied: their result is an error wrapping
// ErrSessionExpired, ErrResultDiscarded or ErrTooManyPending.
//
// Results of session commands are cached as bytes (the cache is part of
// the snapshot), through SessionConfig.Codec: the first answer is the value
// Apply returned, a duplicate's is the codec's decoding of it. A result the
// codec cannot encode is returned once; a duplicate gets
// ErrResultNotCacheable (the command is still not applied twice).
//
// Snapshots hold a versioned header and the session table, followed by
// the wrapped machine's snapshot. Every node of a cluster must wrap its
// machine with the same SessionConfig.
//
// A Proposer that forwards commands to another node over the network
// (a follower passing writes to the leader) must carry a register
// command's SessionID and the refusals back so that the Client recognizes
// them: MarshalResult and UnmarshalResult do that.
type SessionMachine struct {
	sm    StateMachine
	codec ResultCodec
	basic bool // codec is BasicResults

	// table is used by Apply, Snapshot, SnapshotView and Restore only,
	// which the Node calls on its goroutine, one at a time.
	table *session.Table
	// open is table.Len() as of the last envelope applied or restore, for
	// Sessions, which any goroutine may call.
	open atomic.Int64

	// stampClock is the leader's clock as last read by stampSessionTime,
	// which alone uses it, on the node's goroutine.
	stampClock int64
}

var (
	_ StateMachine   = (*SessionMachine)(nil)
	_ SnapshotViewer = (*SessionMachine)(nil)
)

// WithSessions wraps sm with a session table. Plain commands still reach
// sm as before; commands proposed through a Client are applied exactly
// once. Wrapping changes the snapshot format: a node whose DataDir holds a
// snapshot of the unwrapped sm refuses to start.
func WithSessions(sm StateMachine, cfg SessionConfig) (*SessionMachine, error) {
	if isNil(sm) {
		return nil, fmt.Errorf("%w: sessions: nil state machine", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	table, err := session.NewTable(cfg.table())
	if err != nil {
		return nil, fmt.Errorf("%w: sessions: %w", ErrInvalidConfig, err)
	}
	codec := cfg.Codec
	if codec == nil {
		codec = BasicResults{}
	}
	_, basic := codec.(BasicResults)
	return &SessionMachine{sm: sm, codec: codec, basic: basic, table: table}, nil
}

// errNoSessionMachine is what a SessionMachine not built by WithSessions
// reports.
var errNoSessionMachine = fmt.Errorf("%w: SessionMachine not created by WithSessions", ErrInvalidConfig)

// Sessions returns the number of open sessions (0 for a SessionMachine not
// created by WithSessions). It is safe to call from any goroutine.
func (m *SessionMachine) Sessions() int {
	if m == nil || m.table == nil {
		return 0
	}
	return int(m.open.Load())
}

// Apply applies a committed entry: a plain command goes to the wrapped
// machine; a session envelope goes through the session table (see the type
// documentation).
func (m *SessionMachine) Apply(e Entry) any {
	if m == nil || m.table == nil {
		return errNoSessionMachine
	}
	if !session.IsEnvelope(e.Command) {
		return m.sm.Apply(e)
	}
	if payload, seq, ok := m.table.BeginCommand(e.Command); ok {
		// The common case (a new command of the session last used), in
		// one pass over the header: the table's size does not change.
		v := m.sm.Apply(Entry{Index: e.Index, Term: e.Term, Command: payload})
		m.table.FinishLast(seq, m.cacheForm(v))
		return v
	}
	var env session.Envelope
	if err := session.ParseInto(&env, e.Command); err != nil {
		return fmt.Errorf("consensus: sessions: %w", err)
	}
	switch env.Kind {
	case session.KindRegister:
		id := m.table.Register(e.Index, &env)
		m.noteLen()
		return id
	case session.KindClose:
		err := m.table.Close(&env)
		m.noteLen()
		if err != nil {
			return fmt.Errorf("consensus: sessions: %w", err)
		}
		return nil
	}
	cached, dup, err := m.table.Begin(&env)
	m.noteLen() // Begin removes expired sessions
	switch {
	case err != nil:
		return fmt.Errorf("consensus: sessions: %w", err)
	case dup:
		return m.decode(cached)
	}
	v := m.sm.Apply(Entry{Index: e.Index, Term: e.Term, Command: env.Payload})
	m.table.Finish(&env, m.cacheForm(v))
	return v
}

// cacheForm returns the bytes the session cache keeps for result v: the
// shared cachedNil, without a call, for the most common result.
func (m *SessionMachine) cacheForm(v any) []byte {
	if v == nil && m.basic {
		return cachedNil
	}
	return m.encode(v)
}

// noteLen publishes the table's size for Sessions if it changed (the
// atomic store is skipped for most commands, which do not change it).
func (m *SessionMachine) noteLen() {
	if n := int64(m.table.Len()); n != m.open.Load() {
		m.open.Store(n)
	}
}

// cachedNil is the cached form of a nil result under BasicResults, shared
// by all of them (the table never modifies what it caches).
var cachedNil = []byte{resultEncoded, basicNil}

// encode returns the bytes the session cache keeps for result v.
func (m *SessionMachine) encode(v any) []byte {
	if m.basic {
		if b, err := appendBasic([]byte{resultEncoded}, v); err == nil {
			return b
		}
	}
	b, err := m.codec.EncodeResult(v)
	if err != nil {
		// Deterministic (the same v on every replica): remember that the
		// result was lost rather than fail the apply.
		return append([]byte{resultNotCacheable}, fmt.Sprintf("%T: %v", v, err)...)
	}
	out := make([]byte, 1+len(b))
	out[0] = resultEncoded
	copy(out[1:], b)
	return out
}

// The first byte of a cached result.
const (
	resultEncoded      = 0 // followed by the codec's bytes
	resultNotCacheable = 1 // followed by why
)

func (m *SessionMachine) decode(b []byte) any {
	if len(b) == 0 || b[0] != resultEncoded {
		return fmt.Errorf("%w: %s", ErrResultNotCacheable, b[min(len(b), 1):])
	}
	v, err := m.codec.DecodeResult(b[1:])
	if err != nil {
		return fmt.Errorf("%w: decode: %w", ErrResultNotCacheable, err)
	}
	return v
}

// sessionSnapshotMagic and sessionSnapshotVersion start a SessionMachine's snapshot; a
// uvarint length and the session table follow, then the wrapped machine's
// snapshot.
var sessionSnapshotMagic = [7]byte{'d', 'k', 's', 'e', 's', 's', 'n'}

const sessionSnapshotVersion = 1

// maxTableBytes bounds the session table read from a snapshot.
const maxTableBytes = math.MaxInt32

// Snapshot writes the session table, then the wrapped machine's snapshot.
func (m *SessionMachine) Snapshot(w io.Writer) error {
	if m == nil || m.table == nil {
		return errNoSessionMachine
	}
	head, err := m.snapshotHead()
	if err != nil {
		return err
	}
	if _, err := w.Write(head); err != nil {
		return fmt.Errorf("consensus: sessions: snapshot: %w", err)
	}
	return m.sm.Snapshot(w)
}

// snapshotHead encodes the snapshot header and the session table, the
// part of a snapshot that comes before the wrapped machine's own.
func (m *SessionMachine) snapshotHead() ([]byte, error) {
	table, err := m.table.AppendBinary(nil)
	if err != nil {
		return nil, fmt.Errorf("consensus: sessions: snapshot: %w", err)
	}
	head := append(sessionSnapshotMagic[:], sessionSnapshotVersion)
	head = binary.AppendUvarint(head, uint64(len(table)))
	return append(head, table...), nil
}

// SnapshotView implements SnapshotViewer, so that wrapping a large state
// machine does not take its snapshots back onto the node's goroutine: the
// session table (small) is encoded now, and the wrapped machine's own view
// is taken if it offers one (SnapshotViewer); otherwise its Snapshot is
// written into memory now, as the Node would have done without the
// wrapper. The view writes the same bytes as Snapshot.
func (m *SessionMachine) SnapshotView() (SnapshotWriter, error) {
	if m == nil || m.table == nil {
		return nil, errNoSessionMachine
	}
	head, err := m.snapshotHead()
	if err != nil {
		return nil, err
	}
	v := &sessionView{head: head}
	if viewer, ok := m.sm.(SnapshotViewer); ok {
		if v.inner, err = viewer.SnapshotView(); err != nil {
			return nil, err
		}
		return v, nil
	}
	var buf bytes.Buffer
	if err := m.sm.Snapshot(&buf); err != nil {
		return nil, err
	}
	v.data = buf.Bytes()
	return v, nil
}

// sessionView is SessionMachine's point-in-time view: the encoded session
// table, then the wrapped machine's view (or its snapshot bytes).
type sessionView struct {
	head  []byte
	inner SnapshotWriter // nil: data holds the wrapped machine's snapshot
	data  []byte
}

func (v *sessionView) WriteSnapshot(w io.Writer) error {
	if _, err := w.Write(v.head); err != nil {
		return fmt.Errorf("consensus: sessions: snapshot: %w", err)
	}
	if v.inner != nil {
		return v.inner.WriteSnapshot(w)
	}
	_, err := w.Write(v.data)
	return err
}

func (v *sessionView) Release() {
	if v.inner != nil {
		v.inner.Release()
	}
	v.head, v.data = nil, nil
}

// Restore replaces the session table and the wrapped machine's state with
// a snapshot written by Snapshot. A snapshot without the session header (or
// with a corrupt table) is refused.
func (m *SessionMachine) Restore(r io.Reader) error {
	if m == nil || m.table == nil {
		return errNoSessionMachine
	}
	br := bufio.NewReader(r)
	var head [len(sessionSnapshotMagic) + 1]byte
	if _, err := io.ReadFull(br, head[:]); err != nil {
		return fmt.Errorf("consensus: sessions: restore: read header: %w", err)
	}
	if [7]byte(head[:7]) != sessionSnapshotMagic {
		return fmt.Errorf("consensus: sessions: restore: %w: not a snapshot of a SessionMachine (was the state machine wrapped by WithSessions when it was taken?)", session.ErrMalformed)
	}
	if head[7] != sessionSnapshotVersion {
		return fmt.Errorf("consensus: sessions: restore: %w: snapshot version %d; want %d", session.ErrMalformed, head[7], sessionSnapshotVersion)
	}
	n, err := binary.ReadUvarint(br)
	if err != nil || n > maxTableBytes {
		return fmt.Errorf("consensus: sessions: restore: %w: table length %d: %v", session.ErrMalformed, n, err)
	}
	// ReadAll grows with the data actually present: a corrupt length
	// cannot make it allocate n bytes up front.
	enc, err := io.ReadAll(io.LimitReader(br, int64(n)))
	if err != nil {
		return fmt.Errorf("consensus: sessions: restore: %w", err)
	}
	if uint64(len(enc)) != n {
		return fmt.Errorf("consensus: sessions: restore: %w: table truncated at %d of %d bytes", session.ErrMalformed, len(enc), n)
	}
	if err := m.table.UnmarshalBinary(enc); err != nil {
		return fmt.Errorf("consensus: sessions: restore: %w", err)
	}
	m.noteLen()
	return m.sm.Restore(br)
}

// BasicResults is the default ResultCodec. It caches nil, []byte, string,
// bool, int, int64, uint64 and error results; an error comes back from the
// cache as an error with the same message (errors.Is identity is lost).
// Other result types cannot be cached: the first answer is the value
// itself, and a duplicate is answered with ErrResultNotCacheable. Supply
// your own codec (JSON, protobuf, ...) for other types.
type BasicResults struct{}

// Type tags of BasicResults.
const (
	basicNil byte = iota
	basicBytes
	basicString
	basicError
	basicBool
	basicInt
	basicInt64
	basicUint64
)

// EncodeResult implements ResultCodec.
func (BasicResults) EncodeResult(v any) ([]byte, error) { return appendBasic(nil, v) }

// appendBasic appends BasicResults' encoding of v to dst.
func appendBasic(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, basicNil), nil
	case []byte:
		return append(append(dst, basicBytes), v...), nil
	case string:
		return append(append(dst, basicString), v...), nil
	case error:
		return append(append(dst, basicError), v.Error()...), nil
	case bool:
		if v {
			return append(dst, basicBool, 1), nil
		}
		return append(dst, basicBool, 0), nil
	case int:
		return binary.AppendVarint(append(dst, basicInt), int64(v)), nil
	case int64:
		return binary.AppendVarint(append(dst, basicInt64), v), nil
	case uint64:
		return binary.AppendUvarint(append(dst, basicUint64), v), nil
	}
	return nil, fmt.Errorf("consensus: BasicResults cannot encode a %T", v)
}

// DecodeResult implements ResultCodec.
func (BasicResults) DecodeResult(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("consensus: BasicResults: empty encoding")
	}
	tag, rest := b[0], b[1:]
	switch tag {
	case basicNil:
		return nil, nil
	case basicBytes:
		return bytes.Clone(rest), nil
	case basicString:
		return string(rest), nil
	case basicError:
		return errors.New(string(rest)), nil
	case basicBool:
		return len(rest) == 1 && rest[0] == 1, nil
	case basicInt, basicInt64:
		v, n := binary.Varint(rest)
		if n <= 0 {
			return nil, fmt.Errorf("consensus: BasicResults: bad integer")
		}
		if tag == basicInt {
			return int(v), nil
		}
		return v, nil
	case basicUint64:
		v, n := binary.Uvarint(rest)
		if n <= 0 {
			return nil, fmt.Errorf("consensus: BasicResults: bad integer")
		}
		return v, nil
	}
	return nil, fmt.Errorf("consensus: BasicResults: unknown tag %d", tag)
}

// SessionKeeper is implemented by Proposers that know whether the state
// machine behind them keeps client sessions (is a SessionMachine). A
// Client uses sessions when a member says so; a Proposer that forwards to
// a remote node may implement it to say so on the node's behalf.
type SessionKeeper interface {
	KeepsSessions() bool
}

var _ SessionKeeper = (*Node)(nil)

// sessionLimiter is implemented by *Node (and types embedding one): a
// Client learns from it how many results a session's table caches, and
// numbers no more commands than that past its oldest unanswered one.
type sessionLimiter interface {
	sessionMaxPending() int
}

var _ sessionLimiter = (*Node)(nil)

// sessionMaxPending returns the SessionConfig.MaxPending of the node's
// SessionMachine, 0 if it keeps no sessions.
func (n *Node) sessionMaxPending() int {
	if !n.started() {
		return 0
	}
	if m, ok := n.sm.(*SessionMachine); ok {
		return m.table.MaxPending()
	}
	return 0
}

// KeepsSessions reports whether the node's state machine is a
// SessionMachine (false for a Node not created by New).
func (n *Node) KeepsSessions() bool {
	if !n.started() {
		return false
	}
	_, ok := n.sm.(*SessionMachine)
	return ok
}

// stampSessionTime writes the leader's clock into a session envelope as
// the node proposes it (Raft thesis §6.3: sessions expire by the leader's
// time, carried in the log, so that every replica decides alike). It
// leaves plain commands, and every command of a node without sessions,
// alone. The clock is read once per batch of proposals (newBatch): a
// reading can cost a microsecond, and session expiry needs no finer time.
// It runs on the node's goroutine only.
func stampSessionTime(sm StateMachine, cmd []byte, newBatch bool) {
	m, ok := sm.(*SessionMachine)
	if !ok || !session.IsEnvelope(cmd) {
		return
	}
	if newBatch || m.stampClock == 0 {
		m.stampClock = time.Now().UnixNano()
	}
	session.Stamp(cmd, m.stampClock)
}

// JSONResults is a ResultCodec for state machines whose Apply returns
// values of type T, encoded with encoding/json. Other results (an error,
// say) cannot be cached (see ErrResultNotCacheable).
type JSONResults[T any] struct{}

// EncodeResult implements ResultCodec.
func (JSONResults[T]) EncodeResult(v any) ([]byte, error) {
	t, ok := v.(T)
	if !ok {
		return nil, fmt.Errorf("consensus: JSONResults[%T] cannot encode a %T", *new(T), v)
	}
	return json.Marshal(t)
}

// DecodeResult implements ResultCodec.
func (JSONResults[T]) DecodeResult(b []byte) (any, error) {
	var t T
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("consensus: JSONResults: %w", err)
	}
	return t, nil
}

// Tags of MarshalResult's encoding.
const (
	forwardResult  = 0 // the codec's bytes follow
	forwardSession = 1 // a uvarint SessionID follows
	forwardRefusal = 2 // a refusal code byte and the message follow
)

// refusals are the session errors MarshalResult carries by identity.
var refusals = []error{ErrSessionExpired, ErrResultDiscarded, ErrTooManyPending, session.ErrMalformed, ErrResultNotCacheable}

// MarshalResult encodes what Node.Propose returned for a command so that a
// Proposer that forwards commands over the network (a follower passing
// them to the leader) can rebuild it on the other side with
// UnmarshalResult: a session's SessionID, a session refusal (which keeps
// its errors.Is identity, so the Client recognizes it), or the state
// machine's result, encoded with codec (nil: BasicResults).
func MarshalResult(codec ResultCodec, v any) ([]byte, error) {
	if id, ok := v.(SessionID); ok {
		return binary.AppendUvarint([]byte{forwardSession}, uint64(id)), nil
	}
	if err, ok := v.(error); ok {
		for i, r := range refusals {
			if errors.Is(err, r) {
				return append([]byte{forwardRefusal, byte(i)}, err.Error()...), nil
			}
		}
	}
	if codec == nil {
		codec = BasicResults{}
	}
	b, err := codec.EncodeResult(v)
	if err != nil {
		return nil, err
	}
	return append([]byte{forwardResult}, b...), nil
}

// UnmarshalResult decodes what MarshalResult encoded, with the same codec.
func UnmarshalResult(codec ResultCodec, b []byte) (any, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("consensus: UnmarshalResult: empty encoding")
	}
	switch b[0] {
	case forwardSession:
		id, n := binary.Uvarint(b[1:])
		if n <= 0 || n != len(b)-1 {
			return nil, fmt.Errorf("consensus: UnmarshalResult: bad session ID")
		}
		return SessionID(id), nil
	case forwardRefusal:
		if len(b) < 2 || int(b[1]) >= len(refusals) {
			return nil, fmt.Errorf("consensus: UnmarshalResult: bad refusal")
		}
		return &forwardedRefusal{err: refusals[b[1]], msg: string(b[2:])}, nil
	case forwardResult:
		if codec == nil {
			codec = BasicResults{}
		}
		return codec.DecodeResult(b[1:])
	}
	return nil, fmt.Errorf("consensus: UnmarshalResult: unknown tag %d", b[0])
}

// forwardedRefusal is a session refusal rebuilt by UnmarshalResult: the
// original message, matching the original sentinel with errors.Is.
type forwardedRefusal struct {
	err error
	msg string
}

func (f *forwardedRefusal) Error() string { return f.msg }
func (f *forwardedRefusal) Unwrap() error { return f.err }
