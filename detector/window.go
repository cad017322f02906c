package detector

import "math/bits"

// window is a bounded ring buffer of inter-arrival times in nanoseconds that
// keeps the exact sum and sum of squares of its contents, so the mean and
// variance cost O(1) per sample and never drift: the sums are integers (the
// sum of squares is 128 bits wide), and evicting a sample subtracts exactly
// what adding it added. Floating-point running sums would accumulate
// rounding error over millions of add/evict pairs.
//
// Callers bound every sample by maxWindowSample and the capacity by
// maxWindowSize, which keeps the sums inside their integer widths:
// 2^16 samples of at most 2^47 ns sum to less than 2^63, and n·Σx² as well
// as (Σx)² stay below 2^127.
type window struct {
	samples []uint64 // ring buffer; samples[next] is the oldest once full
	next    int      // index the next sample is written to
	n       int      // number of samples held, ≤ len(samples)
	sum     uint64   // Σx
	sqHi    uint64   // Σx², high 64 bits
	sqLo    uint64   // Σx², low 64 bits
}

const (
	// maxWindowSize bounds the ring buffer (see window).
	maxWindowSize = 1 << 16
	// maxWindowSample bounds one sample: 2^47 ns is about 39 hours.
	maxWindowSample = 1 << 47
)

func newWindow(size int) window { return window{samples: make([]uint64, size)} }

// add appends x (ns), evicting the oldest sample when the window is full.
func (w *window) add(x uint64) {
	if w.n == len(w.samples) {
		old := w.samples[w.next]
		w.sum -= old
		hi, lo := bits.Mul64(old, old)
		var borrow uint64
		w.sqLo, borrow = bits.Sub64(w.sqLo, lo, 0)
		w.sqHi, _ = bits.Sub64(w.sqHi, hi, borrow)
	} else {
		w.n++
	}
	w.samples[w.next] = x
	w.next++
	if w.next == len(w.samples) {
		w.next = 0
	}
	w.sum += x
	hi, lo := bits.Mul64(x, x)
	var carry uint64
	w.sqLo, carry = bits.Add64(w.sqLo, lo, 0)
	w.sqHi, _ = bits.Add64(w.sqHi, hi, carry)
}

// meanVariance returns the mean and the population variance of the samples
// in ns and ns². The variance is computed as (n·Σx² − (Σx)²)/n² in exact
// integer arithmetic, so it is never negative.
func (w *window) meanVariance() (mean, variance float64) {
	if w.n == 0 {
		return 0, 0
	}
	n := uint64(w.n)
	// n·Σx² (128 bits; fits, see the type comment).
	hi1, lo1 := bits.Mul64(w.sqLo, n)
	hi1 += w.sqHi * n
	// (Σx)²
	hi2, lo2 := bits.Mul64(w.sum, w.sum)
	lo, borrow := bits.Sub64(lo1, lo2, 0)
	hi, _ := bits.Sub64(hi1, hi2, borrow)
	num := float64(hi)*0x1p64 + float64(lo)
	nf := float64(n)
	return float64(w.sum) / nf, num / (nf * nf)
}
