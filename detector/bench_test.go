package detector

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkPhi measures Phi(now) on a full window.
func BenchmarkPhi(b *testing.B) {
	for _, size := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("window=%d", size), func(b *testing.B) {
			cfg := DefaultPhiConfig()
			cfg.WindowSize = size
			d, _ := NewPhiAccrual(cfg)
			at := t0
			for i := range size {
				d.Heartbeat(at)
				at = at.Add(time.Second + time.Duration(i%7)*time.Millisecond)
			}
			now := at.Add(1500 * time.Millisecond)
			b.ReportAllocs()
			var sink float64
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				sink += d.Phi(now.Add(time.Duration(i&1023) * time.Millisecond))
			}
			if sink < 0 {
				b.Fatal("negative phi")
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "phi/s")
		})
	}
}

// BenchmarkHeartbeat measures recording one arrival: into a full phi window
// (evicting the oldest sample) and into a fixed-timeout detector.
func BenchmarkHeartbeat(b *testing.B) {
	for _, size := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("phi/window=%d", size), func(b *testing.B) {
			cfg := DefaultPhiConfig()
			cfg.WindowSize = size
			d, _ := NewPhiAccrual(cfg)
			at := t0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				at = at.Add(time.Second + time.Duration(i&63)*time.Millisecond)
				d.Heartbeat(at)
			}
		})
	}
	b.Run("fixed-timeout", func(b *testing.B) {
		d, _ := NewFixedTimeout(DefaultTimeoutConfig())
		at := t0
		b.ReportAllocs()
		for b.Loop() {
			at = at.Add(time.Second)
			d.Heartbeat(at)
		}
	})
}
