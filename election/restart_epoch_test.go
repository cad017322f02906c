package election_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/election"
)

// recordingStore is a MemoryEpochStore that remembers every Save.
type recordingStore struct {
	election.MemoryEpochStore
	mu    sync.Mutex // guards saves
	saves []uint64
}

func (s *recordingStore) Save(epoch uint64) error {
	s.mu.Lock()
	s.saves = append(s.saves, epoch)
	s.mu.Unlock()
	return s.MemoryEpochStore.Save(epoch)
}

func (s *recordingStore) saved() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.saves...)
}

// TestRuntimeResumesFromSavedEpoch restarts a node whose previous life
// reached epoch 41 (its store says so): the runtime must start its core
// from that epoch, so the next election it wins has a higher epoch and no
// Save ever goes back. A node that started from 0 would win epoch 1 again,
// an epoch some earlier leader (itself, in its previous life) already
// used: two leaderships with one epoch, which fencing by epoch cannot tell
// apart.
func TestRuntimeResumesFromSavedEpoch(t *testing.T) {
	for _, rt := range runtimes {
		t.Run(rt.name, func(t *testing.T) {
			store := &recordingStore{}
			if err := store.MemoryEpochStore.Save(41); err != nil {
				t.Fatal(err)
			}
			cfg := election.DefaultConfig()
			cfg.ID, cfg.Members, cfg.Store, cfg.BootDelay = "a", election.MembersByOrder("a"), store, 0
			nd, err := rt.new(lone(t, "a"), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer nd.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := nd.Campaign(ctx)
			if err != nil {
				t.Fatalf("Campaign: %v", err)
			}
			if l.ID != "a" || l.Epoch <= 41 {
				t.Errorf("Campaign() = %+v; want a leading in an epoch above 41, the saved one", l)
			}
			for _, e := range store.saved() {
				if e <= 41 {
					t.Errorf("the node saved epoch %d after starting from 41 (saves %v): epochs must only grow", e, store.saved())
					break
				}
			}
		})
	}
}
