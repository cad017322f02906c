package txn_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/distkit/distkit/internal/wal"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
	"github.com/google/uuid"
)

// TestFileLogCheckpointSurvivesReopen: a checkpoint replaces the records
// before it, records appended after it follow it, and both survive a
// reopen.
func TestFileLogCheckpointSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	l, err := txn.OpenFileLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	early := txn.Record{Type: txn.RecCommit, Txn: someID, Participants: []transport.NodeID{"a"}}
	kept := txn.Record{Type: txn.RecPrepared, Txn: someID, Coordinator: "c", Data: []byte("intent")}
	late := txn.Record{Type: txn.RecDone, Txn: someID, Outcome: txn.Committed}
	if err := l.Append([]txn.Record{early, early}); err != nil {
		t.Fatal(err)
	}
	if err := l.Replace([]txn.Record{kept}); err != nil {
		t.Fatal(err)
	}
	if err := l.Append([]txn.Record{late}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err = txn.OpenFileLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, err := l.Load()
	if want := []txn.Record{kept, late}; err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Load() = %v, %v; want %v, nil", got, err, want)
	}
}

// TestFileLogDamagedCheckpoint: a checkpoint is replaced atomically, so any
// damage to it (header included) is reported, never read as fewer records.
func TestFileLogDamagedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	l, err := txn.OpenFileLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs := []txn.Record{
		{Type: txn.RecCommit, Txn: someID, Participants: []transport.NodeID{"a", "b"}},
		{Type: txn.RecDone, Txn: someID, Outcome: txn.Committed},
	}
	if err := l.Replace(recs); err != nil {
		t.Fatal(err)
	}
	l.Close()
	path := filepath.Join(dir, "checkpoint")
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 1; return b }
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"flipped header bit", flip(10)},
		{"flipped record bit", flip(len(good) - 1)},
		{"cut short", good[:len(good)-1]},
		{"trailing garbage", append(bytes.Clone(good), 1, 2, 3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.data, 0o644); err != nil {
				t.Fatal(err)
			}
			l, err := txn.OpenFileLog(dir)
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, txn.ErrMalformed) {
				t.Fatalf("OpenFileLog(checkpoint %s) = %v; want ErrMalformed", tt.name, err)
			}
		})
	}
}

// TestFileLogLocksDir: a second FileLog on the same directory, even in the
// same process, fails with ErrLogLocked naming the holder's pid until the
// first one is closed.
func TestFileLogLocksDir(t *testing.T) {
	dir := t.TempDir()
	l, err := txn.OpenFileLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = txn.OpenFileLog(dir)
	if !errors.Is(err, txn.ErrLogLocked) || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("second OpenFileLog = %v; want ErrLogLocked naming pid %d", err, os.Getpid())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = txn.OpenFileLog(dir)
	if err != nil {
		t.Fatalf("OpenFileLog after Close = %v", err)
	}
	l.Close()
}

// TestFileLogRefusesCorruption: a record of the log damaged with valid
// records after it fails OpenFileLog with ErrMalformed and wal's
// ErrCorrupt; a torn last record is cut off.
func TestFileLogRefusesCorruption(t *testing.T) {
	for _, tt := range []struct {
		name    string
		at      func(size int) int // the damaged byte, given the segment size
		wantErr bool
		keep    int
	}{
		{"flip in the middle", func(size int) int { return size / 3 }, true, 0},
		{"flip in the last record", func(size int) int { return size - 2 }, false, 9},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := txn.OpenFileLog(dir)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 10 {
				if err := l.Append([]txn.Record{{Type: txn.RecBegin, Txn: uuid.New(), Participants: []transport.NodeID{"p", transport.NodeID(strconv.Itoa(i))}}}); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			seg := filepath.Join(dir, "wal", "00000000000000000001.wal")
			b, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			b[tt.at(len(b))] ^= 0x08
			if err := os.WriteFile(seg, b, 0o644); err != nil {
				t.Fatal(err)
			}
			l, err = txn.OpenFileLog(dir)
			if tt.wantErr {
				if err == nil {
					l.Close()
				}
				if !errors.Is(err, txn.ErrMalformed) || !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), seg) {
					t.Fatalf("OpenFileLog = %v; want ErrMalformed and wal.ErrCorrupt naming %s", err, seg)
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenFileLog = %v; want the torn tail cut off", err)
			}
			defer l.Close()
			recs, err := l.Load()
			if err != nil || len(recs) != tt.keep {
				t.Fatalf("Load = %d records, %v; want %d", len(recs), err, tt.keep)
			}
		})
	}
}
