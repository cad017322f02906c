package detector

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/distkit/distkit/transport"
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

// BenchmarkMembershipReceive measures handling one heartbeat in a
// Membership of n members, decoding included.
func BenchmarkMembershipReceive(b *testing.B) {
	for _, n := range []int{8, 64, 512} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			m, _ := NewMembership("self", DefaultConfig(), 1, t0)
			ids := make([]transport.NodeID, n)
			for i := range ids {
				ids[i] = transport.NodeID(fmt.Sprintf("n%d", i))
				_ = m.AddMember(ids[i], t0)
			}
			p := (&message{kind: kindHeartbeat, incarnation: 1}).encode()
			at := t0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				at = at.Add(time.Millisecond)
				// The sequence number must grow for the heartbeat to count
				// as fresh; patch it in place (bytes 10-17 of the header).
				binary.BigEndian.PutUint64(p[10:], uint64(i+1))
				_ = m.Receive(at, ids[i%n], p)
			}
		})
	}
}

// BenchmarkMembershipTick measures one check of every member (no
// heartbeat due), the work done every CheckInterval.
func BenchmarkMembershipTick(b *testing.B) {
	for _, n := range []int{8, 64, 512} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			m, _ := NewMembership("self", DefaultConfig(), 1, t0)
			for i := range n {
				_ = m.AddMember(transport.NodeID(fmt.Sprintf("n%d", i)), t0)
			}
			now := t0.Add(100 * time.Millisecond)
			b.ReportAllocs()
			for b.Loop() {
				m.nextCheck, m.nextHeartbeat = now, now.Add(time.Hour)
				m.Tick(now)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/member")
		})
	}
}
