package raft

import (
	"fmt"
	"testing"
)

// benchCluster is a 3-node cluster wired in-process with MemoryStorage:
// the cost of the core alone, without transport or fsync.
type benchCluster struct {
	c     *testCluster
	lead  *RawNode
	wire  bool
	buf   []byte
	inbox []Message
}

func newBenchCluster(b *testing.B, nodes int, wire bool) *benchCluster {
	c := newTestCluster(b, nodes, func(cfg *Config) {
		cfg.SnapshotThreshold = 0
	})
	lead := c.elect()
	return &benchCluster{c: c, lead: c.nodes[lead], wire: wire}
}

// drain runs every node's Ready loop until the cluster is quiet, optionally
// encoding and decoding every message as a network would.
func (bc *benchCluster) drain(b *testing.B) {
	c := bc.c
	for {
		busy := false
		for _, id := range c.ids {
			rn := c.nodes[id]
			if !rn.HasReady() {
				continue
			}
			busy = true
			rd, err := rn.Ready()
			if err != nil {
				b.Fatal(err)
			}
			s := c.stores[id]
			if err := s.Append(rd.Entries); err != nil {
				b.Fatal(err)
			}
			if !rd.HardState.IsZero() {
				_ = s.SetHardState(rd.HardState)
			}
			bc.inbox = append(bc.inbox, rd.Messages...)
			rn.Advance(rd)
		}
		for i := range bc.inbox {
			m := bc.inbox[i]
			if bc.wire {
				var err error
				bc.buf, err = m.MarshalAppend(bc.buf[:0])
				if err != nil {
					b.Fatal(err)
				}
				m = Message{}
				if err := m.Unmarshal(bc.buf); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.nodes[m.To].Step(m); err != nil {
				b.Fatal(err)
			}
			bc.inbox[i] = Message{}
		}
		if len(bc.inbox) > 0 {
			busy = true
		}
		bc.inbox = bc.inbox[:0]
		if !busy {
			return
		}
	}
}

// BenchmarkCorePropose measures proposals committed per second through a
// cluster of cores in one goroutine (3 or 5 nodes): batch proposals per
// Ready cycle, 128-byte commands. "wire" also encodes and decodes every
// message. The single goroutine does the work of every node, so the figure
// is a lower bound for a runtime that runs nodes in parallel.
func BenchmarkCorePropose(b *testing.B) {
	data := make([]byte, 128)
	for _, nodes := range []int{3, 5} {
		for _, wire := range []bool{false, true} {
			for _, batch := range []int{1, 16, 256} {
				if nodes == 5 && batch == 16 {
					continue // keep the matrix quick
				}
				benchmarkCorePropose(b, nodes, wire, batch, data)
			}
		}
	}
}

func benchmarkCorePropose(b *testing.B, nodes int, wire bool, batch int, data []byte) {
	b.Run(fmt.Sprintf("nodes=%d/wire=%v/batch=%d", nodes, wire, batch), func(b *testing.B) {
		bc := newBenchCluster(b, nodes, wire)
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		for i := 0; i < b.N; i += batch {
			for range min(batch, b.N-i) {
				if _, _, err := bc.lead.Propose(data); err != nil {
					b.Fatal(err)
				}
			}
			bc.drain(b)
		}
		b.StopTimer()
		st := bc.lead.Status()
		if st.Commit < uint64(b.N) {
			b.Fatalf("commit = %d; want at least %d", st.Commit, b.N)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proposals/s")
	})
}

// BenchmarkMessageCodec measures encoding and decoding a MsgApp.
func BenchmarkMessageCodec(b *testing.B) {
	for _, n := range []int{1, 64} {
		ents := make([]Entry, n)
		for i := range ents {
			ents[i] = Entry{Term: 3, Index: uint64(100 + i), Data: make([]byte, 128)}
		}
		m := Message{Type: MsgApp, From: "n1", To: "n2", Term: 3, Index: 99, LogTerm: 3, Commit: 90, Entries: ents}
		b.Run(fmt.Sprintf("entries=%d/marshal", n), func(b *testing.B) {
			buf := make([]byte, 0, m.Size())
			b.ReportAllocs()
			b.SetBytes(int64(m.Size()))
			for b.Loop() {
				buf, _ = m.MarshalAppend(buf[:0])
			}
		})
		b.Run(fmt.Sprintf("entries=%d/unmarshal", n), func(b *testing.B) {
			buf, _ := m.Marshal()
			var out Message
			b.ReportAllocs()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if err := out.Unmarshal(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMemoryStorageAppend measures the log of a node without a
// DataDir in its steady state: batches of 50 entries of 128 bytes
// appended, and every 10000 entries a snapshot compacting all but the
// last 1000 (the defaults of consensus.Config). ns/op is per entry.
func BenchmarkMemoryStorageAppend(b *testing.B) {
	const batch, threshold, retain = 50, 10000, 1000
	s := NewMemoryStorage()
	data := make([]byte, 128)
	ents := make([]Entry, batch)
	next, lastSnap := uint64(1), uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		if (next-1)%batch == 0 {
			for i := range ents {
				ents[i] = Entry{Term: 1, Index: next + uint64(i), Data: data}
			}
			if err := s.Append(ents); err != nil {
				b.Fatal(err)
			}
			if last := next + batch - 1; last-lastSnap >= threshold {
				if _, err := s.CreateSnapshot(last, Membership{}, nil); err != nil {
					b.Fatal(err)
				}
				if err := s.Compact(last - retain); err != nil {
					b.Fatal(err)
				}
				lastSnap = last
			}
		}
		next++
	}
}
