package consensus

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/distkit/distkit/internal/vfs"
	"github.com/distkit/distkit/internal/wal"
	"github.com/distkit/distkit/transport"
)

// ClusterID identifies one Raft cluster. Every message a Node sends carries
// it, and a Node drops messages carrying another.
//
// It is derived, not random: a hash of the cluster's sorted initial peer
// list and Config.ClusterName (as etcd derives its cluster ID from the
// initial members and the cluster token), so that members started
// independently with the same configuration agree on it without talking,
// and a member started with another peer list ends up in another cluster
// instead of splitting this one.
type ClusterID uint64

// String returns the ID in hex, as logs and errors print it.
func (id ClusterID) String() string { return fmt.Sprintf("%016x", uint64(id)) }

// deriveClusterID hashes the sorted peer list and the cluster name.
func deriveClusterID(name string, peers []transport.NodeID) ClusterID {
	h := sha256.New()
	io.WriteString(h, "distkit raft cluster v1\x00")
	writeLenPrefixed(h, name)
	for _, p := range sortedPeers(peers) {
		writeLenPrefixed(h, string(p))
	}
	return ClusterID(binary.BigEndian.Uint64(h.Sum(nil)))
}

// writeLenPrefixed writes s with its length, so that no two different
// lists hash the same bytes.
func writeLenPrefixed(w io.Writer, s string) {
	var n [binary.MaxVarintLen64]byte
	w.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
	io.WriteString(w, s)
}

func sortedPeers(peers []transport.NodeID) []transport.NodeID {
	out := slices.Clone(peers)
	slices.Sort(out)
	return out
}

// identityFile is the name of the cluster identity file in a DataDir.
const identityFile = "cluster"

// identity is what the identity file records: the bootstrap configuration
// of the cluster this data directory belongs to.
type identity struct {
	id    ClusterID
	name  string
	peers []transport.NodeID // sorted
}

// The identity file, replaced atomically (in practice written once, at
// bootstrap):
//
//	magic "DKCI" (4 bytes) | CRC32C of the rest (4 bytes) |
//	version 1 (1 byte) | cluster ID (8 bytes, big endian) |
//	uvarint len(name) | name | uvarint n | n times (uvarint len | peer)
var identityMagic = [4]byte{'D', 'K', 'C', 'I'}

const identityVersion = 1

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// maxIdentityBytes bounds the identity file the decoder accepts.
const maxIdentityBytes = 1 << 20

func encodeIdentity(idn identity) []byte {
	body := []byte{identityVersion}
	body = binary.BigEndian.AppendUint64(body, uint64(idn.id))
	body = binary.AppendUvarint(body, uint64(len(idn.name)))
	body = append(body, idn.name...)
	body = binary.AppendUvarint(body, uint64(len(idn.peers)))
	for _, p := range idn.peers {
		body = binary.AppendUvarint(body, uint64(len(p)))
		body = append(body, p...)
	}
	out := make([]byte, 8, 8+len(body))
	copy(out, identityMagic[:])
	binary.LittleEndian.PutUint32(out[4:], crc32.Checksum(body, crcTable))
	return append(out, body...)
}

// errBadIdentity is wrapped by every decoding error of the identity file.
var errBadIdentity = errors.New("corrupt cluster identity file")

func decodeIdentity(b []byte) (identity, error) {
	fail := func(what string) (identity, error) {
		return identity{}, fmt.Errorf("%w: %s", errBadIdentity, what)
	}
	if len(b) < 8 || [4]byte(b[:4]) != identityMagic {
		return fail("bad magic")
	}
	body := b[8:]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[4:8]) {
		return fail("checksum mismatch")
	}
	if len(body) < 9 || body[0] != identityVersion {
		return fail("unknown version or short header")
	}
	idn := identity{id: ClusterID(binary.BigEndian.Uint64(body[1:9]))}
	rest := body[9:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return "", false
		}
		s := string(rest[k : k+int(n)])
		rest = rest[k+int(n):]
		return s, true
	}
	var ok bool
	if idn.name, ok = str(); !ok {
		return fail("bad cluster name")
	}
	count, k := binary.Uvarint(rest)
	if k <= 0 || count > uint64(len(rest)) { // each peer takes at least one byte
		return fail("bad peer count")
	}
	rest = rest[k:]
	for range count {
		p, ok := str()
		if !ok || p == "" {
			return fail("bad peer")
		}
		idn.peers = append(idn.peers, transport.NodeID(p))
	}
	if len(rest) != 0 {
		return fail("trailing bytes")
	}
	if len(idn.peers) == 0 || !slices.IsSorted(idn.peers) || deriveClusterID(idn.name, idn.peers) != idn.id {
		return fail("cluster ID does not match its peer list")
	}
	return idn, nil
}

// loadIdentity enforces the bootstrap rule on dir: a fresh directory
// records the identity derived from cfg; one that already has an identity
// must have been bootstrapped with the same peers and cluster name; one
// that holds Raft state but no identity is refused (its cluster is
// unknown). It returns the cluster ID.
func loadIdentity(fsys vfs.FS, dir string, cfg *Config) (ClusterID, error) {
	want := identity{name: cfg.ClusterName, peers: sortedPeers(cfg.Peers)}
	want.id = deriveClusterID(want.name, want.peers)
	path := filepath.Join(dir, identityFile)
	b, err := vfs.ReadFile(fsys, path)
	switch {
	case err == nil:
		got, err := decodeIdentity(b)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: %w", ErrNoClusterIdentity, path, err)
		}
		if got.id != want.id {
			return 0, fmt.Errorf("%w: %s was bootstrapped as cluster %s with peers %v and cluster name %q, "+
				"but the config gives peers %v and cluster name %q (cluster %s); start with the original peers, "+
				"or wipe the directory to join as a new member", ErrClusterMismatch, dir,
				got.id, got.peers, got.name, want.peers, want.name, want.id)
		}
		return got.id, nil
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("consensus: read cluster identity: %w", err)
	}
	// No identity: only a directory without Raft state may be bootstrapped.
	// (The identity is written before the storage creates anything, so a
	// crash during a first start cannot leave state without it.)
	entries, err := fsys.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("consensus: read data directory: %w", err)
	}
	for _, e := range entries {
		switch name := e.Name(); name {
		case walDirName, hardStateFile, snapshotFile:
			return 0, fmt.Errorf("%w: %s holds %s but no %s file, so the cluster it belongs to is unknown",
				ErrNoClusterIdentity, dir, name, identityFile)
		}
	}
	if err := vfs.MkdirAllDurable(fsys, dir); err != nil {
		return 0, fmt.Errorf("consensus: create data directory: %w", err)
	}
	data := encodeIdentity(want)
	err = wal.WriteFileAtomicFS(fsys, path, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("consensus: write cluster identity: %w", err)
	}
	return want.id, nil
}

// The runtime envelope around every Raft message a Node sends:
//
//	version (1 byte) | cluster ID (8 bytes, big endian) | raft message
const (
	envelopeVersion    = 1
	envelopeHeaderSize = 9
)

// appendEnvelopeHeader appends the envelope header for cluster id.
func appendEnvelopeHeader(dst []byte, id ClusterID) []byte {
	dst = append(dst, envelopeVersion)
	return binary.BigEndian.AppendUint64(dst, uint64(id))
}

// errBadEnvelope is returned by openEnvelope for a payload that is not an
// envelope of a version this node reads.
var errBadEnvelope = errors.New("consensus: malformed message envelope")

// openEnvelope returns the cluster ID and the raft bytes of payload.
func openEnvelope(payload []byte) (ClusterID, []byte, error) {
	if len(payload) < envelopeHeaderSize {
		return 0, nil, fmt.Errorf("%w: %d bytes", errBadEnvelope, len(payload))
	}
	if payload[0] != envelopeVersion {
		return 0, nil, fmt.Errorf("%w: version %s", errBadEnvelope, strconv.Itoa(int(payload[0])))
	}
	return ClusterID(binary.BigEndian.Uint64(payload[1:envelopeHeaderSize])), payload[envelopeHeaderSize:], nil
}
