package consensus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// failingStorage is memory storage whose Save fails once armed.
type failingStorage struct {
	memStorage
	armed chan struct{} // closed to make Save fail
}

var errDiskGone = errors.New("disk gone")

func (f *failingStorage) Save(hs raft.HardState, ents []raft.Entry) error {
	select {
	case <-f.armed:
		return errDiskGone
	default:
		return f.memStorage.Save(hs, ents)
	}
}

// TestStorageFailureStopsNode checks that a node whose storage fails stops
// instead of acknowledging writes it could not persist, and says why.
func TestStorageFailureStopsNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	net, _ := memnet.New(memnet.DefaultConfig())
	defer net.Close()
	tr, _ := net.Join("solo")
	store := &failingStorage{memStorage: memStorage{MemoryStorage: raft.NewMemoryStorage()}, armed: make(chan struct{})}
	n, err := newNode(testConfig("solo", []transport.NodeID{"solo"}), tr, newKV(), store)
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := NewClient(map[transport.NodeID]Proposer{"solo": n}, DefaultClientConfig())
	if _, err := cl.Propose(ctx, []byte("a=1")); err != nil {
		t.Fatalf("Propose before the failure = %v", err)
	}
	close(store.armed)
	if _, err := n.Propose(ctx, []byte("b=2")); !errors.Is(err, errDiskGone) {
		t.Fatalf("Propose during the failure err = %v; want it to wrap the storage error", err)
	}
	if _, err := n.Propose(ctx, []byte("c=3")); !errors.Is(err, ErrClosed) || !errors.Is(err, errDiskGone) {
		t.Fatalf("Propose after the failure err = %v; want ErrClosed wrapping the storage error", err)
	}
	if st := n.Status(); !errors.Is(st.Err, errDiskGone) {
		t.Fatalf("Status().Err = %v; want the storage error", st.Err)
	}
	if err := n.Close(); !errors.Is(err, errDiskGone) {
		t.Fatalf("Close = %v; want the storage error", err)
	}
}
