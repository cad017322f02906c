package raft

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/distkit/distkit/consensus/session"
)

// kvCommand is a key-value operation: a get or a put. Client and Seq
// name the attempt that carries it, so that a reply can be matched to it;
// the state machine does not deduplicate on them: with sessions, the
// session envelope around the command does (package consensus/session);
// without, a retried command is a new command.
type kvCommand struct {
	Op     byte // 'g' or 'p'
	Client int
	Seq    uint64
	Key    string
	Value  string
}

func (c kvCommand) encode() []byte {
	return fmt.Appendf(nil, "%c|%d|%d|%s|%s", c.Op, c.Client, c.Seq, c.Key, c.Value)
}

func decodeKVCommand(b []byte) (kvCommand, error) {
	parts := strings.SplitN(string(b), "|", 5)
	if len(parts) != 5 || len(parts[0]) != 1 {
		return kvCommand{}, fmt.Errorf("bad command %q", b)
	}
	client, err1 := strconv.Atoi(parts[1])
	seq, err2 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return kvCommand{}, fmt.Errorf("bad command %q", b)
	}
	return kvCommand{Op: parts[0][0], Client: client, Seq: seq, Key: parts[3], Value: parts[4]}, nil
}

// simSessions configures the simulation's session tables: the TTL is far
// longer than a run, the cache as small as a one-request client needs.
var simSessions = session.Config{TTL: time.Hour, MaxSessions: 16, MaxPending: 4}

// kvRequest returns what a client sends a server for cmd: in session id
// (0: none, a plain command) with acked as the lowest sequence number it
// still waits for.
func kvRequest(id uint64, acked uint64, cmd kvCommand) []byte {
	if id == 0 {
		return cmd.encode()
	}
	return session.AppendCommand(nil, session.ID(id), cmd.Seq, acked, cmd.encode())
}

// prepareProposal turns a client request into the command a server
// proposes, and returns the sequence number its reply must carry (0 for a
// session registration). The leader stamps its clock into session
// envelopes (thesis §6.3): the session tables expire sessions by the time
// in the log, never by the clock of the replica applying it.
func prepareProposal(req []byte, now time.Time) (cmd []byte, seq uint64, err error) {
	if !session.IsEnvelope(req) {
		c, err := decodeKVCommand(req)
		return req, c.Seq, err
	}
	e, err := session.Parse(req)
	if err != nil {
		return nil, 0, err
	}
	cmd = bytes.Clone(req)
	session.Stamp(cmd, now.UnixNano())
	return cmd, e.Seq, nil
}

// kvApplied is the answer to one applied entry.
type kvApplied struct {
	seq     uint64 // the sequence number of the request it answers
	value   string // a get's value, or a registered session's ID
	expired bool   // refused: the session expired (not applied)
}

// kvMachine is the replicated state machine of the simulation tests: a
// map, behind the session table of package consensus/session.
type kvMachine struct {
	data  map[string]string
	table *session.Table
}

func newKVMachine() *kvMachine {
	t, err := session.NewTable(simSessions)
	if err != nil {
		panic(err)
	}
	return &kvMachine{data: map[string]string{}, table: t}
}

// apply applies one committed entry: a session registration, a command in
// a session (executed once per (session, seq); a retry gets the cached
// result), or a plain command (executed every time).
func (m *kvMachine) apply(index uint64, data []byte) (kvApplied, error) {
	if !session.IsEnvelope(data) {
		c, err := decodeKVCommand(data)
		if err != nil {
			return kvApplied{}, err
		}
		return kvApplied{seq: c.Seq, value: m.exec(c)}, nil
	}
	e, err := session.Parse(data)
	if err != nil {
		return kvApplied{}, err
	}
	switch e.Kind {
	case session.KindRegister:
		return kvApplied{value: strconv.FormatUint(uint64(m.table.Register(index, &e)), 10)}, nil
	case session.KindClose:
		return kvApplied{}, m.table.Close(&e)
	}
	cached, dup, err := m.table.Begin(&e)
	switch {
	case err != nil:
		// Refused and not applied: the session expired, or a late copy
		// of a request the client has moved on from.
		return kvApplied{seq: e.Seq, expired: errors.Is(err, session.ErrSessionExpired)}, nil
	case dup:
		return kvApplied{seq: e.Seq, value: string(cached)}, nil
	}
	c, err := decodeKVCommand(e.Payload)
	if err != nil {
		return kvApplied{}, err
	}
	result := m.exec(c)
	m.table.Finish(&e, []byte(result))
	return kvApplied{seq: e.Seq, value: result}, nil
}

func (m *kvMachine) exec(c kvCommand) string {
	if c.Op == 'p' {
		m.data[c.Key] = c.Value
		return ""
	}
	return m.data[c.Key]
}

// kvSnapshot is a kvMachine's snapshot: the map and the session table.
type kvSnapshot struct {
	Data     map[string]string
	Sessions []byte
}

func (m *kvMachine) snapshot() []byte {
	table, err := m.table.MarshalBinary()
	if err != nil {
		panic(err)
	}
	b, err := json.Marshal(kvSnapshot{Data: m.data, Sessions: table}) // map keys are sorted: deterministic
	if err != nil {
		panic(err)
	}
	return b
}

func (m *kvMachine) restore(b []byte) error {
	var snap kvSnapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return err
	}
	n := newKVMachine()
	if err := n.table.UnmarshalBinary(snap.Sessions); err != nil {
		return err
	}
	if snap.Data != nil {
		n.data = snap.Data
	}
	*m = *n
	return nil
}

// The porcupine model: a register per key (the history is partitioned by
// key, so the state is one string).
type kvInput struct {
	Op    byte
	Key   string
	Value string
}

type kvOutput struct {
	Value   string
	Unknown bool // the put never returned: it may or may not have happened
}

var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(kvInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(kvInput), output.(kvOutput)
		if in.Op == 'p' {
			return true, in.Value
		}
		return out.Value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		if in.Op == 'p' {
			if out.Unknown {
				return fmt.Sprintf("put(%s, %s) -> ?", in.Key, in.Value)
			}
			return fmt.Sprintf("put(%s, %s)", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%s) -> %q", in.Key, out.Value)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}
