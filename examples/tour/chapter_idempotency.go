package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/clock"
	"github.com/distkit/distkit/idempotency"
)

func init() {
	register(chapter{order: 50, name: "idempotency", title: "Idempotency keys: exactly-once effects over retries", run: runIdempotency})
}

func runIdempotency(ctx context.Context, t *tour) error {
	rng := rand.New(rand.NewPCG(uint64(t.seed), 50))
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	mcfg := idempotency.DefaultMemoryConfig()
	mcfg.Clock = clk
	store, err := idempotency.NewMemoryStore(mcfg)
	if err != nil {
		return err
	}
	cfg := idempotency.DefaultConfig()
	cfg.Clock = clk
	runner, err := idempotency.NewRunner[string](store, idempotency.StringCodec{}, cfg)
	if err != nil {
		return err
	}
	defer runner.Close()

	var charges atomic.Int64
	charge := func(context.Context) (string, error) {
		return fmt.Sprintf("ch_%d", charges.Add(1)), nil
	}

	t.Detail("A client charges a card. Its network loses responses, so it retries with the")
	t.Detail("same idempotency key; the server runs the charge once and replays the answer.")
	// Real clients use idempotency.RandomKey(); a derived key keeps the tour
	// reproducible.
	key, err := idempotency.DeriveKey("client-7", "charge", map[string]int{"order": rng.IntN(1000)})
	if err != nil {
		return err
	}
	fp := idempotency.Fingerprint([]byte(`{"card":"4242","amount":1000}`))
	lost := 1 + rng.IntN(3)
	for attempt := 1; attempt <= lost+1; attempt++ {
		receipt, outcome, err := runner.DoOutcome(ctx, key, fp, charge)
		if err != nil {
			return err
		}
		if attempt <= lost {
			t.Detail("attempt %d: server %s %s, response lost", attempt, outcome, receipt)
			continue
		}
		t.Say("after %d lost responses the client gets %s (%s); the card was charged %d time(s)",
			lost, receipt, outcome, charges.Load())
	}

	t.Detail("200 copies of one request arrive at once: one runs, the others wait and share.")
	var wg, started sync.WaitGroup
	release := make(chan struct{})
	slowCharge := func(ctx context.Context) (string, error) {
		<-release // the charge takes a while: duplicates pile up behind it
		return charge(ctx)
	}
	before := charges.Load()
	answers := make([]string, 200)
	started.Add(len(answers))
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			answers[i], _ = runner.Do(ctx, "burst-1", fp, slowCharge)
		}()
	}
	started.Wait()
	close(release)
	wg.Wait()
	same := 0
	for _, a := range answers {
		if a == answers[0] {
			same++
		}
	}
	// How many waited and how many came after the charge finished depends
	// on the scheduler, so the tour does not print the split.
	t.Detail("each duplicate either waited for the running call or came after it and got the stored receipt")
	t.Say("200 concurrent duplicates: %d charge; %d of 200 callers got its receipt %s",
		charges.Load()-before, same, answers[0])

	_, err = runner.Do(ctx, key, idempotency.Fingerprint([]byte(`{"card":"4242","amount":99999}`)), charge)
	t.Say("the same key with a different amount: %v", err)
	if !errors.Is(err, idempotency.ErrKeyReuse) {
		return fmt.Errorf("key reuse not detected: %v", err)
	}

	t.Detail("A process crashes after recording that it started a charge but before")
	t.Detail("finishing. The key is blocked until the in-progress timeout, never forever.")
	crashKey := "crash-1"
	now := clk.Now()
	if _, _, err := store.Begin(ctx, idempotency.Record{Key: crashKey, Status: idempotency.StatusInProgress,
		Token: 1, Fingerprint: fp, Created: now, Expires: now.Add(cfg.InProgressTimeout)}); err != nil {
		return err
	}
	_, err = runner.Do(ctx, crashKey, fp, charge)
	t.Say("retry right after the crash: %v", err)
	clk.Advance(cfg.InProgressTimeout)
	receipt, outcome, err := runner.DoOutcome(ctx, crashKey, fp, charge)
	if err != nil {
		return err
	}
	t.Say("retry %v later: %s (%s)", cfg.InProgressTimeout, receipt, outcome)

	return durableTour(ctx, t, rng)
}

// durableTour shows the file store surviving a crash with a torn last write.
func durableTour(ctx context.Context, t *tour, rng *rand.Rand) error {
	dir, err := os.MkdirTemp("", "distkit-tour-idempotency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "payments.idem")
	fs, err := idempotency.OpenFileStore(path, idempotency.DefaultFileConfig())
	if err != nil {
		return err
	}
	runner, err := idempotency.NewRunner[string](fs, idempotency.StringCodec{}, idempotency.DefaultConfig())
	if err != nil {
		fs.Close()
		return err
	}
	var charges atomic.Int64
	charge := func(context.Context) (string, error) { return fmt.Sprintf("ch_%d", charges.Add(1)), nil }
	const n = 50
	for i := range n {
		if _, err := runner.Do(ctx, fmt.Sprint("pay-", i), "fp", charge); err != nil {
			runner.Close()
			fs.Close()
			return err
		}
	}
	runner.Close()
	st := fs.Stats()
	t.Detail("%d charges recorded durably in %d fsyncs (%d frames, %d bytes).", n, st.Syncs, st.Frames, st.LogBytes)

	// The crash: the log as it was on disk, plus half a record the crash tore.
	data, err := os.ReadFile(path)
	if err != nil {
		fs.Close()
		return err
	}
	fs.Close()
	torn := make([]byte, 5+rng.IntN(30))
	for i := range torn {
		torn[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(path, append(data, torn...), 0o644); err != nil {
		return err
	}
	fs, err = idempotency.OpenFileStore(path, idempotency.DefaultFileConfig())
	if err != nil {
		return err
	}
	defer fs.Close()
	runner, err = idempotency.NewRunner[string](fs, idempotency.StringCodec{}, idempotency.DefaultConfig())
	if err != nil {
		return err
	}
	defer runner.Close()
	replayed := 0
	for i := range n {
		_, outcome, err := runner.DoOutcome(ctx, fmt.Sprint("pay-", i), "fp", charge)
		if err != nil {
			return err
		}
		if outcome == idempotency.Replayed {
			replayed++
		}
	}
	t.Say("after a crash that tore the log's last write (%d garbage bytes cut on reopen),", fs.Stats().TruncatedBytes)
	t.Say("all %d retries were replays: %d charges in total", replayed, charges.Load())
	if replayed != n || charges.Load() != n {
		return fmt.Errorf("durable store lost records: %d of %d replayed", replayed, n)
	}
	return nil
}
