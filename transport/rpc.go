package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// RequestHandler serves the requests of one service registered with
// RPC.Handle. It runs on its own goroutine, so it may block; ctx ends when
// the caller's deadline passes, the caller cancels, or the RPC closes. req
// is read-only and may be retained. The returned resp is copied, so the
// handler keeps ownership of it. A non-nil error reaches the caller as a
// *RemoteError carrying err.Error(); a panic reaches it as a *RemoteError
// with CodePanic and never brings the node down.
type RequestHandler func(ctx context.Context, from NodeID, req []byte) (resp []byte, err error)

// ErrorCode says why a remote node answered a call with an error.
type ErrorCode uint8

// Error codes carried by RemoteError.
const (
	// CodeHandler: the remote handler returned an error.
	CodeHandler ErrorCode = 1
	// CodeNoHandler: the remote node has no handler for the service.
	CodeNoHandler ErrorCode = 2
	// CodeOverloaded: the remote node already runs RPCConfig.MaxConcurrent handlers.
	CodeOverloaded ErrorCode = 3
	// CodePanic: the remote handler panicked.
	CodePanic ErrorCode = 4
	// CodeResponseTooLarge: the handler's response exceeded the transport's limit.
	CodeResponseTooLarge ErrorCode = 5
	// CodeDeadlineExceeded: the handler was still running when the
	// caller's deadline, which travels with the request, passed.
	CodeDeadlineExceeded ErrorCode = 6
)

// String returns the code's name.
func (c ErrorCode) String() string {
	switch c {
	case CodeHandler:
		return "handler error"
	case CodeNoHandler:
		return "no handler"
	case CodeOverloaded:
		return "overloaded"
	case CodePanic:
		return "handler panic"
	case CodeResponseTooLarge:
		return "response too large"
	case CodeDeadlineExceeded:
		return "deadline exceeded"
	}
	return fmt.Sprintf("code %d", uint8(c))
}

// Errors a call may wrap in addition to the transport sentinels.
var (
	// ErrNoHandler is wrapped by a RemoteError when the callee has no handler for the service.
	ErrNoHandler = errors.New("transport: no handler for service")
	// ErrOverloaded is wrapped by a RemoteError when the callee refused the request for lack of capacity.
	ErrOverloaded = errors.New("transport: remote overloaded")
	// ErrInvalidConfig is wrapped by the errors of RPCConfig.Validate and
	// NewRPC, and returned by the methods of an RPC not made by NewRPC.
	ErrInvalidConfig = errors.New("transport: invalid config")
)

// errNotStarted is what the methods of a zero RPC return.
var errNotStarted = fmt.Errorf("%w: RPC used without NewRPC", ErrInvalidConfig)

// RemoteError is the error a call returns when the remote node answered with
// an error instead of a response. Errors cross the network as text, so a
// protocol that needs structured errors encodes them in its response body.
type RemoteError struct {
	From    NodeID    // the node that answered
	Service string    // the service that was called
	Code    ErrorCode // why it failed
	Message string    // the remote error's text
}

// Error implements error.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("transport: %s on %s: %s: %s", e.Service, e.From, e.Code, e.Message)
}

// Unwrap lets errors.Is match ErrNoHandler, ErrOverloaded,
// ErrMessageTooLarge and context.DeadlineExceeded for the corresponding
// codes.
func (e *RemoteError) Unwrap() error {
	switch e.Code {
	case CodeNoHandler:
		return ErrNoHandler
	case CodeOverloaded:
		return ErrOverloaded
	case CodeResponseTooLarge:
		return ErrMessageTooLarge
	case CodeDeadlineExceeded:
		return context.DeadlineExceeded
	}
	return nil
}

// RPCConfig configures an RPC. Start from DefaultRPCConfig.
type RPCConfig struct {
	// Service is the transport service that carries the RPC envelopes.
	// Protocols normally share one RPC (and so this one service); a second
	// RPC on the same Transport needs a different Service.
	Service string
	// Timeout bounds calls whose context has no deadline, so that a lost
	// request or response cannot hang a caller forever. 0 disables it.
	Timeout time.Duration
	// MaxPending bounds the calls waiting for a response; further calls
	// fail with ErrQueueFull until some complete.
	MaxPending int
	// MaxConcurrent bounds the request handlers running at once; further
	// requests are answered with CodeOverloaded.
	MaxConcurrent int
	// Logger receives debug records about dropped or malformed envelopes
	// and handler panics. nil means silent.
	Logger *slog.Logger
}

// DefaultRPCConfig returns the recommended configuration.
func DefaultRPCConfig() RPCConfig {
	return RPCConfig{
		Service:       "rpc",
		Timeout:       10 * time.Second,
		MaxPending:    4096,
		MaxConcurrent: 1024,
	}
}

// Validate reports the first invalid field.
func (c RPCConfig) Validate() error {
	switch {
	case c.Service == "":
		return fmt.Errorf("%w: RPCConfig.Service must not be empty", ErrInvalidConfig)
	case c.Timeout < 0:
		return fmt.Errorf("%w: RPCConfig.Timeout = %v; want >= 0", ErrInvalidConfig, c.Timeout)
	case c.MaxPending <= 0:
		return fmt.Errorf("%w: RPCConfig.MaxPending = %d; want > 0", ErrInvalidConfig, c.MaxPending)
	case c.MaxConcurrent <= 0:
		return fmt.Errorf("%w: RPCConfig.MaxConcurrent = %d; want > 0", ErrInvalidConfig, c.MaxConcurrent)
	}
	return nil
}

// RPCStats are counters of an RPC since it was created.
type RPCStats struct {
	Calls         uint64 // calls started
	Failed        uint64 // calls that returned an error (remote errors, timeouts, send failures)
	Pending       int    // calls waiting for a response now
	Served        uint64 // requests passed to a handler
	Rejected      uint64 // requests answered with CodeNoHandler or CodeOverloaded
	LateResponses uint64 // responses that matched no pending call (cancelled, timed out, duplicated)
	Malformed     uint64 // envelopes that failed to decode
}

// RPC is a request/response layer on top of any Transport. Each call carries
// a correlation ID chosen by the caller; the callee runs the service's
// RequestHandler on its own goroutine and sends the result back with the
// same ID. Deadlines travel with the request, and a caller that gives up
// tells the callee, whose handler context is then cancelled.
//
// A duplicate of a request whose handler still runs is ignored, but a
// duplicate that arrives after the first copy was answered runs the handler
// again, and a caller that times out may retry a call that did run: keep
// handlers idempotent or deduplicate (see package idempotency).
//
// RPC is safe for concurrent use.
type RPC struct {
	t      Transport
	cfg    RPCConfig
	log    *slog.Logger
	tdone  <-chan struct{} // the transport's Done channel, nil if it has none
	closed chan struct{}   // closed by Close

	closeOnce  sync.Once
	baseCtx    context.Context // parent of every handler context; cancelled by Close
	cancelBase context.CancelFunc

	nextID atomic.Uint64

	// callsMu guards calls, the outbound calls waiting for a response.
	callsMu sync.Mutex
	calls   map[uint64]*pendingCall

	// handlersMu guards handlers.
	handlersMu sync.RWMutex
	handlers   map[string]RequestHandler

	// servingMu guards serving (the inbound requests whose handler runs)
	// and stopping (set by Close; no handler starts afterwards).
	servingMu sync.Mutex
	serving   map[servingKey]*inflight
	stopping  bool
	handlerWG sync.WaitGroup // handler goroutines; Close waits for them

	// Counters reported by Stats.
	nCalls, nFailed, nServed, nRejected, nLate, nMalformed atomic.Uint64
}

// pendingCall is an outbound call waiting for its response.
type pendingCall struct {
	to      NodeID
	service string
	// ch receives the result from complete, which removes the call from
	// RPC.calls before sending; a caller that gives up but finds its call
	// already removed takes the result from here. Size 1 so complete never
	// blocks.
	ch chan callResult
}

type callResult struct {
	body []byte
	err  error
}

// servingKey identifies an inbound request: call IDs are unique per caller.
type servingKey struct {
	from NodeID
	id   uint64
}

// inflight is an inbound request whose handler runs.
type inflight struct {
	cancel context.CancelFunc
	// byCaller is set, before cancel is called, when the caller cancelled
	// the call; the handler's answer is then not sent.
	byCaller atomic.Bool
}

// NewRPC starts an RPC layer on t and registers it as the handler of
// cfg.Service on t. Close the RPC before (or after) closing t; the RPC does
// not close t.
func NewRPC(t Transport, cfg RPCConfig) (*RPC, error) {
	if t == nil {
		return nil, fmt.Errorf("%w: NewRPC: nil Transport", ErrInvalidConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &RPC{
		t:        t,
		cfg:      cfg,
		log:      log.With("node", string(t.ID()), "service", cfg.Service),
		closed:   make(chan struct{}),
		calls:    make(map[uint64]*pendingCall),
		handlers: make(map[string]RequestHandler),
		serving:  make(map[servingKey]*inflight),
	}
	if d, ok := t.(DoneNotifier); ok {
		r.tdone = d.Done()
	}
	r.baseCtx, r.cancelBase = context.WithCancel(context.Background())
	// Start call IDs at a random point so that a restarted node does not
	// reuse the IDs of its previous life, whose late responses may still be
	// on the way.
	r.nextID.Store(rand.Uint64() >> 1)
	t.Handle(cfg.Service, r.receive)
	return r, nil
}

// Handle registers h for requests to service, replacing any earlier
// handler; a nil h removes it. Requests for a service without a handler are
// answered with CodeNoHandler.
func (r *RPC) Handle(service string, h RequestHandler) {
	if r == nil || r.closed == nil {
		return // a zero RPC; Call and Close report it
	}
	r.handlersMu.Lock()
	defer r.handlersMu.Unlock()
	if h == nil {
		delete(r.handlers, service)
		return
	}
	r.handlers[service] = h
}

// Call sends req to service on node to and waits for the response. Call
// does not retain req; the returned resp belongs to the caller.
//
// It returns the response, or an error that wraps: the context's error
// (ctx ended, or the default RPCConfig.Timeout passed); a *RemoteError
// when the callee answered with an error; ErrClosed when the RPC or its
// transport closed; ErrQueueFull when MaxPending calls are already waiting;
// or the transport's error from sending the request. A call that gives up
// frees its slot at once and asks the callee to cancel the handler.
func (r *RPC) Call(ctx context.Context, to NodeID, service string, req []byte) ([]byte, error) {
	if r == nil || r.closed == nil {
		return nil, errNotStarted
	}
	r.nCalls.Add(1)
	resp, err := r.call(ctx, to, service, req)
	if err != nil {
		r.nFailed.Add(1)
		if _, remote := err.(*RemoteError); remote {
			return nil, err // it names the node and service already
		}
		return nil, fmt.Errorf("transport: call %s on %s: %w", service, to, err)
	}
	return resp, nil
}

func (r *RPC) call(ctx context.Context, to NodeID, service string, req []byte) ([]byte, error) {
	if len(service) > maxServiceLen {
		return nil, fmt.Errorf("service name is %d bytes; the limit is %d", len(service), maxServiceLen)
	}
	select {
	case <-r.closed:
		return nil, ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var budget time.Duration
	var timeout <-chan time.Time
	if deadline, ok := ctx.Deadline(); ok {
		if budget = time.Until(deadline); budget <= 0 {
			return nil, context.DeadlineExceeded
		}
	} else if r.cfg.Timeout > 0 {
		budget = r.cfg.Timeout
		timer := time.NewTimer(budget)
		defer timer.Stop()
		timeout = timer.C
	}

	id := r.nextID.Add(1)
	p := &pendingCall{to: to, service: service, ch: make(chan callResult, 1)}
	r.callsMu.Lock()
	if len(r.calls) >= r.cfg.MaxPending {
		r.callsMu.Unlock()
		return nil, fmt.Errorf("%w: %d calls pending", ErrQueueFull, r.cfg.MaxPending)
	}
	r.calls[id] = p
	r.callsMu.Unlock()

	env := envelope{kind: kindRequest, id: id, timeout: budget, service: service, body: req}
	buf := appendEnvelope(make([]byte, 0, envelopeSize(&env)), &env)
	if err := r.t.Send(ctx, to, r.cfg.Service, buf); err != nil {
		r.forget(id)
		return nil, err
	}

	var err error
	select {
	case res := <-p.ch:
		return res.body, res.err
	case <-ctx.Done():
		err = ctx.Err()
	case <-timeout:
		err = context.DeadlineExceeded
	case <-r.closed:
		err = ErrClosed
	case <-r.tdone:
		err = ErrClosed
	}
	if !r.forget(id) {
		// The response won the race: it has been (or is being) put into
		// p.ch, so return it rather than an error.
		res := <-p.ch
		return res.body, res.err
	}
	if !errors.Is(err, ErrClosed) {
		// Best effort: tell the callee to stop working on it.
		cancel := appendEnvelope(make([]byte, 0, 16), &envelope{kind: kindCancel, id: id})
		_ = r.t.Send(r.baseCtx, to, r.cfg.Service, cancel)
	}
	return nil, err
}

// forget removes call id and reports whether it was still pending.
func (r *RPC) forget(id uint64) bool {
	r.callsMu.Lock()
	defer r.callsMu.Unlock()
	_, ok := r.calls[id]
	delete(r.calls, id)
	return ok
}

// receive is the transport handler of cfg.Service. It never blocks:
// requests run on their own goroutines.
func (r *RPC) receive(msg Message) {
	env, err := decodeEnvelope(msg.Payload)
	if err != nil {
		r.nMalformed.Add(1)
		r.log.Debug("dropping rpc envelope", "from", string(msg.From), "err", err)
		return
	}
	switch env.kind {
	case kindRequest:
		r.serve(msg.From, &env)
	case kindResponse, kindError:
		r.complete(msg.From, &env)
	case kindCancel:
		r.servingMu.Lock()
		req := r.serving[servingKey{msg.From, env.id}]
		r.servingMu.Unlock()
		if req != nil {
			req.byCaller.Store(true)
			req.cancel()
		}
	}
}

// complete hands a response to the call waiting for it.
func (r *RPC) complete(from NodeID, env *envelope) {
	r.callsMu.Lock()
	p, ok := r.calls[env.id]
	// Only the node that was called may answer: call IDs are guessable.
	if ok && p.to == from {
		delete(r.calls, env.id)
	} else {
		ok = false
	}
	r.callsMu.Unlock()
	if !ok {
		r.nLate.Add(1)
		return
	}
	if env.kind == kindResponse {
		p.ch <- callResult{body: env.body}
		return
	}
	p.ch <- callResult{err: &RemoteError{From: from, Service: p.service, Code: env.code, Message: string(env.body)}}
}

// serve starts the handler of a request on its own goroutine, or answers
// at once when it cannot.
func (r *RPC) serve(from NodeID, env *envelope) {
	r.handlersMu.RLock()
	h := r.handlers[env.service]
	r.handlersMu.RUnlock()
	if h == nil {
		r.nRejected.Add(1)
		r.reply(from, env.id, CodeNoHandler, []byte("no handler for service "+env.service))
		return
	}
	key := servingKey{from, env.id}
	r.servingMu.Lock()
	if r.stopping {
		r.servingMu.Unlock()
		return
	}
	if _, dup := r.serving[key]; dup {
		// A duplicated request whose first copy still runs.
		r.servingMu.Unlock()
		return
	}
	if len(r.serving) >= r.cfg.MaxConcurrent {
		r.servingMu.Unlock()
		r.nRejected.Add(1)
		r.reply(from, env.id, CodeOverloaded, []byte(fmt.Sprintf("%d handlers running", r.cfg.MaxConcurrent)))
		return
	}
	var ctx context.Context
	req := &inflight{}
	if env.timeout > 0 {
		ctx, req.cancel = context.WithTimeout(r.baseCtx, env.timeout)
	} else {
		ctx, req.cancel = context.WithCancel(r.baseCtx)
	}
	r.serving[key] = req
	r.handlerWG.Add(1)
	r.servingMu.Unlock()
	r.nServed.Add(1)

	go r.run(ctx, req, key, h, env.service, env.body)
}

// run executes one request handler and sends its answer.
func (r *RPC) run(ctx context.Context, req *inflight, key servingKey, h RequestHandler, service string, body []byte) {
	defer r.handlerWG.Done()
	resp, err, panicked := runHandler(ctx, h, key.from, body)

	r.servingMu.Lock()
	delete(r.serving, key)
	r.servingMu.Unlock()
	deadlineExceeded := errors.Is(ctx.Err(), context.DeadlineExceeded)
	req.cancel()
	switch {
	case req.byCaller.Load():
		// The caller gave up; an answer would only be counted as late.
	case panicked:
		r.log.Error("rpc handler panicked", "from", string(key.from), "rpc_service", service, "panic", err)
		r.reply(key.from, key.id, CodePanic, []byte(err.Error()))
	case err != nil && deadlineExceeded:
		// The caller's own deadline fires about now as well; this code
		// makes the call fail with context.DeadlineExceeded whichever
		// comes first.
		r.reply(key.from, key.id, CodeDeadlineExceeded, []byte(err.Error()))
	case err != nil:
		r.reply(key.from, key.id, CodeHandler, []byte(err.Error()))
	default:
		env := envelope{kind: kindResponse, id: key.id, body: resp}
		buf := appendEnvelope(make([]byte, 0, envelopeSize(&env)), &env)
		err := r.t.Send(r.baseCtx, key.from, r.cfg.Service, buf)
		if errors.Is(err, ErrMessageTooLarge) {
			// Tell the caller instead of letting it wait for its deadline.
			r.reply(key.from, key.id, CodeResponseTooLarge, []byte(fmt.Sprintf("%d-byte response", len(resp))))
		} else if err != nil {
			r.log.Debug("rpc response not sent", "to", string(key.from), "err", err)
		}
	}
}

// runHandler calls h, turning a panic into an error.
func runHandler(ctx context.Context, h RequestHandler, from NodeID, req []byte) (resp []byte, err error, panicked bool) {
	defer func() {
		if p := recover(); p != nil {
			resp, err, panicked = nil, fmt.Errorf("panic: %v", p), true
		}
	}()
	resp, err = h(ctx, from, req)
	return resp, err, false
}

// reply sends an error answer for call id.
func (r *RPC) reply(to NodeID, id uint64, code ErrorCode, msg []byte) {
	env := envelope{kind: kindError, id: id, code: code, body: msg}
	buf := appendEnvelope(make([]byte, 0, envelopeSize(&env)), &env)
	if err := r.t.Send(r.baseCtx, to, r.cfg.Service, buf); err != nil {
		r.log.Debug("rpc error reply not sent", "to", string(to), "code", code.String(), "err", err)
	}
}

// Stats returns the RPC's counters.
func (r *RPC) Stats() RPCStats {
	if r == nil {
		return RPCStats{}
	}
	r.callsMu.Lock()
	pending := len(r.calls)
	r.callsMu.Unlock()
	return RPCStats{
		Calls:         r.nCalls.Load(),
		Failed:        r.nFailed.Load(),
		Pending:       pending,
		Served:        r.nServed.Load(),
		Rejected:      r.nRejected.Load(),
		LateResponses: r.nLate.Load(),
		Malformed:     r.nMalformed.Load(),
	}
}

// Close unregisters the RPC from its transport, fails the calls still
// waiting with ErrClosed, cancels the contexts of running handlers and waits
// for them to return. It does not close the transport. Close is idempotent.
func (r *RPC) Close() error {
	if r == nil || r.closed == nil {
		return errNotStarted
	}
	r.closeOnce.Do(func() {
		r.t.Handle(r.cfg.Service, nil)
		r.servingMu.Lock()
		r.stopping = true
		r.servingMu.Unlock()
		close(r.closed)
		r.cancelBase()
		r.handlerWG.Wait()
	})
	return nil
}
