package consensus

// Tests of the Client's numbering ring (found by review of the seventh
// session of issue 13).

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestClientRingHoldsAtMostItsSize: begin hands out at most len(ended)
// open numbers (slots of open numbers stay distinct); the next caller waits
// until the oldest ends, and no longer. Virtual time.
func TestClientRingHoldsAtMostItsSize(t *testing.T) {
	for _, ring := range []int{1, 2, 4} {
		synctest.Test(t, func(t *testing.T) { clientRingHoldsAtMostItsSize(t, ring) })
	}
}

func clientRingHoldsAtMostItsSize(t *testing.T, ring int) {
	c := &Client{}
	s := newClientSession(1, ring)
	for i := range ring {
		if seq, err := c.begin(context.Background(), s); err != nil || seq != uint64(i+1) {
			t.Fatalf("ring %d: begin %d = %d, %v", ring, i, seq, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	seq, err := c.begin(ctx, s)
	cancel()
	if err == nil {
		t.Fatalf("ring %d: begin with %d numbers open = %d; want it to wait (slot %d is still held by %d)", ring, ring, seq, seq%uint64(ring), seq-uint64(ring))
	}
	// The oldest ends: the waiting caller gets the next number at once.
	// (Its context ends with the test, so a failure leaves no waiter.)
	wctx, wcancel := context.WithCancel(context.Background())
	defer wcancel()
	got := make(chan uint64, 1)
	go func() {
		seq, _ := c.begin(wctx, s)
		got <- seq
	}()
	synctest.Wait() // the caller waits for room
	c.end(s, 1)
	select {
	case seq := <-got:
		if seq != uint64(ring+1) {
			t.Fatalf("ring %d: begin after the oldest ended = %d; want %d", ring, seq, ring+1)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("ring %d: begin still waits after the oldest of %d open numbers ended", ring, ring)
	}
}

// TestClientBeginFullRingMarkMovedMeanwhile: the ring is full when
// begin reads low, and its only open number ends before begin reads next:
// begin must not wait for a further move of the mark (none will come).
// Virtual time: a begin that waits fails at once, not after real seconds.
func TestClientBeginFullRingMarkMovedMeanwhile(t *testing.T) {
	synctest.Test(t, clientBeginFullRingMarkMovedMeanwhile)
}

func clientBeginFullRingMarkMovedMeanwhile(t *testing.T) {
	c := &Client{}
	s := newClientSession(1, 1)
	if seq, err := c.begin(context.Background(), s); err != nil || seq != 1 {
		t.Fatalf("begin = %d, %v", seq, err)
	}
	calls := 0
	s.beginHook = func() { // between begin's read of low and of next
		if calls++; calls == 1 {
			c.end(s, 1) // the only open number ends
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if seq, err := c.begin(ctx, s); err != nil || seq != 2 {
		t.Fatalf("begin after the only open number ended = %d, %v; want 2 at once", seq, err)
	}
}
