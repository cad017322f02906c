package lock

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Op is a lock-service operation.
type Op uint8

// Operations of a Request. Each is safe to retry when its outcome is
// unknown (see Request), which is what lets a client resend through a new
// leader.
const (
	// OpOpen opens Session with TTL and Owner (renews it if already open).
	OpOpen Op = iota + 1
	// OpKeepAlive renews Session's lease.
	OpKeepAlive
	// OpEnd ends Session, releasing its locks.
	OpEnd
	// OpAcquire acquires Name for Session, waiting in the FIFO queue.
	OpAcquire
	// OpTryAcquire acquires Name for Session or fails with ErrLocked.
	OpTryAcquire
	// OpRelease releases Session's grant of Name with Token.
	OpRelease
	// OpCancel withdraws Session's interest in Name (queue or grant).
	OpCancel
	// OpHolder reads the current holder of Name.
	OpHolder
	opTick // internal to the replicated log: advance the clock
)

// String returns the operation's name.
func (o Op) String() string {
	switch o {
	case OpOpen:
		return "open"
	case OpKeepAlive:
		return "keepalive"
	case OpEnd:
		return "end"
	case OpAcquire:
		return "acquire"
	case OpTryAcquire:
		return "try-acquire"
	case OpRelease:
		return "release"
	case OpCancel:
		return "cancel"
	case OpHolder:
		return "holder"
	case opTick:
		return "tick"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Request is one operation on a lock service. Fields an operation does not
// use are ignored.
//
// Every operation is idempotent for its session: a repeated Open or
// KeepAlive renews, a repeated Acquire returns the grant the session already
// has (or keeps its place in the queue), a repeated Release fails with
// ErrNotHolder without touching the lock, and End and Cancel of what is gone
// do nothing.
type Request struct {
	Op      Op            // the operation
	Session SessionID     // the session it acts for (all but OpHolder)
	Name    string        // the lock (acquire, release, cancel, holder)
	Owner   string        // the session's label (OpOpen)
	TTL     time.Duration // the lease's length (OpOpen)
	Token   Token         // the grant being released (OpRelease)
}

// Response is a lock service's answer to a successful Request.
type Response struct {
	// Granted reports, for OpAcquire, OpTryAcquire and OpHolder, that Grant
	// is a current grant of the lock.
	Granted bool
	// Grant is the grant (holder and token) when Granted.
	Grant Grant
	// Held lists, for OpKeepAlive, the session's grants at the service, so
	// a client can release grants it does not know it has (an acquire
	// request duplicated or delayed by the network past its release).
	Held []Grant
}

// Service is a lock service as a client sees it: a Local table in this
// process, a Remote replicated service, or your own transport.
//
// Do performs one request. An OpAcquire blocks until the lock is granted to
// the session or ctx ends; after ctx ends the session may still be queued,
// or may even have been granted the lock, so the caller sends OpCancel.
// Errors wrap ErrLocked, ErrNotHolder, ErrNoSession, ErrInvalidArgument or
// ErrClosed, or are ctx's or the transport's (outcome unknown: retry, every
// operation is idempotent). Implementations are safe for concurrent use.
type Service interface {
	Do(ctx context.Context, req Request) (Response, error)
}

// apply performs req on t at time now, for the Local service and the
// replicated state machine alike.
func apply(t *Table, now time.Time, req Request) (Response, error) {
	switch req.Op {
	case OpOpen:
		_, err := t.Open(now, req.Session, req.Owner, req.TTL)
		return Response{}, err
	case OpKeepAlive:
		_, err := t.KeepAlive(now, req.Session)
		return Response{Held: t.HeldBy(req.Session)}, err
	case OpEnd:
		t.End(now, req.Session)
		return Response{}, nil
	case OpAcquire, OpTryAcquire:
		g, ok, err := t.Acquire(now, req.Session, req.Name, req.Op == OpAcquire)
		return Response{Granted: ok, Grant: g}, err
	case OpRelease:
		return Response{}, t.Release(now, req.Session, req.Name, req.Token)
	case OpCancel:
		t.Cancel(now, req.Session, req.Name)
		return Response{}, nil
	case OpHolder:
		t.Tick(now)
		g, ok := t.Holder(req.Name)
		return Response{Granted: ok, Grant: g}, nil
	case opTick:
		t.Tick(now)
		return Response{}, nil
	}
	return Response{}, fmt.Errorf("%w: unknown operation %d", ErrInvalidArgument, uint8(req.Op))
}

// Wire codes of errors that cross the network.
const (
	codeOK = iota
	codeLocked
	codeNotHolder
	codeNoSession
	codeInvalid
	codeClosed
	codeNotLeader // followed by the leader's ID hint
	codeOther     // followed by the error text
)

var codeErrors = map[byte]error{
	codeLocked: ErrLocked, codeNotHolder: ErrNotHolder, codeNoSession: ErrNoSession,
	codeInvalid: ErrInvalidArgument, codeClosed: ErrClosed,
}

func errorCode(err error) byte {
	for code := byte(codeLocked); code <= codeClosed; code++ {
		if errors.Is(err, codeErrors[code]) {
			return code
		}
	}
	return codeOther
}

// AppendRequest appends req's wire encoding to b.
func AppendRequest(b []byte, req Request) []byte {
	e := encoder{b: b}
	e.uvarint(uint64(req.Op))
	e.uvarint(uint64(req.Session))
	e.str(req.Name)
	e.str(req.Owner)
	e.varint(int64(req.TTL))
	e.uvarint(uint64(req.Token))
	return e.b
}

// DecodeRequest decodes a request encoded by AppendRequest. Malformed
// input fails with an error wrapping ErrCorrupt.
func DecodeRequest(b []byte) (Request, error) {
	d := decoder{b: b}
	req := decodeRequestOps(&d, OpHolder)
	if err := d.done(); err != nil {
		return Request{}, err
	}
	return req, nil
}

// decodeRequestOps decodes a request whose operation is at most maxOp
// (clients may not send the internal opTick).
func decodeRequestOps(d *decoder, maxOp Op) Request {
	var req Request
	op := d.uvarint("op")
	if op == 0 || op > uint64(maxOp) {
		d.fail("op")
	}
	req.Op = Op(op)
	req.Session = SessionID(d.uvarint("session"))
	req.Name = d.str("name", MaxNameLen)
	req.Owner = d.str("owner", MaxOwnerLen)
	req.TTL = time.Duration(d.varint("TTL"))
	req.Token = Token(d.uvarint("token"))
	return req
}

// appendResponse encodes the outcome of a request: a code, then the
// response (codeOK) or the error's detail.
func appendResponse(b []byte, resp Response, err error) []byte {
	e := encoder{b: b}
	if err != nil {
		code := errorCode(err)
		e.b = append(e.b, code)
		e.str(err.Error())
		return e.b
	}
	e.b = append(e.b, codeOK)
	if resp.Granted {
		e.b = append(e.b, 1)
		e.str(resp.Grant.Name)
		e.uvarint(uint64(resp.Grant.Session))
		e.str(resp.Grant.Owner)
		e.uvarint(uint64(resp.Grant.Token))
	} else {
		e.b = append(e.b, 0)
	}
	e.uvarint(uint64(len(resp.Held)))
	for _, g := range resp.Held {
		e.str(g.Name)
		e.uvarint(uint64(g.Token))
	}
	return e.b
}

// notLeaderResponse encodes "not the leader; try hint".
func notLeaderResponse(hint string) []byte {
	e := encoder{b: []byte{codeNotLeader}}
	e.str(hint)
	return e.b
}

// errNotLeader is decodeResponse's error for codeNotLeader.
type errNotLeader struct{ hint string }

func (e *errNotLeader) Error() string {
	return fmt.Sprintf("lock: server is not the leader (leader: %q)", e.hint)
}

// decodeResponse decodes what appendResponse (or notLeaderResponse) wrote.
// Lock errors come back as the matching sentinels, wrapped with the
// remote's text.
func decodeResponse(b []byte) (Response, error) {
	if len(b) == 0 {
		return Response{}, fmt.Errorf("%w: empty response", ErrCorrupt)
	}
	d := decoder{b: b[1:]}
	code := b[0]
	switch {
	case code == codeOK:
		var resp Response
		if len(d.b) == 0 || d.b[0] > 1 {
			return Response{}, fmt.Errorf("%w: bad granted flag", ErrCorrupt)
		}
		resp.Granted = d.b[0] == 1
		d.b = d.b[1:]
		if resp.Granted {
			resp.Grant.Name = d.str("name", MaxNameLen)
			resp.Grant.Session = SessionID(d.uvarint("session"))
			resp.Grant.Owner = d.str("owner", MaxOwnerLen)
			resp.Grant.Token = Token(d.uvarint("token"))
		}
		for range d.count("held count", 2) {
			g := Grant{Name: d.str("held name", MaxNameLen)}
			g.Token = Token(d.uvarint("held token"))
			if d.err != nil {
				break
			}
			resp.Held = append(resp.Held, g)
		}
		if err := d.done(); err != nil {
			return Response{}, err
		}
		return resp, nil
	case code == codeNotLeader:
		hint := d.str("leader", MaxOwnerLen)
		if err := d.done(); err != nil {
			return Response{}, err
		}
		return Response{}, &errNotLeader{hint: hint}
	case code > codeOther:
		return Response{}, fmt.Errorf("%w: response code %d", ErrCorrupt, code)
	}
	text := d.str("error", 1<<16)
	if err := d.done(); err != nil {
		return Response{}, err
	}
	if sentinel := codeErrors[code]; sentinel != nil {
		return Response{}, fmt.Errorf("%w (remote: %s)", sentinel, text)
	}
	return Response{}, fmt.Errorf("lock: remote error: %s", text)
}
