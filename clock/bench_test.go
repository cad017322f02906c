package clock

import (
	"fmt"
	"testing"
	"time"
)

// reportRate adds an events-per-second metric to a benchmark.
func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkLamportTick(b *testing.B) {
	b.ReportAllocs()
	var c Lamport
	for b.Loop() {
		c.Tick()
	}
	reportRate(b)
}

func BenchmarkLamportTickParallel(b *testing.B) {
	b.ReportAllocs()
	var c Lamport
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Tick()
		}
	})
	reportRate(b)
}

func BenchmarkLamportReceive(b *testing.B) {
	b.ReportAllocs()
	var c Lamport
	var remote uint64
	for b.Loop() {
		remote += 2 // half the receives move the clock forward, half do not
		if _, err := c.Receive(remote); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkLamportReceiveParallel(b *testing.B) {
	b.ReportAllocs()
	var c Lamport
	b.RunParallel(func(pb *testing.PB) {
		var remote uint64
		for pb.Next() {
			remote += 2
			if _, err := c.Receive(remote); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

// benchVector returns a clock over n nodes with distinct ID strings (as a
// decoded clock would have), every counter set to counter.
func benchVector(n int, counter uint64) *Vector {
	m := make(map[NodeID]uint64, n)
	for i := range n {
		m[NodeID(fmt.Sprintf("node-%03d", i))] = counter
	}
	v, err := VectorOf(m)
	if err != nil {
		panic(err)
	}
	return v
}

var sizes = []int{4, 16, 64}

// BenchmarkVectorCompare compares clocks over the same n nodes that differ
// only in the last entry, so Compare must walk every entry.
func BenchmarkVectorCompare(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			x, y := benchVector(n, 5), benchVector(n, 5)
			y.entries[n-1].counter++
			for b.Loop() {
				if x.Compare(y) != Before {
					b.Fatal("want Before")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
		})
	}
}

// BenchmarkVectorMerge merges a clock over the same n nodes (no new
// entries), the steady state of a replica receiving updates.
func BenchmarkVectorMerge(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			x, y := benchVector(n, 5), benchVector(n, 7)
			for b.Loop() {
				x.Merge(y)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/entry")
		})
	}
}

func BenchmarkVectorMarshalBinary(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			v := benchVector(n, 1000)
			buf := make([]byte, 0, 1024)
			var size int
			for b.Loop() {
				out, _ := v.AppendBinary(buf[:0])
				size = len(out)
			}
			b.ReportMetric(float64(size), "bytes")
		})
	}
}

func BenchmarkVectorUnmarshalBinary(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			data, _ := benchVector(n, 1000).MarshalBinary()
			var v Vector
			for b.Loop() {
				if err := v.UnmarshalBinary(data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes")
		})
	}
}

// BenchmarkHLCNow measures a timestamp for a local event with the system
// clock, the HLC's hot path.
func BenchmarkHLCNow(b *testing.B) {
	b.ReportAllocs()
	h, err := NewHLC(DefaultHLCConfig())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		h.Now()
	}
	reportRate(b)
}

func BenchmarkHLCNowParallel(b *testing.B) {
	b.ReportAllocs()
	h, err := NewHLC(DefaultHLCConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Now()
		}
	})
	reportRate(b)
}

func BenchmarkHLCUpdate(b *testing.B) {
	b.ReportAllocs()
	h, err := NewHLC(DefaultHLCConfig())
	if err != nil {
		b.Fatal(err)
	}
	remote, err := NewTimestamp(time.Now(), 0)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := h.Update(remote); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkSourceSystemNow is the baseline for BenchmarkHLCNow: reading the
// system clock, which dominates an HLC timestamp.
func BenchmarkSourceSystemNow(b *testing.B) {
	b.ReportAllocs()
	var src Source = System{}
	var sink int64
	for b.Loop() {
		sink += src.Now().UnixNano()
	}
	_ = sink
	reportRate(b)
}
