package lock

import "time"

// leaseBound is a client's conservative view of its own lease. The service
// expires a lease one TTL after it processed the last renewal, by its own
// clock; the client cannot see that moment, but it knows it lies after the
// instant it sent the renewal. So it trusts its lease until
//
//	send time of the last acknowledged renewal + TTL − safety margin
//
// measured on its own clock, from before the request left. The margin
// covers the rate difference between the two clocks (not their offset,
// which never enters: each side measures a duration on its own clock).
type leaseBound struct {
	ttl, margin time.Duration
	until       time.Time // zero until the first acknowledgement
}

// acked records the acknowledgement, received at now, of a renewal (or of
// the Open) sent at sent. It reports false, and leaves the bound alone, if
// the bound had passed by now: for a while the client could not be sure of
// its lease, so the lease is lost for good. The service may have expired
// it, freed its locks and met a late duplicate of the Open since, which a
// successful answer cannot rule out.
func (b *leaseBound) acked(sent, now time.Time) bool {
	if !b.until.IsZero() && !now.Before(b.until) {
		return false
	}
	if u := sent.Add(b.ttl - b.margin); u.After(b.until) {
		b.until = u
	}
	return true
}

// valid reports whether the lease can still be trusted at now.
func (b *leaseBound) valid(now time.Time) bool { return now.Before(b.until) }
