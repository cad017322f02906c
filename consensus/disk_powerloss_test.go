package consensus

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
)

// diskSeeds is how many seeds a DiskStorage power-loss test runs: n, or
// 20n with DISTKIT_SOAK=1.
func diskSeeds(n uint64) uint64 {
	if os.Getenv("DISTKIT_SOAK") != "" {
		return 20 * n
	}
	return n
}

// TestDiskStoragePowerLoss drives a DiskStorage on a CrashFS as a Raft
// node would (new terms and votes, appends, §5.3 overwrites of an
// uncommitted suffix, snapshots), ends with a Save whose fsync fails, cuts
// the power and reopens. What every acknowledged Save promised must hold:
// the term and vote (§5.2: a vote is durable before it is sent), every
// acknowledged entry not covered by a snapshot, the latest snapshot; and
// the open must not refuse what a crash left.
func TestDiskStoragePowerLoss(t *testing.T) {
	for seed := uint64(1); seed <= diskSeeds(100); seed++ {
		if !diskPowerLossTrial(t, seed) {
			t.Fatalf("failed with seed %d (replay: the same seed gives the same run)", seed)
		}
	}
}

func diskPowerLossTrial(t *testing.T, seed uint64) bool {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	fsys := vfs.NewCrashFS(seed)
	dir := "/var/lib/node"
	opts := DiskOptions{SegmentSize: int64(512 + rng.IntN(4096)), RetainEntries: uint64(rng.IntN(5)), FS: fsys}
	s, err := OpenDiskStorage(dir, opts)
	if err != nil {
		t.Errorf("seed %d: OpenDiskStorage = %v", seed, err)
		return false
	}
	// The model: what acknowledged calls made durable.
	var hs raft.HardState
	log := map[uint64]raft.Entry{}
	var last, snapIndex uint64
	peers := []transport.NodeID{"a", "b", "c"}
	n := 0
	entry := func(i uint64) raft.Entry {
		n++
		return raft.Entry{Index: i, Term: hs.Term, Data: []byte(fmt.Sprintf("s%d-n%d-%s", seed, n, bytes.Repeat([]byte{'d'}, rng.IntN(300))))}
	}
	for range rng.IntN(60) {
		switch op := rng.IntN(10); {
		case op < 2 || hs.Term == 0: // a new term, perhaps with a vote
			hs.Term++
			hs.Vote = ""
			if rng.IntN(2) == 0 {
				hs.Vote = peers[rng.IntN(len(peers))]
			}
			if err := s.Save(hs, nil); err != nil {
				t.Errorf("seed %d: Save(%+v) = %v", seed, hs, err)
				return false
			}
		case op < 8: // append, or overwrite an uncommitted suffix (§5.3)
			from := last + 1
			if rng.IntN(4) == 0 && last > max(hs.Commit, snapIndex) {
				from = max(hs.Commit, snapIndex) + 1 + uint64(rng.IntN(int(last-max(hs.Commit, snapIndex))))
			}
			var ents []raft.Entry
			for i := from; i < from+1+uint64(rng.IntN(6)); i++ {
				ents = append(ents, entry(i))
			}
			if err := s.Save(hs, ents); err != nil {
				t.Errorf("seed %d: Save(%d entries from %d) = %v", seed, len(ents), from, err)
				return false
			}
			for i := from; i <= last; i++ {
				delete(log, i)
			}
			for _, e := range ents {
				log[e.Index] = e
			}
			last = ents[len(ents)-1].Index
			if rng.IntN(2) == 0 {
				hs.Commit = last - uint64(rng.IntN(int(last-hs.Commit)+1))
				if err := s.Save(hs, nil); err != nil {
					t.Errorf("seed %d: Save(commit %d) = %v", seed, hs.Commit, err)
					return false
				}
			}
		case op < 9 && rng.IntN(3) == 0: // install a leader's snapshot past the log
			idx := last + 1 + uint64(rng.IntN(5))
			snap := raft.Snapshot{Meta: raft.SnapshotMeta{Index: idx, Term: hs.Term, Membership: raft.Membership{Voters: peers}},
				Data: []byte(fmt.Sprint("leader-state@", idx))}
			if err := s.ApplySnapshot(snap); err != nil {
				t.Errorf("seed %d: ApplySnapshot(%d) = %v", seed, idx, err)
				return false
			}
			clear(log)
			last, snapIndex = idx, idx
			hs.Commit = idx
			if err := s.Save(hs, nil); err != nil {
				t.Errorf("seed %d: Save(commit %d) = %v", seed, hs.Commit, err)
				return false
			}
		default: // snapshot the applied state up to the commit index
			if hs.Commit <= snapIndex {
				continue
			}
			if _, err := s.CreateSnapshot(hs.Commit, raft.Membership{Voters: peers}, []byte(fmt.Sprint("state@", hs.Commit))); err != nil {
				t.Errorf("seed %d: CreateSnapshot(%d) = %v", seed, hs.Commit, err)
				return false
			}
			snapIndex = hs.Commit
		}
	}
	// The last Save fails in its fsync: not acknowledged.
	fsys.InjectSyncError(1 + rng.IntN(2))
	doomed := raft.HardState{Term: hs.Term + 1, Vote: "b"}
	if err := s.Save(doomed, []raft.Entry{{Index: last + 1, Term: hs.Term + 1, Data: []byte("doomed")}}); err == nil {
		// The failure hit an fsync after the ones Save makes: fine.
		fsys.InjectSyncError(0)
	}
	after := fsys.Crash()
	s.Close()

	opts.FS = after
	s2, err := OpenDiskStorage(dir, opts)
	if err != nil {
		t.Errorf("seed %d: OpenDiskStorage after the crash = %v", seed, err)
		return false
	}
	defer s2.Close()
	got, _, _ := s2.InitialState()
	if got.Term < hs.Term || got.Term == hs.Term && got.Vote != hs.Vote {
		t.Errorf("seed %d: hard state after the crash = %+v; acknowledged %+v (term and vote must survive)", seed, got, hs)
		return false
	}
	snap, _ := s2.Snapshot()
	if snap.Meta.Index < snapIndex {
		t.Errorf("seed %d: snapshot at %d after the crash; acknowledged one at %d", seed, snap.Meta.Index, snapIndex)
		return false
	}
	lastGot, _ := s2.LastIndex()
	if lastGot < last {
		t.Errorf("seed %d: LastIndex = %d after the crash; acknowledged entries up to %d", seed, lastGot, last)
		return false
	}
	for i := snap.Meta.Index + 1; i <= last; i++ {
		e, err := s2.Entries(i, i+1, 1<<30)
		if err != nil || len(e) != 1 || e[0].Term != log[i].Term || !bytes.Equal(e[0].Data, log[i].Data) {
			t.Errorf("seed %d: entry %d = %+v, %v; want %+v", seed, i, e, err, log[i])
			return false
		}
	}
	return true
}
