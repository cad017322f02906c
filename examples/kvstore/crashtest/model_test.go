//go:build unix

package crashtest

import (
	"math"
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestModel pins the checker on small histories: the failure shapes the
// crash test exists to catch are Illegal, and what a write of unknown
// outcome may legally do is Ok.
func TestModel(t *testing.T) {
	const never = math.MaxInt64
	put := func(v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: kvInput{Op: "put", Key: "x", Value: v}, Call: call, Output: kvOutput{Value: v, Found: true}, Return: ret}
	}
	putUnknown := func(v string, call int64) porcupine.Operation {
		return porcupine.Operation{Input: kvInput{Op: "put", Key: "x", Value: v}, Call: call, Output: kvOutput{Unknown: true}, Return: never}
	}
	get := func(v string, found bool, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: kvInput{Op: "get", Key: "x"}, Call: call, Output: kvOutput{Value: v, Found: found}, Return: ret}
	}
	del := func(v string, found bool, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: kvInput{Op: "delete", Key: "x"}, Call: call, Output: kvOutput{Value: v, Found: found}, Return: ret}
	}
	tests := []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"sequential writes and reads", []porcupine.Operation{
			put("A", 0, 10), get("A", true, 20, 30), put("B", 40, 50), get("B", true, 60, 70), del("B", true, 80, 90), get("", false, 100, 110),
		}, porcupine.Ok},
		{"concurrent puts may land in either order", []porcupine.Operation{
			put("A", 0, 50), put("B", 10, 40), get("A", true, 60, 70),
		}, porcupine.Ok},
		// Issue 13's failure: PUT x=A acknowledged, then PUT x=B
		// acknowledged, then a duplicate of A lands and x reads A.
		{"an acknowledged write is undone by a late duplicate", []porcupine.Operation{
			put("A", 0, 10), put("B", 20, 30), get("B", true, 40, 50), get("A", true, 60, 70),
		}, porcupine.Illegal},
		{"a stale read", []porcupine.Operation{
			put("A", 0, 10), put("B", 20, 30), get("A", true, 40, 50),
		}, porcupine.Illegal},
		{"a write of unknown outcome may land late", []porcupine.Operation{
			putUnknown("A", 0), put("B", 20, 30), get("B", true, 40, 50), get("A", true, 60, 70),
		}, porcupine.Ok},
		{"a write of unknown outcome may never land", []porcupine.Operation{
			putUnknown("A", 0), get("", false, 40, 50), get("", false, 60, 70),
		}, porcupine.Ok},
		{"a write of unknown outcome lands at most once", []porcupine.Operation{
			putUnknown("A", 0), put("B", 20, 30), get("A", true, 40, 50), get("B", true, 60, 70), get("A", true, 80, 90),
		}, porcupine.Illegal},
		// A DELETE applied twice answers "missing" the second time.
		{"delete answers the value it removed", []porcupine.Operation{
			put("A", 0, 10), del("", false, 20, 30),
		}, porcupine.Illegal},
		{"a value nobody wrote", []porcupine.Operation{
			put("A", 0, 10), get("C", true, 20, 30),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(kvModel, tt.history, 0); got != tt.want {
				t.Fatalf("check = %s; want %s", got, tt.want)
			}
		})
	}
}

// TestCheckWritesEvidence checks that a failed check leaves the history,
// a summary naming the key, and the visualization.
func TestCheckWritesEvidence(t *testing.T) {
	h := &history{}
	h.add(0, kvInput{Op: "put", Key: "x", Value: "A"}, 0, kvOutput{Value: "A", Found: true}, 10, opMeta{Node: "n1", Status: "200 OK"})
	h.add(1, kvInput{Op: "put", Key: "x", Value: "B"}, 20, kvOutput{Value: "B", Found: true}, 30, opMeta{Node: "n2", Status: "200 OK"})
	h.add(0, kvInput{Op: "get", Key: "x"}, 40, kvOutput{Value: "A", Found: true}, 50, opMeta{Node: "n3", Status: "200 OK"})
	h.fault(15, 25, "kill -9 n2")
	res, err := h.check(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Result != porcupine.Illegal || res.HTML == "" || res.Text == "" {
		t.Fatalf("check = %+v; want Illegal with the history and visualization written", res)
	}
	if !strings.Contains(res.Summary, `key "x"`) || !strings.Contains(res.Summary, `get(x) -> "A"`) {
		t.Fatalf("summary does not name the key and the stuck read:\n%s", res.Summary)
	}
}
