package detector

import (
	"math"
	"testing"

	"pgregory.net/rapid"
)

// TestWindowMatchesRescan checks the incremental sums against a dumb
// reference that recomputes mean and variance from the last size samples.
func TestWindowMatchesRescan(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := rapid.IntRange(1, 50).Draw(t, "size")
		xs := rapid.SliceOfN(rapid.Uint64Range(0, maxWindowSample), 1, 300).Draw(t, "samples")
		w := newWindow(size)
		for i, x := range xs {
			w.add(x)
			lo := max(0, i+1-size)
			ref := xs[lo : i+1]
			var sum float64
			for _, v := range ref {
				sum += float64(v)
			}
			mean := sum / float64(len(ref))
			var ss float64
			for _, v := range ref {
				d := float64(v) - mean
				ss += d * d
			}
			variance := ss / float64(len(ref))
			gotMean, gotVar := w.meanVariance()
			if w.n != len(ref) {
				t.Fatalf("after %d adds n = %d; want %d", i+1, w.n, len(ref))
			}
			if math.Abs(gotMean-mean) > 1e-9*math.Max(1, mean) {
				t.Fatalf("after %d adds mean = %v; want %v", i+1, gotMean, mean)
			}
			scale := math.Max(1, mean*mean)
			if gotVar < 0 || math.Abs(gotVar-variance) > 1e-9*scale {
				t.Fatalf("after %d adds variance = %v; want %v", i+1, gotVar, variance)
			}
		}
	})
}

// TestWindowNoDrift adds and evicts many samples and checks that the
// variance of a constant window is exactly zero afterwards.
func TestWindowNoDrift(t *testing.T) {
	w := newWindow(16)
	for i := range 100_000 {
		w.add(uint64(i%977) * 1_000_003)
	}
	for range 16 {
		w.add(1_000_000_000)
	}
	mean, variance := w.meanVariance()
	if mean != 1e9 || variance != 0 {
		t.Fatalf("constant window: mean, variance = %v, %v; want 1e9, 0", mean, variance)
	}
}
