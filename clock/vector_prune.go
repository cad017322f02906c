package clock

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// PrunePolicy bounds the size of a vector clock whose membership keeps
// growing (clients as actors, nodes that come and go), the way Riak prunes
// its vclocks with small_vclock, big_vclock, young_vclock and old_vclock.
//
// Pruning removes the entries updated longest ago, oldest first, and stops
// at the first entry it may not remove. Walking from the oldest entry, an
// entry is removed while all of these hold:
//
//  1. the clock has more than SmallSize entries;
//  2. the entry is at least YoungAge old;
//  3. the clock has more than BigSize entries, or the entry is older than
//     OldAge.
//
// An entry's age is measured from its last TickAt; entries never ticked with
// TickAt have no update time and count as the oldest of all.
//
// Warning: pruning throws away causal history. Afterwards Compare can report
// Before or After for events that were concurrent (a conflict is silently
// resolved as an overwrite), or Concurrent for events that were ordered (a
// false conflict). Use it only when a bounded clock matters more than exact
// causality, and prefer limits well above the number of active writers.
type PrunePolicy struct {
	SmallSize int           // never prune a clock with this many entries or fewer
	BigSize   int           // above this many entries, prune down to it (respecting YoungAge)
	YoungAge  time.Duration // never prune an entry updated more recently than this
	OldAge    time.Duration // prune entries not updated for longer than this (down to SmallSize)
}

// DefaultPrunePolicy returns Riak's defaults: at most 50 entries, never
// pruning entries younger than 20 seconds, pruning entries older than a day
// once the clock exceeds 50 entries.
func DefaultPrunePolicy() PrunePolicy {
	return PrunePolicy{SmallSize: 50, BigSize: 50, YoungAge: 20 * time.Second, OldAge: 24 * time.Hour}
}

// Validate reports whether the policy is consistent.
func (p PrunePolicy) Validate() error {
	switch {
	case p.SmallSize < 0:
		return fmt.Errorf("%w: PrunePolicy.SmallSize must be ≥ 0, got %d", ErrInvalidConfig, p.SmallSize)
	case p.BigSize < p.SmallSize:
		return fmt.Errorf("%w: PrunePolicy.BigSize (%d) must be ≥ SmallSize (%d)", ErrInvalidConfig, p.BigSize, p.SmallSize)
	case p.YoungAge < 0:
		return fmt.Errorf("%w: PrunePolicy.YoungAge must be ≥ 0, got %v", ErrInvalidConfig, p.YoungAge)
	case p.OldAge < p.YoungAge:
		return fmt.Errorf("%w: PrunePolicy.OldAge (%v) must be ≥ YoungAge (%v)", ErrInvalidConfig, p.OldAge, p.YoungAge)
	}
	return nil
}

// Prune removes entries from v according to p, with ages measured at now,
// and returns how many it removed. It returns an error wrapping
// ErrInvalidConfig, leaving v unchanged, if p is invalid. See PrunePolicy
// for the rules and for why pruning can misreport causality.
func (v *Vector) Prune(p PrunePolicy, now time.Time) (int, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	if v == nil || len(v.entries) <= p.SmallSize {
		return 0, nil
	}
	nowNanos := now.UnixNano()
	// Oldest first; entries without an update time (0) sort before all
	// others, ties broken by node so the result is deterministic.
	order := make([]int, len(v.entries))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		ea, eb := v.entries[a], v.entries[b]
		if c := cmp.Compare(ea.updated, eb.updated); c != 0 {
			return c
		}
		return cmp.Compare(ea.node, eb.node)
	})
	remaining := len(v.entries)
	remove := make([]bool, len(v.entries))
	for _, idx := range order {
		if remaining <= p.SmallSize {
			break
		}
		e := v.entries[idx]
		known := e.updated != 0
		age := ageAt(nowNanos, e.updated)
		if known && age < p.YoungAge {
			break
		}
		if remaining <= p.BigSize && known && age <= p.OldAge {
			break
		}
		remove[idx] = true
		remaining--
	}
	removed := len(v.entries) - remaining
	if removed == 0 {
		return 0, nil
	}
	kept := v.entries[:0]
	for i, e := range v.entries {
		if !remove[i] {
			kept = append(kept, e)
		}
	}
	clear(v.entries[len(kept):]) // drop references to removed node IDs
	v.entries = kept
	return removed, nil
}

// ageAt returns now-updated, saturating instead of overflowing for times
// centuries apart.
func ageAt(now, updated int64) time.Duration {
	d := now - updated
	// a-b overflows only when a and b have different signs and the result's
	// sign differs from a's.
	if (now < 0) != (updated < 0) && (d < 0) != (now < 0) {
		if now < 0 {
			return time.Duration(-1 << 63)
		}
		return time.Duration(1<<63 - 1)
	}
	return time.Duration(d)
}
