package idempotency

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/distkit/distkit/clock"
)

// TestRunnerMatchesReference drives a Runner with random calls (keys,
// fingerprints, failing and succeeding operations, clock jumps, store
// restarts) and checks each answer against a simple model of the contract:
// a live completed key replays its value, a reused key with another
// fingerprint is refused, anything else runs fn; failures leave no record.
func TestRunnerMatchesReference(t *testing.T) {
	for _, f := range storeFactories() {
		t.Run(f.name, func(t *testing.T) {
			forSeeds(t, 12, 1000, func(t *testing.T, seed uint64) { checkRunnerModel(t, f, seed) })
		})
	}
}

type modelEntry struct {
	fingerprint string
	value       int
	expires     time.Time
}

func checkRunnerModel(t *testing.T, f storeFactory, seed uint64) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 3))
	clk := clock.NewManual(epoch)
	store, reopen := f.open(t, clk)
	cfg := DefaultConfig()
	cfg.Clock = clk
	cfg.Retention = time.Minute
	newRunner := func(s Store) *Runner[int] {
		r, err := NewRunner[int](s, JSONCodec[int]{}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := newRunner(store)
	defer func() { r.Close() }()
	model := map[string]modelEntry{}
	effects := 0
	for step := range 200 {
		clk.Advance(time.Duration(rng.IntN(10)) * time.Second)
		if reopen != nil && rng.IntN(20) == 0 {
			r.Close()
			r = newRunner(reopen())
		}
		key := fmt.Sprint("k", rng.IntN(5))
		fp := fmt.Sprint("fp", rng.IntN(2))
		fail := rng.IntN(4) == 0
		ran := false
		v, out, err := r.DoOutcome(ctx, key, fp, func(context.Context) (int, error) {
			ran = true
			effects++
			if fail {
				return 0, errors.New("declined")
			}
			return effects, nil
		})
		now := clk.Now()
		m, known := model[key]
		live := known && m.expires.After(now)
		switch {
		case live && m.fingerprint != fp:
			if !errors.Is(err, ErrKeyReuse) || ran {
				t.Fatalf("step %d: Do(%s, %s) = %d, %v, %v (ran %v); want ErrKeyReuse without running", step, key, fp, v, out, err, ran)
			}
		case live:
			if out != Replayed || v != m.value || err != nil || ran {
				t.Fatalf("step %d: Do(%s, %s) = %d, %v, %v (ran %v); want replay of %d", step, key, fp, v, out, err, ran, m.value)
			}
		case fail:
			if !ran || err == nil || out != Executed {
				t.Fatalf("step %d: Do(%s, %s) = %v, %v (ran %v); want an executed failure", step, key, fp, out, err, ran)
			}
			delete(model, key)
		default:
			if !ran || err != nil || out != Executed || v != effects {
				t.Fatalf("step %d: Do(%s, %s) = %d, %v, %v (ran %v); want executed %d", step, key, fp, v, out, err, ran, effects)
			}
			model[key] = modelEntry{fingerprint: fp, value: v, expires: now.Add(cfg.Retention)}
		}
	}
}
