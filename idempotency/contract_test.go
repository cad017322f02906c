package idempotency_test

import (
	"path/filepath"
	"testing"

	"github.com/distkit/distkit/idempotency"
	"github.com/distkit/distkit/idempotency/storetest"
)

// TestMemoryStoreContract runs the exported Store contract (storetest)
// against MemoryStore, with one shard and with many.
func TestMemoryStoreContract(t *testing.T) {
	for _, shards := range []int{1, 32} {
		t.Run(map[int]string{1: "1-shard", 32: "32-shards"}[shards], func(t *testing.T) {
			storetest.Run(t, storetest.Harness{
				Open: func(t *testing.T) idempotency.Store {
					cfg := idempotency.DefaultMemoryConfig()
					cfg.Shards = shards
					s, err := idempotency.NewMemoryStore(cfg)
					if err != nil {
						t.Fatalf("NewMemoryStore: %v", err)
					}
					return s
				},
			})
		})
	}
}

// TestFileStoreContract runs the Store contract against FileStore,
// including records surviving a close and reopen.
func TestFileStoreContract(t *testing.T) {
	open := func(t *testing.T, path string) *idempotency.FileStore {
		t.Helper()
		s, err := idempotency.OpenFileStore(path, idempotency.DefaultFileConfig())
		if err != nil {
			t.Fatalf("OpenFileStore: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	paths := map[idempotency.Store]string{}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T) idempotency.Store {
			path := filepath.Join(t.TempDir(), "idem.log")
			s := open(t, path)
			paths[s] = path
			return s
		},
		Reopen: func(t *testing.T, s idempotency.Store) idempotency.Store {
			fs := s.(*idempotency.FileStore)
			if err := fs.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return open(t, paths[s])
		},
	})
}
