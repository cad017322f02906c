package dkpostgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/distkit/distkit/lock"

	dkpostgres "github.com/distkit/distkit/contrib/postgres"
)

// TestFenceRefusesStaleTokens: writes with a token at least the highest
// accepted go through (equal tokens too: one holder writes many times); a
// lower token is refused and its write rolled back; concurrent writers
// with interleaved tokens never let a lower token land after a higher one.
func TestFenceRefusesStaleTokens(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, "DISTKIT_POSTGRES_URL")
	cfg := dkpostgres.DefaultFenceConfig()
	cfg.Table = unique("fence")
	f, err := dkpostgres.NewFence(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.CreateTable(ctx, pool); err != nil {
		t.Fatal(err)
	}
	data := unique("guarded")
	if _, err := pool.Exec(ctx, "CREATE TABLE "+data+" (id int PRIMARY KEY, token numeric(20,0) NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	write := func(token lock.Token) error {
		return f.Guard(ctx, pool, "file-1", token, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO "+data+" (id, token) VALUES (1, $1::numeric) ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token", uint64(token))
			return err
		})
	}
	steps := []struct {
		token lock.Token
		stale bool
	}{{5, false}, {5, false}, {7, false}, {6, true}, {1<<64 - 1, false}, {1 << 63, true}}
	for _, s := range steps {
		err := write(s.token)
		if got := errors.Is(err, lock.ErrStaleToken); got != s.stale || (!s.stale && err != nil) {
			t.Fatalf("write with token %d = %v; want stale %v", s.token, err, s.stale)
		}
	}
	var last string
	if err := pool.QueryRow(ctx, "SELECT token::text FROM "+data+" WHERE id = 1").Scan(&last); err != nil || last != "18446744073709551615" {
		t.Fatalf("guarded row holds token %s, %v; want the highest, 18446744073709551615", last, err)
	}

	// Concurrent writers: the stored token never goes down.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				_ = f.Guard(ctx, pool, "file-2", lock.Token(i*8+w), func(tx pgx.Tx) error {
					var cur int64
					err := tx.QueryRow(ctx, "SELECT coalesce(max(token), 0)::bigint FROM "+data+" WHERE id = 2").Scan(&cur)
					if err != nil {
						return err
					}
					if cur > int64(i*8+w) {
						t.Errorf("token %d accepted after %d was written", i*8+w, cur)
					}
					_, err = tx.Exec(ctx, "INSERT INTO "+data+" (id, token) VALUES (2, $1) ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token", i*8+w)
					return err
				})
			}
		}()
	}
	wg.Wait()
	if _, err := dkpostgres.NewFence(dkpostgres.FenceConfig{Table: "bad name"}); !errors.Is(err, dkpostgres.ErrInvalidConfig) {
		t.Fatalf("NewFence(bad table) = %v; want ErrInvalidConfig", err)
	}
}
