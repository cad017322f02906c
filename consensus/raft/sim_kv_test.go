package raft

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/anishathalye/porcupine"
)

// kvCommand is a client request as it travels to a server and through the
// log: a get or a put, tagged with the client and a per-client sequence
// number so that a retried request is applied at most once.
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

// kvSession remembers a client's last applied request and its result
// (deduplication of retries).
type kvSession struct {
	Seq    uint64
	Result string
}

// kvMachine is the replicated state machine of the simulation tests.
type kvMachine struct {
	Data     map[string]string
	Sessions map[int]kvSession
}

func newKVMachine() *kvMachine {
	return &kvMachine{Data: map[string]string{}, Sessions: map[int]kvSession{}}
}

// apply executes a command once per (client, seq) and returns its result;
// a retry of the latest request gets the remembered result.
func (m *kvMachine) apply(c kvCommand) (result string, fresh bool) {
	s, ok := m.Sessions[c.Client]
	if ok && c.Seq <= s.Seq {
		return s.Result, false
	}
	switch c.Op {
	case 'p':
		m.Data[c.Key] = c.Value
		result = ""
	case 'g':
		result = m.Data[c.Key]
	}
	m.Sessions[c.Client] = kvSession{Seq: c.Seq, Result: result}
	return result, true
}

func (m *kvMachine) snapshot() []byte {
	b, err := json.Marshal(m) // map keys are sorted: deterministic
	if err != nil {
		panic(err)
	}
	return b
}

func (m *kvMachine) restore(b []byte) error {
	n := newKVMachine()
	if err := json.Unmarshal(b, n); err != nil {
		return err
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
