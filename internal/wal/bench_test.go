package wal_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distkit/distkit/internal/wal"
)

// BenchmarkAppendSync measures durable appends of 128-byte records with 1 and
// 64 concurrent appenders; with 64, group commit lets one fsync cover many
// records.
func BenchmarkAppendSync(b *testing.B) {
	for _, appenders := range []int{1, 64} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			l, err := wal.Open(b.TempDir(), wal.DefaultOptions())
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			rec := make([]byte, 128)
			b.ReportAllocs()
			b.SetBytes(int64(len(rec)))
			var wg sync.WaitGroup
			per := b.N / appenders
			start := time.Now()
			b.ResetTimer()
			for a := range appenders {
				n := per
				if a == 0 {
					n += b.N % appenders
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						if _, err := l.Append(rec); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
		})
	}
}

// BenchmarkAppendBatch measures one Append carrying a whole batch, as a Raft
// step does: one fsync per call.
func BenchmarkAppendBatch(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("records=%d", batch), func(b *testing.B) {
			l, err := wal.Open(b.TempDir(), wal.DefaultOptions())
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			recs := make([][]byte, batch)
			for i := range recs {
				recs[i] = make([]byte, 128)
			}
			b.ReportAllocs()
			b.SetBytes(int64(128 * batch))
			start := time.Now()
			for b.Loop() {
				if _, err := l.Append(recs...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "records/s")
		})
	}
}

// BenchmarkFrame measures encoding and decoding one frame (CRC32C of the
// payload dominates) over payload sizes.
func BenchmarkFrame(b *testing.B) {
	for _, size := range []int{64, 1 << 10, 64 << 10} {
		payload := make([]byte, size)
		b.Run(fmt.Sprintf("op=append/bytes=%d", size), func(b *testing.B) {
			buf := make([]byte, 0, wal.FrameSize(size))
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				buf = wal.AppendFrame(buf[:0], payload)
			}
		})
		b.Run(fmt.Sprintf("op=decode/bytes=%d", size), func(b *testing.B) {
			frame := wal.AppendFrame(nil, payload)
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, _, err := wal.DecodeFrame(frame); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
