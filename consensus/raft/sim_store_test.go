package raft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// simStore persists a node's Raft state on a sim.Disk the way a real
// durable storage would, so that the simulation's crashes lose exactly what
// was not synced:
//
//   - raft.log: records appended per Ready, each a batch of entries that
//     overwrites the log from its first index on; a CRC32C per record
//     detects the torn tail a crash can leave, which is cut on load;
//   - raft.snap: the latest snapshot, replaced whole;
//   - raft.hs: the hard state, replaced whole.
//
// The in-memory view is a MemoryStorage rebuilt on load.
type simStore struct {
	disk *sim.Disk
	mem  *MemoryStorage
}

const (
	logFile  = "raft.log"
	snapFile = "raft.snap"
	hsFile   = "raft.hs"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame wraps payload as [len uvarint][crc32c][payload].
func frame(payload []byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(payload)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, castagnoli))
	return append(b, payload...)
}

// unframe reads one record; ok is false at a torn or corrupt tail.
func unframe(b []byte) (payload, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < 4+n {
		return nil, nil, false
	}
	sum := binary.LittleEndian.Uint32(b[k:])
	payload = b[k+4 : k+4+int(n)]
	if crc32.Checksum(payload, castagnoli) != sum {
		return nil, nil, false
	}
	return payload, b[k+4+int(n):], true
}

func readOptional(d *sim.Disk, name string) ([]byte, error) {
	b, err := d.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// openSimStore loads what survived on the disk.
func openSimStore(d *sim.Disk) (*simStore, error) {
	s := &simStore{disk: d, mem: NewMemoryStorage()}
	if b, err := readOptional(d, snapFile); err != nil {
		return nil, err
	} else if len(b) > 0 {
		payload, _, ok := unframe(b)
		var m Message
		if !ok || m.Unmarshal(payload) != nil || m.Snapshot == nil {
			return nil, fmt.Errorf("corrupt snapshot file")
		}
		if err := s.mem.ApplySnapshot(Snapshot{Meta: *m.Snapshot, Data: m.Data}); err != nil {
			return nil, err
		}
	}
	b, err := readOptional(d, logFile)
	if err != nil {
		return nil, err
	}
	good := 0
	for rest := b; len(rest) > 0; {
		payload, next, ok := unframe(rest)
		if !ok {
			break // torn tail: cut below
		}
		var m Message
		if err := m.Unmarshal(payload); err != nil {
			return nil, fmt.Errorf("corrupt log record: %w", err)
		}
		if err := s.mem.Append(m.Entries); err != nil {
			return nil, err
		}
		good += len(rest) - len(next)
		rest = next
	}
	if good < len(b) {
		if err := d.Truncate(logFile, int64(good)); err != nil {
			return nil, err
		}
		if err := d.Sync(logFile); err != nil {
			return nil, err
		}
	}
	if b, err := readOptional(d, hsFile); err != nil {
		return nil, err
	} else if len(b) > 0 {
		payload, _, ok := unframe(b)
		var m Message
		if !ok || m.Unmarshal(payload) != nil {
			return nil, fmt.Errorf("corrupt hard state file")
		}
		_ = s.mem.SetHardState(HardState{Term: m.Term, Vote: transport.NodeID(m.Context), Commit: m.Commit})
	}
	return s, nil
}

// sync makes every write durable (duty 4).
func (s *simStore) sync() error {
	for _, f := range []string{snapFile, logFile, hsFile} {
		if err := s.disk.Sync(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// write performs duties 1-3 of a Ready without syncing.
func (s *simStore) write(rd *Ready) error {
	d := s.disk
	if rd.Snapshot != nil {
		if err := s.writeSnapshot(*rd.Snapshot); err != nil {
			return err
		}
		if err := s.mem.ApplySnapshot(*rd.Snapshot); err != nil {
			return err
		}
		// The log before the snapshot is gone.
		if err := d.WriteFile(logFile, nil); err != nil {
			return err
		}
	}
	if len(rd.Entries) > 0 {
		m := Message{Type: MsgApp, Entries: rd.Entries}
		payload, err := m.Marshal()
		if err != nil {
			return err
		}
		if err := d.Append(logFile, frame(payload)); err != nil {
			return err
		}
		if err := s.mem.Append(rd.Entries); err != nil {
			return err
		}
	}
	if !rd.HardState.IsZero() {
		hs := rd.HardState
		m := Message{Type: MsgHeartbeat, Term: hs.Term, Commit: hs.Commit, Context: []byte(hs.Vote)}
		payload, _ := m.Marshal()
		if err := d.WriteFile(hsFile, frame(payload)); err != nil {
			return err
		}
		_ = s.mem.SetHardState(hs)
	}
	return nil
}

func (s *simStore) writeSnapshot(snap Snapshot) error {
	m := Message{Type: MsgSnap, Snapshot: &snap.Meta, Data: snap.Data}
	payload, err := m.Marshal()
	if err != nil {
		return err
	}
	return s.disk.WriteFile(snapFile, frame(payload))
}

// compact takes a local snapshot at index applied and drops the log before
// it, keeping `keep` entries for followers slightly behind.
func (s *simStore) compact(applied uint64, membership Membership, data []byte, keep uint64) error {
	snap, err := s.mem.CreateSnapshot(applied, membership, data)
	if err != nil {
		return err
	}
	if err := s.writeSnapshot(snap); err != nil {
		return err
	}
	if err := s.disk.Sync(snapFile); err != nil {
		return err
	}
	if applied <= keep {
		return nil
	}
	if err := s.mem.Compact(applied - keep); err != nil && !errors.Is(err, ErrCompacted) {
		return err
	}
	// Rewrite the log with what remains (durable only once synced; a crash
	// before that leaves the longer old log, which is harmless).
	first, _ := s.mem.FirstIndex()
	last, _ := s.mem.LastIndex()
	var rec []byte
	if last >= first {
		ents, err := s.mem.Entries(first, last+1, 1<<62)
		if err != nil {
			return err
		}
		m := Message{Type: MsgApp, Entries: ents}
		payload, err := m.Marshal()
		if err != nil {
			return err
		}
		rec = frame(payload)
	}
	if err := s.disk.WriteFile(logFile, rec); err != nil {
		return err
	}
	return s.disk.Sync(logFile)
}
