package lock_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/internal/benchload"
	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/transport"
)

// BenchmarkLockReplicated measures lock+unlock round trips against a
// three-member replicated service on memnet, from 16 clients each on its
// own lock. Each op is one Lock and one Unlock (two commits).
func BenchmarkLockReplicated(b *testing.B) {
	const clients = 16
	r, _ := newMemnetService(b, false)
	sessions := make([]*lock.Session, clients)
	for i := range sessions {
		sessions[i] = newSession(b, r.client(transport.NodeID(fmt.Sprint("c", i))), 5*time.Second)
	}
	benchload.Run(b, clients, "ops/s", func(ctx context.Context, i int) error {
		s, name := sessions[i], fmt.Sprint("lock-", i)
		g, err := s.Lock(ctx, name)
		if err != nil {
			return err
		}
		return s.Unlock(ctx, g)
	})
}
