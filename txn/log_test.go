package txn_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/txn"
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
