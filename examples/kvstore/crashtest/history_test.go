//go:build unix

package crashtest

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvInput is one client request.
type kvInput struct {
	Op    string // "put", "get" or "delete"
	Key   string
	Value string // put only
}

// kvOutput is its answer. For a write whose outcome is unknown, only
// Unknown is meaningful.
type kvOutput struct {
	Value   string
	Found   bool
	Unknown bool
}

// register is the state of one key: porcupine checks each key on its own.
type register struct {
	Value string
	Found bool
}

// opMeta says where an operation went, for the visualization.
type opMeta struct {
	Node   string
	Status string // the HTTP status, or the transport error
}

// kvModel is a map of registers, partitioned by key. PUT answers the value
// it stored, GET and DELETE the value before them (DELETE then removes it).
// A write of unknown outcome never constrains the answer: its return time
// is infinite, so porcupine may place it anywhere after its call, including
// after everything else (that is, never).
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(kvInput).Key
			byKey[k] = append(byKey[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range slices.Sorted(maps.Keys(byKey)) {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return register{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(register), input.(kvInput), output.(kvOutput)
		switch in.Op {
		case "put":
			next := register{Value: in.Value, Found: true}
			return out.Unknown || (out.Found && out.Value == in.Value), next
		case "delete":
			return out.Unknown || out == kvOutput{Value: st.Value, Found: st.Found}, register{}
		default: // get
			return out == kvOutput{Value: st.Value, Found: st.Found}, st
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		var res string
		switch {
		case out.Unknown:
			res = "?"
		case !out.Found:
			res = "missing"
		default:
			res = fmt.Sprintf("%q", out.Value)
		}
		if in.Op == "put" {
			return fmt.Sprintf("put(%s, %q) -> %s", in.Key, in.Value, res)
		}
		return fmt.Sprintf("%s(%s) -> %s", in.Op, in.Key, res)
	},
	DescribeState: func(state any) string {
		st := state.(register)
		if !st.Found {
			return "missing"
		}
		return fmt.Sprintf("%q", st.Value)
	},
	DescribeOperationMetadata: func(info any) string {
		m, _ := info.(opMeta)
		return fmt.Sprintf("via %s: %s", m.Node, m.Status)
	},
}

// history records operations and fault events from many goroutines.
type history struct {
	mu     sync.Mutex // guards ops, faults and dropped
	ops    []porcupine.Operation
	faults []porcupine.Annotation
	// dropped counts requests left out because they certainly had no
	// effect: refused connections and unanswered reads.
	dropped int
}

// drop counts a request that certainly had no effect.
func (h *history) drop() {
	h.mu.Lock()
	h.dropped++
	h.mu.Unlock()
}

// add records an operation. An unknown outcome gets an infinite return
// time: the write may take effect at any point after its call.
func (h *history) add(client int, in kvInput, call int64, out kvOutput, ret int64, meta opMeta) {
	if out.Unknown {
		ret = math.MaxInt64
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret, Metadata: meta})
	h.mu.Unlock()
}

// fault records a fault the harness injected over [start, end].
func (h *history) fault(start, end int64, desc string) {
	h.mu.Lock()
	h.faults = append(h.faults, porcupine.Annotation{Tag: "faults", Start: start, End: end, Description: desc})
	h.mu.Unlock()
}

// counts reports how many operations returned, how many writes have an
// unknown outcome, and how many requests were dropped.
func (h *history) counts() (ok, unknown, okWrites, dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	dropped = h.dropped
	for _, op := range h.ops {
		switch {
		case op.Output.(kvOutput).Unknown:
			unknown++
		case op.Input.(kvInput).Op != "get":
			okWrites++
			ok++
		default:
			ok++
		}
	}
	return ok, unknown, okWrites, dropped
}

// checkResult is what check found.
type checkResult struct {
	Result porcupine.CheckResult
	HTML   string // the visualization, written when the history is not Ok
	Text   string // the history, one operation a line
	// Summary names the keys whose history is not linearizable and, for
	// each, the end of the longest linearizable prefix porcupine found and
	// the operation it could not place after it.
	Summary string
}

// check checks the history for linearizability within timeout and, unless
// it is Ok, writes the history and porcupine's visualization into dir.
func (h *history) check(dir string, timeout time.Duration) (checkResult, error) {
	h.mu.Lock()
	ops := slices.Clone(h.ops)
	faults := slices.Clone(h.faults)
	h.mu.Unlock()
	res, info := porcupine.CheckOperationsVerbose(kvModel, ops, timeout)
	cr := checkResult{Result: res}
	if res == porcupine.Ok {
		return cr, nil
	}
	cr.Summary = summarize(ops)
	cr.Text = filepath.Join(dir, "history.txt")
	if err := os.WriteFile(cr.Text, []byte(cr.Summary+"\n"+formatHistory(ops, faults)), 0o644); err != nil {
		return cr, err
	}
	info.AddAnnotations(faults)
	cr.HTML = filepath.Join(dir, "linearizability.html")
	if err := porcupine.VisualizePath(kvModel, info, cr.HTML); err != nil {
		return cr, err
	}
	return cr, nil
}

// formatHistory lists operations and faults by call time.
func formatHistory(ops []porcupine.Operation, faults []porcupine.Annotation) string {
	type line struct {
		at   int64
		text string
	}
	var lines []line
	for _, op := range ops {
		ret := "never (unknown outcome)"
		if op.Return != math.MaxInt64 {
			ret = time.Duration(op.Return).String()
		}
		lines = append(lines, line{op.Call, fmt.Sprintf("%12v .. %-24s client %d %s %s",
			time.Duration(op.Call), ret, op.ClientId, kvModel.DescribeOperation(op.Input, op.Output),
			kvModel.DescribeOperationMetadata(op.Metadata))})
	}
	for _, f := range faults {
		lines = append(lines, line{f.Start, fmt.Sprintf("%12v .. %-24v FAULT %s", time.Duration(f.Start), time.Duration(f.End), f.Description)})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return cmp.Compare(a.at, b.at) })
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}

// summarize explains a failed check: per key that fails on its own, the
// last steps of the longest partial linearization and the operation that
// could not follow them (the one returning first among those left out).
func summarize(ops []porcupine.Operation) string {
	var b strings.Builder
	for _, part := range kvModel.Partition(ops) {
		if porcupine.CheckOperations(kvModel, part) {
			continue
		}
		key := part[0].Input.(kvInput).Key
		res, pinfo := porcupine.CheckOperationsVerbose(kvModel, part, time.Minute)
		fmt.Fprintf(&b, "key %q: %s\n", key, res)
		var longest []porcupine.Operation
		for _, lins := range pinfo.PartialLinearizationsOperations() {
			for _, lin := range lins {
				if len(lin) > len(longest) {
					longest = lin
				}
			}
		}
		in := map[porcupine.Operation]bool{}
		for _, op := range longest {
			in[op] = true
		}
		fmt.Fprintf(&b, "  the longest linearizable prefix has %d of %d operations; it ends with:\n", len(longest), len(part))
		for _, op := range longest[max(0, len(longest)-5):] {
			fmt.Fprintf(&b, "    %s\n", describe(op))
		}
		var stuck *porcupine.Operation
		for i := range part {
			if !in[part[i]] && (stuck == nil || part[i].Return < stuck.Return) {
				stuck = &part[i]
			}
		}
		if stuck != nil {
			fmt.Fprintf(&b, "  and cannot be extended by the operation that returned first among the rest:\n    %s\n", describe(*stuck))
		}
	}
	return b.String()
}

func describe(op porcupine.Operation) string {
	ret := "never"
	if op.Return != math.MaxInt64 {
		ret = time.Duration(op.Return).String()
	}
	return fmt.Sprintf("[%v .. %s] client %d %s %s", time.Duration(op.Call), ret, op.ClientId,
		kvModel.DescribeOperation(op.Input, op.Output), kvModel.DescribeOperationMetadata(op.Metadata))
}
