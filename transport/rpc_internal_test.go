package transport

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"
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

// newRecordedRPC returns an RPC with the default config over a new
// recorder, closed when the test ends.
func newRecordedRPC(t *testing.T) (*recorder, *RPC) {
	t.Helper()
	rec := newRecorder()
	r, err := NewRPC(rec, DefaultRPCConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return rec, r
}

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
	rec, r := newRecordedRPC(t)
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
// handler still runs is ignored, that the same call ID from another caller
// is another call, and that a cancel ends the handler without an answer.
// It runs in a synctest bubble, so a handler that never starts is a
// reported deadlock rather than a hang.
func TestDuplicateRequestRunsOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec, r := newRecordedRPC(t)
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
		synctest.Wait() // the cancelled call's goroutine has finished or blocks in Send
		select {
		case msg := <-rec.sent:
			t.Errorf("RPC answered a cancelled call: %+v", msg)
		default:
		}
		// n3's call is still running; closing the RPC ends it. Its answer is
		// not sent: Send sees the RPC's cancelled context.
		r.Close()
		<-ended
	})
}

// TestGiveUpSendsCancel checks that a caller that gives up, by cancelling
// or by its deadline, tells the callee with a cancel envelope for the same
// call, and frees its slot.
func TestGiveUpSendsCancel(t *testing.T) {
	tests := []struct {
		name string
		// ctx returns the call's context and how the test gives up on it.
		ctx  func() (context.Context, context.CancelFunc, func())
		want error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc, func()) {
			ctx, cancel := context.WithCancel(context.Background())
			return ctx, cancel, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc, func()) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			return ctx, cancel, func() { time.Sleep(time.Second) } // fake time
		}, context.DeadlineExceeded},
		{"default timeout", func() (context.Context, context.CancelFunc, func()) {
			return context.Background(), func() {}, func() { time.Sleep(DefaultRPCConfig().Timeout) }
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec, r := newRecordedRPC(t)
				ctx, cancel, giveUp := tt.ctx()
				defer cancel()
				done := make(chan error, 1) // reported once
				go func() {
					_, err := r.Call(ctx, "n2", "svc", nil)
					done <- err
				}()
				_, req := rec.next(t)
				giveUp()
				msg, got := rec.next(t)
				if msg.To != "n2" || got.kind != kindCancel || got.id != req.id {
					t.Errorf("after giving up the RPC sent %+v to %s; want a cancel of call %d to n2", got, msg.To, req.id)
				}
				if err := <-done; !errors.Is(err, tt.want) {
					t.Errorf("Call = %v; want %v", err, tt.want)
				}
				if p := r.Stats().Pending; p != 0 {
					t.Errorf("Stats().Pending = %d after the call gave up; want 0", p)
				}
			})
		})
	}
}

// TestHandlerPastDeadlineAnswersDeadlineExceeded checks that a handler
// that fails because the budget carried by the request ran out is answered
// with CodeDeadlineExceeded, which the caller's errors.Is matches as
// context.DeadlineExceeded.
func TestHandlerPastDeadlineAnswersDeadlineExceeded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec, r := newRecordedRPC(t)
		r.Handle("slow", func(ctx context.Context, _ NodeID, _ []byte) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		rec.deliver(Message{From: "n2", To: "n1", Service: "rpc", Payload: encode(envelope{kind: kindRequest, id: 9, timeout: time.Second, service: "slow"})})
		msg, got := rec.next(t)
		if msg.To != "n2" || got.kind != kindError || got.id != 9 || got.code != CodeDeadlineExceeded {
			t.Errorf("answer to a request past its budget = %+v to %s; want an error with %v for call 9 to n2", got, msg.To, CodeDeadlineExceeded)
		}
	})
}

// TestCloseWaitsForHandlers checks that RPC.Close cancels running handlers
// and returns only once they have returned.
func TestCloseWaitsForHandlers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := newRecorder()
		r, err := NewRPC(rec, DefaultRPCConfig())
		if err != nil {
			t.Fatal(err)
		}
		started, release := make(chan struct{}), make(chan struct{})
		r.Handle("slow", func(ctx context.Context, _ NodeID, _ []byte) ([]byte, error) {
			close(started)
			<-ctx.Done()
			<-release // still working after its context ended
			return nil, ctx.Err()
		})
		rec.deliver(Message{From: "n2", To: "n1", Service: "rpc", Payload: encode(envelope{kind: kindRequest, id: 1, service: "slow"})})
		<-started
		closed := make(chan struct{})
		go func() {
			r.Close()
			close(closed)
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Error("Close returned while a handler was still running")
		default:
		}
		close(release)
		<-closed
	})
}

// TestCallIDsStartAtRandom checks that two RPC lives do not start their
// call IDs at the same point: a restarted node must not reuse the IDs whose
// late responses may still be on the way.
func TestCallIDsStartAtRandom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ids [2]uint64
		for i := range ids {
			rec := newRecorder()
			r, err := NewRPC(rec, DefaultRPCConfig())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			go func() { _, _ = r.Call(ctx, "n2", "svc", nil) }()
			_, req := rec.next(t)
			ids[i] = req.id
			cancel()
			rec.next(t) // the cancel
			r.Close()
		}
		if ids[0] == ids[1] {
			t.Errorf("two RPCs both started with call ID %d; want random starting points", ids[0])
		}
	})
}

func TestMalformedEnvelopeCounted(t *testing.T) {
	rec, r := newRecordedRPC(t)
	rec.deliver(Message{From: "n2", To: "n1", Service: "rpc", Payload: []byte{0xde, 0xad}})
	if got := r.Stats().Malformed; got != 1 {
		t.Errorf("Stats().Malformed = %d; want 1", got)
	}
}
