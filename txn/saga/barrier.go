package saga

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/distkit/distkit/idempotency"
)

// Fingerprints of the barrier's records: an action's slot holds either
// the action itself or the mark of a compensation that came first.
const (
	fpAction      = "saga-action"
	fpCompensated = "saga-compensated-first"
	fpCompensate  = "saga-compensate"
)

// Barrier makes a service's saga handlers safe under at-least-once,
// reordering delivery (the "branch barrier"). Each branch (saga ID and
// step) has two records in an idempotency.Store: its action's slot and its
// compensation's slot.
//
//   - Duplicate: a second action, or a second compensation, finds its
//     slot completed and does nothing (nil).
//   - Null compensation: a compensation that arrives before (or without)
//     its action finds the action's slot free, takes it with a
//     "compensated first" mark and does nothing: there is nothing to undo.
//   - Hanging action: an action arriving after its compensation finds
//     that mark in its slot and is refused with ErrHanging, so it never
//     acts after its saga has been compensated.
//
// The records live for TTL (choose it longer than any message can wait in
// the network or in a retry loop); an in-progress attempt holds its slot
// for Lease, after which another attempt may take it over (a crashed
// handler). Caller's duty: an action must be atomic (it acts entirely or
// not at all when it returns an error), because a failed action's slot is
// freed for a retry or a null compensation.
//
// It is safe for concurrent use.
type Barrier struct {
	store idempotency.Store
	ttl   time.Duration
	lease time.Duration
	now   func() time.Time
	token atomic.Uint64
}

// NewBarrier returns a barrier over store. now is the clock (nil:
// time.Now); ttl bounds how long a branch is remembered, lease how long
// an attempt in progress holds it.
func NewBarrier(store idempotency.Store, ttl, lease time.Duration, now func() time.Time) (*Barrier, error) {
	if store == nil || ttl <= 0 || lease <= 0 || lease > ttl {
		return nil, fmt.Errorf("%w: barrier store %v, ttl %v, lease %v", ErrInvalid, store, ttl, lease)
	}
	if now == nil {
		now = time.Now
	}
	return &Barrier{store: store, ttl: ttl, lease: lease, now: now}, nil
}

func branchKey(id string, step int, op string) string {
	return fmt.Sprintf("saga:%s:%d:%s", id, step, op)
}

// begin takes key's slot with fingerprint fp, or returns the record that
// holds it.
func (b *Barrier) begin(ctx context.Context, key, fp string) (held idempotency.Record, created bool, err error) {
	now := b.now()
	return b.store.Begin(ctx, idempotency.Record{Key: key, Status: idempotency.StatusInProgress,
		Token: b.token.Add(1), Fingerprint: fp, Created: now, Expires: now.Add(b.lease)})
}

func (b *Barrier) complete(ctx context.Context, rec idempotency.Record) error {
	rec.Status = idempotency.StatusCompleted
	rec.Expires = b.now().Add(b.ttl)
	return b.store.Complete(ctx, rec)
}

// Action runs fn as the action of step step of saga id, unless it already
// ran (nil, fn not called), its compensation came first (ErrHanging) or
// another attempt is in progress (ErrBusy). fn's error is returned and
// frees the slot for a retry.
func (b *Barrier) Action(ctx context.Context, id string, step int, fn func(ctx context.Context) error) error {
	key := branchKey(id, step, "action")
	held, created, err := b.begin(ctx, key, fpAction)
	switch {
	case err != nil:
		return fmt.Errorf("saga: barrier: %w", err)
	case !created && held.Fingerprint == fpCompensated:
		return fmt.Errorf("%w: saga %q step %d", ErrHanging, id, step)
	case !created && held.Status == idempotency.StatusCompleted:
		return nil // duplicate
	case !created:
		return fmt.Errorf("%w: saga %q step %d", ErrBusy, id, step)
	}
	if err := fn(ctx); err != nil {
		if aerr := b.store.Abort(ctx, key, held.Token); aerr != nil && !errors.Is(aerr, idempotency.ErrNotOwner) {
			return errors.Join(err, fmt.Errorf("saga: barrier: %w", aerr))
		}
		return err
	}
	if err := b.complete(ctx, held); err != nil {
		return fmt.Errorf("saga: barrier: %w", err)
	}
	return nil
}

// Compensate runs fn as the compensation of step step of saga id, unless
// it already ran (nil), the action never ran (nil, fn not called: a null
// compensation, which also bars the action from running later), or an
// attempt of the action or of the compensation is in progress (ErrBusy:
// retry). fn's error is returned and frees the slot for a retry.
func (b *Barrier) Compensate(ctx context.Context, id string, step int, fn func(ctx context.Context) error) error {
	akey := branchKey(id, step, "action")
	held, created, err := b.begin(ctx, akey, fpCompensated)
	if err != nil {
		return fmt.Errorf("saga: barrier: %w", err)
	}
	null := created || held.Fingerprint == fpCompensated
	switch {
	case created:
		// The action never ran: bar it for good.
		if err := b.complete(ctx, held); err != nil {
			return fmt.Errorf("saga: barrier: %w", err)
		}
	case held.Fingerprint == fpAction && held.Status != idempotency.StatusCompleted:
		return fmt.Errorf("%w: saga %q step %d (action)", ErrBusy, id, step)
	}
	ckey := branchKey(id, step, "compensate")
	cheld, ccreated, err := b.begin(ctx, ckey, fpCompensate)
	switch {
	case err != nil:
		return fmt.Errorf("saga: barrier: %w", err)
	case !ccreated && cheld.Status == idempotency.StatusCompleted:
		return nil // duplicate
	case !ccreated:
		return fmt.Errorf("%w: saga %q step %d (compensation)", ErrBusy, id, step)
	}
	if !null {
		if err := fn(ctx); err != nil {
			if aerr := b.store.Abort(ctx, ckey, cheld.Token); aerr != nil && !errors.Is(aerr, idempotency.ErrNotOwner) {
				return errors.Join(err, fmt.Errorf("saga: barrier: %w", aerr))
			}
			return err
		}
	}
	if err := b.complete(ctx, cheld); err != nil {
		return fmt.Errorf("saga: barrier: %w", err)
	}
	return nil
}
