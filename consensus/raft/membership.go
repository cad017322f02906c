package raft

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/distkit/distkit/transport"
)

// Membership changes as plain data (thesis §4): a Membership is a value, a
// ConfChange turns one Membership into the next, and the quorum rules below
// are pure functions of a Membership. The core applies them (see conf.go).

// Membership lists the nodes of the cluster as of some log position.
//
// Voters elect leaders and form quorums. In a joint configuration (thesis
// §4.3) OutgoingVoters holds the previous voters and every decision, an
// election as well as a commit, needs a majority of Voters AND a majority
// of OutgoingVoters. Learners receive the log and snapshots but never vote,
// never count towards a commit and never campaign.
//
// The zero Membership is the empty one (a node that joins a running
// cluster starts with it and learns the real one from the leader).
type Membership struct {
	// Voters are the voters; in a joint configuration, the incoming ones.
	Voters []transport.NodeID
	// Learners are the non-voting members. A node is never both a learner
	// and a voter (incoming or outgoing).
	Learners []transport.NodeID
	// OutgoingVoters is non-empty exactly in a joint configuration: the
	// voters of the configuration being left.
	OutgoingVoters []transport.NodeID
	// AutoLeave, in a joint configuration, makes the leader propose the
	// transition to the incoming configuration as soon as the joint
	// configuration is committed. Without it the application leaves with
	// an explicit ConfChange{LeaveJoint: true}.
	AutoLeave bool
}

// Clone returns a deep copy of m.
func (m Membership) Clone() Membership {
	return Membership{
		Voters:         slices.Clone(m.Voters),
		Learners:       slices.Clone(m.Learners),
		OutgoingVoters: slices.Clone(m.OutgoingVoters),
		AutoLeave:      m.AutoLeave,
	}
}

// Equal reports whether m and o list the same nodes in the same order.
func (m Membership) Equal(o Membership) bool {
	return slices.Equal(m.Voters, o.Voters) && slices.Equal(m.Learners, o.Learners) &&
		slices.Equal(m.OutgoingVoters, o.OutgoingVoters) && m.AutoLeave == o.AutoLeave
}

// Joint reports whether m is a joint configuration.
func (m Membership) Joint() bool { return len(m.OutgoingVoters) > 0 }

// IsVoter reports whether id votes in m (as an incoming or outgoing voter).
func (m Membership) IsVoter(id transport.NodeID) bool {
	return slices.Contains(m.Voters, id) || slices.Contains(m.OutgoingVoters, id)
}

// IsLearner reports whether id is a learner in m.
func (m Membership) IsLearner(id transport.NodeID) bool { return slices.Contains(m.Learners, id) }

// Contains reports whether id is a member of m in any role.
func (m Membership) Contains(id transport.NodeID) bool { return m.IsVoter(id) || m.IsLearner(id) }

// Nodes returns every member once, in a deterministic order: the voters,
// then outgoing voters that are not incoming ones, then the learners.
func (m Membership) Nodes() []transport.NodeID {
	out := make([]transport.NodeID, 0, len(m.Voters)+len(m.OutgoingVoters)+len(m.Learners))
	out = append(out, m.Voters...)
	for _, id := range m.OutgoingVoters {
		if !slices.Contains(m.Voters, id) {
			out = append(out, id)
		}
	}
	return append(out, m.Learners...)
}

// Validate reports whether m is well formed: no empty or repeated IDs, no
// node both a learner and a voter, AutoLeave only in a joint configuration
// and, unless m is empty, at least one voter.
func (m Membership) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: membership: "+format, append([]any{ErrInvalidConfChange}, args...)...)
	}
	for _, set := range [][]transport.NodeID{m.Voters, m.Learners, m.OutgoingVoters} {
		for i, id := range set {
			if id == "" {
				return bad("empty node ID")
			}
			if slices.Contains(set[:i], id) {
				return bad("%q listed twice", id)
			}
		}
	}
	for _, id := range m.Learners {
		if m.IsVoter(id) {
			return bad("%q is both a learner and a voter", id)
		}
	}
	switch {
	case m.AutoLeave && !m.Joint():
		return bad("AutoLeave outside a joint configuration")
	case len(m.Voters) == 0 && (len(m.Learners) > 0 || m.Joint()):
		return bad("no voters")
	}
	return nil
}

// ConfChangeType is one kind of membership change.
type ConfChangeType uint8

// The kinds of change. Values are part of the log format: never renumber.
const (
	// ConfAddVoter adds a node that is not a member as a voter. Adding a
	// learner and promoting it once it has caught up is the safer way to
	// grow a cluster: a new voter with an empty log can stall commits.
	ConfAddVoter ConfChangeType = iota + 1
	// ConfAddLearner adds a node that is not a member as a learner.
	ConfAddLearner
	// ConfPromote makes a learner a voter.
	ConfPromote
	// ConfRemove removes a voter or a learner (the leader included: it
	// steps down once the change commits).
	ConfRemove

	maxConfChangeType = ConfRemove
)

// String returns the change's name.
func (t ConfChangeType) String() string {
	switch t {
	case ConfAddVoter:
		return "add-voter"
	case ConfAddLearner:
		return "add-learner"
	case ConfPromote:
		return "promote"
	case ConfRemove:
		return "remove"
	}
	return "unknown"
}

// ConfChangeOp changes the role of one node.
type ConfChangeOp struct {
	Type ConfChangeType
	Node transport.NodeID
}

// ConfChange is a membership change, proposed with RawNode.ProposeConfChange.
//
// Any set of operations on distinct nodes goes in one change. When at most
// one voter is added or removed (promotions count as additions) the change
// goes straight to the new configuration (the single-server change of
// thesis §4.2, safe because any majority of the old voters overlaps any
// majority of the new ones). Otherwise the cluster first enters the joint
// configuration of thesis §4.3, where every decision needs majorities of
// both the old and the new voters, and leaves it once the joint
// configuration is committed: automatically, or, with ExplicitLeave, when
// the application proposes ConfChange{LeaveJoint: true}.
type ConfChange struct {
	// Changes are the operations, each on a different node.
	Changes []ConfChangeOp
	// ExplicitLeave enters the joint configuration even for a single
	// change, and stays there until a LeaveJoint change.
	ExplicitLeave bool
	// LeaveJoint leaves the joint configuration (Changes must be empty).
	LeaveJoint bool
}

// Apply returns the membership that cc leads to from m, or an error
// wrapping ErrInvalidConfChange (a change that makes no sense: adding a
// member, removing a stranger, leaving the last voter out...) or
// ErrConfChangeInProgress (a change other than LeaveJoint while m is
// joint). m is not modified.
func (m Membership) Apply(cc ConfChange) (Membership, error) {
	bad := func(format string, args ...any) (Membership, error) {
		return Membership{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfChange}, args...)...)
	}
	if cc.LeaveJoint {
		switch {
		case !m.Joint():
			return bad("LeaveJoint outside a joint configuration")
		case len(cc.Changes) > 0 || cc.ExplicitLeave:
			return bad("LeaveJoint with other changes")
		}
		return Membership{Voters: slices.Clone(m.Voters), Learners: slices.Clone(m.Learners)}, nil
	}
	if m.Joint() {
		return Membership{}, fmt.Errorf("%w: in a joint configuration (leave it first)", ErrConfChangeInProgress)
	}
	if len(cc.Changes) == 0 {
		return bad("no changes")
	}
	voters, learners := slices.Clone(m.Voters), slices.Clone(m.Learners)
	for i, op := range cc.Changes {
		id := op.Node
		if id == "" {
			return bad("change %d has no node", i)
		}
		for _, prev := range cc.Changes[:i] {
			if prev.Node == id {
				return bad("%q changed twice", id)
			}
		}
		isVoter, isLearner := slices.Contains(voters, id), slices.Contains(learners, id)
		switch op.Type {
		case ConfAddVoter, ConfAddLearner:
			if isVoter || isLearner {
				return bad("%v %q: already a member", op.Type, id)
			}
			if op.Type == ConfAddVoter {
				voters = append(voters, id)
			} else {
				learners = append(learners, id)
			}
		case ConfPromote:
			if !isLearner {
				return bad("promote %q: not a learner", id)
			}
			learners = slices.DeleteFunc(learners, func(n transport.NodeID) bool { return n == id })
			voters = append(voters, id)
		case ConfRemove:
			if !isVoter && !isLearner {
				return bad("remove %q: not a member", id)
			}
			voters = slices.DeleteFunc(voters, func(n transport.NodeID) bool { return n == id })
			learners = slices.DeleteFunc(learners, func(n transport.NodeID) bool { return n == id })
		default:
			return bad("change %d has unknown type %d", i, op.Type)
		}
	}
	if len(voters) == 0 {
		return bad("no voters left")
	}
	if len(learners) == 0 {
		learners = nil
	}
	if symmetricDiff(m.Voters, voters) <= 1 && !cc.ExplicitLeave {
		// Thesis §4.2: one voter more or less keeps every old majority
		// overlapping every new one, so no joint phase is needed.
		return Membership{Voters: voters, Learners: learners}, nil
	}
	return Membership{
		Voters:         voters,
		Learners:       learners,
		OutgoingVoters: slices.Clone(m.Voters),
		AutoLeave:      !cc.ExplicitLeave,
	}, nil
}

// symmetricDiff counts the nodes in exactly one of a and b.
func symmetricDiff(a, b []transport.NodeID) int {
	n := 0
	for _, id := range a {
		if !slices.Contains(b, id) {
			n++
		}
	}
	for _, id := range b {
		if !slices.Contains(a, id) {
			n++
		}
	}
	return n
}

// quorum returns the size of a majority of n voters.
func quorum(n int) int { return n/2 + 1 }

// voteResult reports whether the yes votes among voters reach a majority
// (won) or the no votes make one impossible (lost). An empty set of voters
// agrees with anything (it is the absent outgoing half of a simple
// configuration).
func voteResult(voters []transport.NodeID, votes map[transport.NodeID]bool) (won, lost bool) {
	if len(voters) == 0 {
		return true, false
	}
	yes, no := 0, 0
	for _, v := range voters {
		g, ok := votes[v]
		switch {
		case !ok:
		case g:
			yes++
		default:
			no++
		}
	}
	q := quorum(len(voters))
	return yes >= q, no > len(voters)-q
}

// jointVoteResult is voteResult for a possibly joint configuration: won
// needs both halves, one lost half loses (thesis §4.3).
func (m *Membership) jointVoteResult(votes map[transport.NodeID]bool) (won, lost bool) {
	wonIn, lostIn := voteResult(m.Voters, votes)
	wonOut, lostOut := voteResult(m.OutgoingVoters, votes)
	return wonIn && wonOut, lostIn || lostOut
}

// quorumValue returns the largest v such that a majority of the values
// (one per voter) are at least v, sorting values in place. An empty set
// returns the maximum (no constraint).
func quorumValue(values []uint64) uint64 {
	if len(values) == 0 {
		return ^uint64(0)
	}
	slices.Sort(values)
	return values[len(values)-quorum(len(values))]
}

// ConfChangeEntry is the content of an EntryConfChange entry: the change as
// proposed and the membership it results in. The membership is spelled out
// so that replaying a log from any point (a node that joins, a restart)
// yields the same configuration without knowing the one before.
type ConfChangeEntry struct {
	Change     ConfChange
	Membership Membership
}

// confEntryVersion is the first byte of an encoded ConfChangeEntry.
const confEntryVersion = 1

// Flag bits of an encoded ConfChange and Membership.
const (
	ccFlagExplicitLeave = 1 << 0
	ccFlagLeaveJoint    = 1 << 1
	ccFlagMask          = ccFlagExplicitLeave | ccFlagLeaveJoint
	msFlagAutoLeave     = 1 << 0
	msFlagMask          = msFlagAutoLeave
)

// AppendBinary appends the encoding of e to dst (encoding.BinaryAppender).
func (e ConfChangeEntry) AppendBinary(dst []byte) ([]byte, error) {
	var flags byte
	if e.Change.ExplicitLeave {
		flags |= ccFlagExplicitLeave
	}
	if e.Change.LeaveJoint {
		flags |= ccFlagLeaveJoint
	}
	dst = append(dst, confEntryVersion, flags)
	dst = binary.AppendUvarint(dst, uint64(len(e.Change.Changes)))
	for _, op := range e.Change.Changes {
		dst = append(dst, byte(op.Type))
		dst = appendString(dst, string(op.Node))
	}
	return e.Membership.AppendBinary(dst)
}

// UnmarshalBinary decodes an entry produced by AppendBinary, replacing e.
// Malformed input, including a membership that fails Validate, yields an
// error wrapping ErrInvalidConfChange.
func (e *ConfChangeEntry) UnmarshalBinary(b []byte) error {
	*e = ConfChangeEntry{}
	d := decoder{buf: b}
	if v := d.byte(); d.err == nil && v != confEntryVersion {
		return fmt.Errorf("%w: unknown conf change version %d", ErrInvalidConfChange, v)
	}
	flags := d.byte()
	if d.err == nil && flags&^ccFlagMask != 0 {
		return fmt.Errorf("%w: unknown conf change flags %#x", ErrInvalidConfChange, flags)
	}
	e.Change.ExplicitLeave = flags&ccFlagExplicitLeave != 0
	e.Change.LeaveJoint = flags&ccFlagLeaveJoint != 0
	if n := d.count(2); n > 0 {
		e.Change.Changes = make([]ConfChangeOp, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			typ := ConfChangeType(d.byte())
			id := transport.NodeID(d.bytes())
			if d.err == nil && (typ == 0 || typ > maxConfChangeType) {
				return fmt.Errorf("%w: conf change type %d", ErrInvalidConfChange, typ)
			}
			e.Change.Changes = append(e.Change.Changes, ConfChangeOp{Type: typ, Node: id})
		}
	}
	rest, err := e.Membership.decode(&d)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes after a conf change", ErrInvalidConfChange, len(rest))
	}
	return nil
}

// AppendBinary appends the encoding of m to dst (encoding.BinaryAppender):
// three counted lists of IDs (voters, learners, outgoing voters) and a
// flags byte. Storage codecs may use it to persist a snapshot's membership.
func (m Membership) AppendBinary(dst []byte) ([]byte, error) {
	for _, set := range [][]transport.NodeID{m.Voters, m.Learners, m.OutgoingVoters} {
		dst = binary.AppendUvarint(dst, uint64(len(set)))
		for _, id := range set {
			dst = appendString(dst, string(id))
		}
	}
	var flags byte
	if m.AutoLeave {
		flags |= msFlagAutoLeave
	}
	return append(dst, flags), nil
}

// UnmarshalBinary decodes a membership produced by AppendBinary, replacing
// m. It refuses trailing bytes and memberships that fail Validate, with an
// error wrapping ErrInvalidConfChange.
func (m *Membership) UnmarshalBinary(b []byte) error {
	d := decoder{buf: b}
	rest, err := m.decode(&d)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes after a membership", ErrInvalidConfChange, len(rest))
	}
	return nil
}

// decode reads a membership from d and returns what is left of the input.
func (m *Membership) decode(d *decoder) ([]byte, error) {
	*m = Membership{}
	sets := [3]*[]transport.NodeID{&m.Voters, &m.Learners, &m.OutgoingVoters}
	for _, set := range sets {
		if n := d.count(1); n > 0 {
			*set = make([]transport.NodeID, 0, n)
			for i := uint64(0); i < n && d.err == nil; i++ {
				*set = append(*set, transport.NodeID(d.bytes()))
			}
		}
	}
	flags := d.byte()
	if d.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfChange, d.err)
	}
	if flags&^msFlagMask != 0 {
		return nil, fmt.Errorf("%w: unknown membership flags %#x", ErrInvalidConfChange, flags)
	}
	m.AutoLeave = flags&msFlagAutoLeave != 0
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return d.buf, nil
}
