package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/consensus/session"
	"github.com/distkit/distkit/transport"
)

// Forwarding. Every node's consensus.Client opens its own client session
// (Raft thesis §6.3) and stamps each command with (session, seq) before it
// leaves the node. A follower forwards the stamped command to the leader
// over proposeService; the leader proposes it as it is, so a retry after an
// ambiguous failure (a forwarding attempt that timed out, a node that died
// with the command in flight) carries the same stamp, and the session table
// answers a copy that was applied already from its cache instead of
// applying it again. The leader refuses a command that is not
// session-stamped: proposing it would give up exactly-once.

// proposeService is the RPC service through which a node hands a command
// to another node (the leader) on behalf of its HTTP clients.
const proposeService = "kv.propose"

// Reply codes of proposeService: the first byte of a reply.
const (
	replyResult    = 0  // encodeResult's bytes: the store's answer
	replySession   = 1  // uvarint: the ID of the session just registered
	replyNil       = 2  // a nil answer (a session closed)
	replyRefused   = 3  // index into refusals, then text: not applied
	replyError     = 4  // text: an error answered in place of a result
	replyNotLeader = 5  // the leader's ID ("" if unknown): not applied
	replyLost      = 6  // consensus.ErrProposalLost: not applied
	replyClosed    = 7  // consensus.ErrClosed: not applied
	replyTooLarge  = 8  // consensus.ErrTooLarge: not applied
	replyDropped   = 9  // raft.ErrProposalDropped: not applied
	replyRejected  = 10 // text: not a session command, not proposed
	replyUnknown   = 11 // text: the outcome is unknown (stopped, timed out)
)

// refusals are the session table's answers for a command it did not
// apply, in the order of their reply index. A Client recognizes them with
// errors.Is on the answer, so they cross the network as themselves.
var refusals = []error{
	consensus.ErrSessionExpired,
	consensus.ErrResultDiscarded,
	consensus.ErrTooManyPending,
	session.ErrMalformed,
	consensus.ErrResultNotCacheable,
}

// errBadReply reports a proposeService reply that does not decode.
var errBadReply = errors.New("kvstore: bad reply")

// serveProposal proposes a command forwarded by another node on this one,
// as it is: the session stamp the sender's Client put on it is what makes
// a retried copy harmless.
func (s *server) serveProposal(ctx context.Context, from transport.NodeID, req []byte) ([]byte, error) {
	if !session.IsEnvelope(req) {
		return append([]byte{replyRejected}, "a forwarded command must carry a session stamp"...), nil
	}
	v, err := s.node.Propose(ctx, req)
	return encodeReply(v, err), nil
}

// encodeReply encodes the outcome of Node.Propose for the node that
// forwarded the command.
func encodeReply(v any, err error) []byte {
	var nle *raft.NotLeaderError
	switch {
	case err == nil:
	case errors.As(err, &nle):
		return append([]byte{replyNotLeader}, nle.Leader...)
	case errors.Is(err, consensus.ErrProposalLost):
		return []byte{replyLost}
	case errors.Is(err, consensus.ErrClosed):
		return []byte{replyClosed}
	case errors.Is(err, consensus.ErrTooLarge):
		return append([]byte{replyTooLarge}, err.Error()...)
	case errors.Is(err, raft.ErrProposalDropped):
		return []byte{replyDropped}
	default:
		return append([]byte{replyUnknown}, err.Error()...)
	}
	switch v := v.(type) {
	case result:
		return appendResult([]byte{replyResult}, v)
	case consensus.SessionID:
		return binary.AppendUvarint([]byte{replySession}, uint64(v))
	case nil:
		return []byte{replyNil}
	case error:
		for i, r := range refusals {
			if errors.Is(v, r) {
				return append([]byte{replyRefused, byte(i)}, v.Error()...)
			}
		}
		return append([]byte{replyError}, v.Error()...)
	default:
		return append([]byte{replyError}, fmt.Sprintf("kvstore: unexpected answer of type %T", v)...)
	}
}

// decodeReply turns a reply from node from back into what Node.Propose
// returned there, as the Client expects it: answers (results, session IDs,
// the session table's refusals) as values, failures as errors that say
// whether the command may have been applied.
func decodeReply(from transport.NodeID, resp []byte) (any, error) {
	if len(resp) == 0 {
		return nil, fmt.Errorf("%w: %w from %s: empty", consensus.ErrOutcomeUnknown, errBadReply, from)
	}
	code, body := resp[0], resp[1:]
	switch code {
	case replyResult:
		r, err := decodeResult(body)
		if err != nil {
			return nil, fmt.Errorf("%w: %w from %s: %w", consensus.ErrOutcomeUnknown, errBadReply, from, err)
		}
		return r, nil
	case replySession:
		id, n := binary.Uvarint(body)
		if n <= 0 || n != len(body) || id == 0 {
			return nil, fmt.Errorf("%w: %w from %s: bad session ID", consensus.ErrOutcomeUnknown, errBadReply, from)
		}
		return consensus.SessionID(id), nil
	case replyNil:
		return nil, nil
	case replyRefused:
		if len(body) == 0 || int(body[0]) >= len(refusals) {
			return nil, fmt.Errorf("%w: %w from %s: unknown refusal", consensus.ErrOutcomeUnknown, errBadReply, from)
		}
		return fmt.Errorf("%w (at %s: %s)", refusals[body[0]], from, body[1:]), nil
	case replyError:
		return fmt.Errorf("kvstore: %s answered: %s", from, body), nil
	case replyNotLeader:
		return nil, &raft.NotLeaderError{Leader: transport.NodeID(body)}
	case replyLost:
		return nil, consensus.ErrProposalLost
	case replyClosed:
		return nil, consensus.ErrClosed
	case replyTooLarge:
		return nil, fmt.Errorf("%w (at %s: %s)", consensus.ErrTooLarge, from, body)
	case replyDropped:
		return nil, raft.ErrProposalDropped
	case replyRejected:
		return nil, fmt.Errorf("kvstore: %s refused the command: %s", from, body)
	case replyUnknown:
		return nil, fmt.Errorf("%w: at %s: %s", consensus.ErrOutcomeUnknown, from, body)
	}
	return nil, fmt.Errorf("%w: %w from %s: code %d", consensus.ErrOutcomeUnknown, errBadReply, from, code)
}

// remoteProposer proposes on another node through the RPC endpoint. It
// only carries commands: the Client that calls it stamps them.
type remoteProposer struct {
	rpc *transport.RPC
	to  transport.NodeID
}

var (
	_ consensus.Proposer      = remoteProposer{}
	_ consensus.SessionKeeper = remoteProposer{}
)

// Propose implements consensus.Proposer.
func (p remoteProposer) Propose(ctx context.Context, cmd []byte) (any, error) {
	resp, err := p.rpc.Call(ctx, p.to, proposeService, cmd)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// The request may or may not have reached the node.
		return nil, fmt.Errorf("%w: forwarding to %s: %w", consensus.ErrOutcomeUnknown, p.to, err)
	}
	return decodeReply(p.to, resp)
}

// KeepsSessions implements consensus.SessionKeeper: every kvstore node
// wraps its store with sessions.
func (p remoteProposer) KeepsSessions() bool { return true }
