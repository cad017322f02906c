package election

import (
	"context"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNotifierDeliversCurrentThenLatest(t *testing.T) {
	var n Notifier
	n.Publish(Leader{ID: "a", Epoch: 1})
	ch := n.Observe(context.Background())
	if got := <-ch; got != (Leader{ID: "a", Epoch: 1}) {
		t.Fatalf("first view = %+v; want a@1", got)
	}
	// A slow reader misses intermediate views but never blocks the publisher.
	for e := uint64(2); e <= 100; e++ {
		n.Publish(Leader{ID: "b", Epoch: e})
	}
	if got := <-ch; got != (Leader{ID: "b", Epoch: 100}) {
		t.Fatalf("view after 99 publishes = %+v; want b@100", got)
	}
	if got := n.Current(); got.Epoch != 100 {
		t.Fatalf("Current().Epoch = %d; want 100", got.Epoch)
	}
	n.Close()
	if _, ok := <-ch; ok {
		t.Fatalf("channel still open after Close")
	}
	n.Publish(Leader{ID: "c", Epoch: 101}) // ignored, must not panic
	if _, ok := <-n.Observe(context.Background()); ok {
		t.Fatalf("Observe after Close returned an open channel")
	}
}

func TestNotifierClosesOnContextEnd(t *testing.T) {
	var n Notifier
	ctx, cancel := context.WithCancel(context.Background())
	ch := n.Observe(ctx)
	<-ch // the initial (empty) view
	cancel()
	for range ch { // drains until the AfterFunc closes it
	}
	n.Publish(Leader{ID: "a", Epoch: 1}) // no observer left; must not block or panic
	n.Close()
}

func TestLeaderKnown(t *testing.T) {
	tests := []struct {
		name string
		l    Leader
		want bool
	}{
		{"empty", Leader{}, false},
		{"epoch only", Leader{Epoch: 3}, false},
		{"named", Leader{ID: "n1", Epoch: 3}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.l.Known(); got != tt.want {
				t.Errorf("%+v.Known() = %v; want %v", tt.l, got, tt.want)
			}
		})
	}
}
