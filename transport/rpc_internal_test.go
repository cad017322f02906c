package transport

import (
	"context"
	"sync"
	"testing"
)

// recorder is a Transport that hands every sent message to the test
// instead of delivering it, so tests can forge and reorder answers.
type recorder struct {
	// sent receives every message passed to Send; unbuffered, so a test
	// reads exactly the messages it expects.
	sent chan Message
	// mu guards h.
	mu sync.Mutex
	h  Handler
}

func newRecorder() *recorder { return &recorder{sent: make(chan Message)} }

func (r *recorder) ID() NodeID { return "n1" }
func (r *recorder) Send(ctx context.Context, to NodeID, service string, payload []byte) error {
	select {
	case r.sent <- Message{From: "n1", To: to, Service: service, Payload: payload}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
func (r *recorder) Handle(_ string, h Handler) {
	r.mu.Lock()
	r.h = h
	r.mu.Unlock()
}
func (r *recorder) Close() error { return nil }

func (r *recorder) deliver(msg Message) {
	r.mu.Lock()
	h := r.h
	r.mu.Unlock()
	h(msg)
}

func (r *recorder) next(t *testing.T) (Message, envelope) {
	t.Helper()
	msg := <-r.sent
	env, err := decodeEnvelope(msg.Payload)
	if err != nil {
		t.Fatalf("RPC sent an undecodable envelope: %v", err)
	}
	return msg, env
}

func encode(e envelope) []byte { return appendEnvelope(nil, &e) }

// TestResponseOnlyFromCallee checks that a response is accepted only from
// the node that was called, and only once.
func TestResponseOnlyFromCallee(t *testing.T) {
	rec := newRecorder()
	r, err := NewRPC(rec, DefaultRPCConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	type result struct {
		resp []byte
		err  error
	}
	done := make(chan result, 1) // reported once
	go func() {
		resp, err := r.Call(context.Background(), "n2", "svc", []byte("req"))
		done <- result{resp, err}
	}()
	_, req := rec.next(t)
	if req.kind != kindRequest || req.service != "svc" || string(req.body) != "req" || req.timeout <= 0 {
		t.Fatalf("request envelope = %+v; want a request for svc with body req and a timeout", req)
	}
	rec.deliver(Message{From: "n3", To: "n1", Service: "rpc", Payload: encode(envelope{kind: kindResponse, id: req.id, body: []byte("forged")})})
	rec.deliver(Message{From: "n2", To: "n1", Service: "rpc", Payload: encode(envelope{kind: kindResponse, id: req.id, body: []byte("real")})})
	rec.deliver(Message{From: "n2", To: "n1", Service: "rpc", Payload: encode(envelope{kind: kindResponse, id: req.id, body: []byte("duplicate")})})
	got := <-done
	if got.err != nil || string(got.resp) != "real" {
		t.Errorf("Call = %q, %v; want %q, nil", got.resp, got.err, "real")
	}
	if s := r.Stats(); s.LateResponses != 2 || s.Pending != 0 || s.Calls != 1 || s.Failed != 0 {
		t.Errorf("Stats() = %+v; want 2 late responses, 0 pending, 1 call, 0 failed", s)
	}
}

// TestDuplicateRequestRunsOnce checks that a duplicate of a request whose
// handler still runs is ignored, and that a cancel ends the handler without
// an answer.
func TestDuplicateRequestRunsOnce(t *testing.T) {
	rec := newRecorder()
	r, err := NewRPC(rec, DefaultRPCConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	started := make(chan struct{}, 2) // room for a (wrong) second run
	ended := make(chan NodeID, 2)     // as many as started
	r.Handle("slow", func(ctx context.Context, from NodeID, _ []byte) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		ended <- from
		return nil, ctx.Err()
	})
	req := encode(envelope{kind: kindRequest, id: 5, service: "slow"})
	rec.deliver(Message{From: "n2", To: "n1", Service: "rpc", Payload: req})
	<-started
	rec.deliver(Message{From: "n2", To: "n1", Service: "rpc", Payload: req})
	// The same ID from another caller is another call.
	rec.deliver(Message{From: "n3", To: "n1", Service: "rpc", Payload: req})
	<-started
	if s := r.Stats(); s.Served != 2 {
		t.Errorf("Stats().Served = %d; want 2 (the duplicate from n2 ignored)", s.Served)
	}
	rec.deliver(Message{From: "n2", To: "n1", Service: "rpc", Payload: encode(envelope{kind: kindCancel, id: 5})})
	if from := <-ended; from != "n2" {
		t.Errorf("the cancel from n2 ended the handler of %s's call", from)
	}
	select {
	case msg := <-rec.sent:
		t.Errorf("RPC answered a cancelled call: %+v", msg)
	default:
	}
	// n3's call is still running; closing the RPC ends it. Its answer is
	// not sent: Send sees the RPC's cancelled context.
	r.Close()
	<-ended
}

func TestMalformedEnvelopeCounted(t *testing.T) {
	rec := newRecorder()
	r, err := NewRPC(rec, DefaultRPCConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	rec.deliver(Message{From: "n2", To: "n1", Service: "rpc", Payload: []byte{0xde, 0xad}})
	if got := r.Stats().Malformed; got != 1 {
		t.Errorf("Stats().Malformed = %d; want 1", got)
	}
}
