package txn_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
	"github.com/google/uuid"
)

// TestFileLogPowerLoss runs a FileLog on a CrashFS through appends and
// checkpoints (Replace), ends with an Append whose fsync fails, cuts the
// power and reopens it: Load must return every acknowledged record in
// order (the last checkpoint's, then those appended since), followed by
// nothing but records of the failed Append; the open must not refuse what
// a crash left.
func TestFileLogPowerLoss(t *testing.T) {
	n := uint64(60)
	if os.Getenv("DISTKIT_SOAK") != "" {
		n *= 20
	}
	for seed := uint64(1); seed <= n; seed++ {
		if !fileLogPowerLossTrial(t, seed) {
			t.Fatalf("failed with seed %d (replay: the same seed gives the same run)", seed)
		}
	}
}

func fileLogPowerLossTrial(t *testing.T, seed uint64) bool {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	fsys := vfs.NewCrashFS(seed)
	dir := "/srv/txn/p1"
	l, err := txn.OpenFileLogWith(dir, txn.FileLogOptions{FS: fsys})
	if err != nil {
		t.Errorf("seed %d: OpenFileLogWith = %v", seed, err)
		return false
	}
	var model [][]byte // encoded acknowledged records, in Load order
	rec := func() txn.Record {
		return txn.Record{Type: txn.RecBegin, Txn: uuid.New(),
			Participants: []transport.NodeID{"p1", transport.NodeID(fmt.Sprint("x", rng.IntN(1000)))},
		}
	}
	enc := func(r txn.Record) []byte {
		b, err := r.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for range rng.IntN(60) {
		if rng.IntN(8) == 0 {
			// A checkpoint keeps a random subset of what is there.
			var keep []txn.Record
			var keepEnc [][]byte
			for _, b := range model {
				if rng.IntN(2) == 0 {
					r, _ := txn.UnmarshalRecord(b)
					keep = append(keep, r)
					keepEnc = append(keepEnc, b)
				}
			}
			if err := l.Replace(keep); err != nil {
				t.Errorf("seed %d: Replace = %v", seed, err)
				return false
			}
			model = keepEnc
			continue
		}
		recs := make([]txn.Record, 1+rng.IntN(4))
		for i := range recs {
			recs[i] = rec()
		}
		if err := l.Append(recs); err != nil {
			t.Errorf("seed %d: Append = %v", seed, err)
			return false
		}
		for _, r := range recs {
			model = append(model, enc(r))
		}
	}
	fsys.InjectSyncError(1)
	doomed := []txn.Record{rec(), rec()}
	if err := l.Append(doomed); err == nil {
		t.Errorf("seed %d: Append with a failing fsync succeeded", seed)
		return false
	}
	after := fsys.Crash()
	l.Close()
	l2, err := txn.OpenFileLogWith(dir, txn.FileLogOptions{FS: after})
	if err != nil {
		t.Errorf("seed %d: OpenFileLogWith after the crash = %v", seed, err)
		return false
	}
	defer l2.Close()
	got, err := l2.Load()
	if err != nil {
		t.Errorf("seed %d: Load after the crash = %v", seed, err)
		return false
	}
	if len(got) < len(model) || len(got) > len(model)+len(doomed) {
		t.Errorf("seed %d: Load = %d records; want %d acknowledged (+ up to %d unacknowledged)", seed, len(got), len(model), len(doomed))
		return false
	}
	for i, r := range got {
		want := model
		j := i
		if i >= len(model) {
			want, j = [][]byte{enc(doomed[0]), enc(doomed[1])}, i-len(model)
		}
		if !bytes.Equal(enc(r), want[j]) {
			t.Errorf("seed %d: record %d after the crash differs from the one acknowledged there", seed, i)
			return false
		}
	}
	return true
}
