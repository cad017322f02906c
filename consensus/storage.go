package consensus

import (
	"io"

	"github.com/distkit/distkit/consensus/raft"
)

// nodeStorage is what the Node's loop needs of its storage beyond what the
// core reads: the writes of a Ready. DiskStorage and memStorage implement
// it.
type nodeStorage interface {
	raft.Storage
	// Save persists a Ready's hard state and entries (one fsync at most).
	Save(hs raft.HardState, ents []raft.Entry) error
	// ApplySnapshot installs a snapshot received from the leader.
	ApplySnapshot(snap raft.Snapshot) error
	// CreateSnapshot records a local snapshot and compacts the log.
	CreateSnapshot(i uint64, m raft.Membership, data []byte) (raft.Snapshot, error)
	Close() error
}

// snapshotStreamer is an optional interface of a nodeStorage that takes a
// state machine snapshot as a stream, off the Node's goroutine: the Node's
// snapshot goroutine calls StageSnapshot, which writes the snapshot file
// (under a temporary name, fsynced) from write and may run concurrently
// with the loop's Save; the loop then calls commit, which makes the staged
// file the current snapshot and compacts the log. A staged snapshot never
// committed (the node stopped) is a temporary file, removed on the next
// open. Storages without it get the snapshot's bytes through
// CreateSnapshot, on the Node's goroutine.
type snapshotStreamer interface {
	StageSnapshot(i uint64, m raft.Membership, write func(io.Writer) error) (commit func() error, err error)
}

var (
	_ nodeStorage = (*DiskStorage)(nil)
	_ nodeStorage = (*memStorage)(nil)
)

// memStorage is the volatile storage of a Node without a DataDir.
type memStorage struct {
	*raft.MemoryStorage
	retain uint64 // entries kept behind a snapshot
	// stream receives the snapshots a leader with a DataDir streams (set
	// by the Node before its goroutines start); Close stops it.
	stream *snapStreamer
}

func (m *memStorage) Save(hs raft.HardState, ents []raft.Entry) error {
	if !hs.IsZero() {
		if err := m.SetHardState(hs); err != nil {
			return err
		}
	}
	return m.Append(ents)
}

func (m *memStorage) CreateSnapshot(i uint64, ms raft.Membership, data []byte) (raft.Snapshot, error) {
	snap, err := m.MemoryStorage.CreateSnapshot(i, ms, data)
	if err != nil {
		return snap, err
	}
	if i > m.retain {
		if first, _ := m.FirstIndex(); i-m.retain >= first {
			if err := m.Compact(i - m.retain); err != nil {
				return raft.Snapshot{}, err
			}
		}
	}
	return snap, nil
}

func (m *memStorage) Close() error {
	if m.stream != nil {
		m.stream.close()
	}
	return nil
}
