package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/distkit/distkit/consensus"
	"pgregory.net/rapid"
)

// fataler is what the helpers need of a *testing.T, *testing.B or
// *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

func applyOp(t fataler, s *kvStore, index uint64, op, key, value string) result {
	t.Helper()
	r, ok := s.Apply(consensus.Entry{Index: index, Term: 1, Command: encodeCommand(op, key, value)}).(result)
	if !ok || r.Err != "" {
		t.Fatalf("Apply(%s %q %q) = %+v", op, key, value, r)
	}
	return r
}

// restored reads a snapshot into a fresh store and returns its data.
func restored(t fataler, snap []byte) map[string]string {
	t.Helper()
	s := newKVStore()
	if err := s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	data := map[string]string{}
	s.root.each(func(k, v string) bool { data[k] = v; return true })
	if s.Len() != len(data) {
		t.Fatalf("Len() = %d after Restore; want %d", s.Len(), len(data))
	}
	return data
}

// TestStoreViewIsPointInTime: a snapshot view taken after some commands
// writes exactly the state as of then, although puts, overwrites, deletes
// and a Restore happened before it was written; Restore reads back what it
// wrote, and the store itself goes on with the later state.
func TestStoreViewIsPointInTime(t *testing.T) {
	s := newKVStore()
	want := map[string]string{}
	index := uint64(0)
	for i := range 1000 {
		k, v := fmt.Sprintf("k%04d", i), strings.Repeat("v", i%7)
		index++
		applyOp(t, s, index, "put", k, v)
		want[k] = v
	}
	view, err := s.SnapshotView()
	if err != nil {
		t.Fatal(err)
	}
	defer view.Release()
	later := maps.Clone(want)
	for i := range 1000 {
		index++
		k := fmt.Sprintf("k%04d", (i*37)%1200)
		switch i % 3 {
		case 0:
			applyOp(t, s, index, "put", k, "new")
			later[k] = "new"
		case 1:
			applyOp(t, s, index, "delete", k, "")
			delete(later, k)
		default:
			if r := applyOp(t, s, index, "get", k, ""); r.Value != later[k] {
				t.Fatalf("get %s = %q; want %q", k, r.Value, later[k])
			}
		}
	}
	var buf bytes.Buffer
	if err := view.WriteSnapshot(&buf); err != nil {
		t.Fatalf("WriteSnapshot: %v", err)
	}
	// A Restore of another state does not change the view either.
	if err := s.Restore(strings.NewReader(`{"other":"x"}`)); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := view.WriteSnapshot(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("the view wrote different bytes after a Restore")
	}
	if got := restored(t, buf.Bytes()); !maps.Equal(got, want) {
		t.Errorf("view restored to %d keys; want the %d as of the view", len(got), len(want))
	}
	if v, ok := s.Get("other"); !ok || v != "x" || s.Len() != 1 {
		t.Errorf("after Restore: Get(other) = %q, %v, Len() = %d; want x, true, 1", v, ok, s.Len())
	}
}

// TestStoreSnapshotFormat: the view writes the bytes json.Encoder writes
// for the same map (keys sorted, HTML escaped, a newline), so snapshots
// taken before the store kept a treap restore, and vice versa.
func TestStoreSnapshotFormat(t *testing.T) {
	tests := []struct {
		name string
		data map[string]string
	}{
		{"empty", map[string]string{}},
		{"one", map[string]string{"a": "1"}},
		{"escapes", map[string]string{"<a&b>": "\"q\"\n\t\\", "ключ": "значение", "bad\xffutf8": "\x00\x01", "": ""}},
		{"each escape alone", map[string]string{"\"": "\\", "<": ">", "&": "\x1f", "\x7f": "~ !"}},
		{"many", func() map[string]string {
			m := map[string]string{}
			for i := range 5000 {
				m[fmt.Sprint(i)] = strings.Repeat("x", i%100)
			}
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newKVStore()
			for k, v := range tt.data {
				s.root, _ = s.root.put(k, v, treapPriority(k))
				s.size++
			}
			var got, want bytes.Buffer
			if err := s.Snapshot(&got); err != nil {
				t.Fatal(err)
			}
			if err := json.NewEncoder(&want).Encode(tt.data); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("Snapshot wrote %.200q; json.Encoder writes %.200q", got.Bytes(), want.Bytes())
			}
		})
	}
}

// TestStoreTreapModel checks the persistent treap against a map: after
// every random put or delete the tree is ordered and heap-ordered, holds
// the model's data, and every view taken earlier still writes the state of
// its moment.
func TestStoreTreapModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := newKVStore()
		model := map[string]string{}
		type taken struct {
			view consensus.SnapshotWriter
			data map[string]string
		}
		var views []taken
		key := rapid.StringMatching(`[a-e]{0,3}`)
		for i, n := 0, rapid.IntRange(0, 200).Draw(t, "ops"); i < n; i++ {
			k := key.Draw(t, "key")
			switch rapid.IntRange(0, 4).Draw(t, "op") {
			case 0, 1:
				v := rapid.StringN(0, 4, -1).Draw(t, "value")
				applyOp(t, s, uint64(i+1), "put", k, v)
				model[k] = v
			case 2:
				r := applyOp(t, s, uint64(i+1), "delete", k, "")
				if _, ok := model[k]; r.Found != ok {
					t.Fatalf("delete %q found %v; want %v", k, r.Found, ok)
				}
				delete(model, k)
			case 3:
				v, _ := s.SnapshotView()
				views = append(views, taken{v, maps.Clone(model)})
			case 4:
				got, ok := s.Get(k)
				if want, wok := model[k]; got != want || ok != wok {
					t.Fatalf("Get(%q) = %q, %v; want %q, %v", k, got, ok, want, wok)
				}
			}
			checkTreap(t, s.root)
		}
		if s.Len() != len(model) {
			t.Fatalf("Len() = %d; want %d", s.Len(), len(model))
		}
		for i, v := range append(views, taken{kvView{root: s.root}, model}) {
			var buf bytes.Buffer
			if err := v.view.WriteSnapshot(&buf); err != nil {
				t.Fatal(err)
			}
			if got := restored(t, buf.Bytes()); !maps.Equal(got, v.data) {
				t.Fatalf("view %d restored to %v; want %v", i, got, v.data)
			}
			v.view.Release()
		}
	})
}

// checkTreap fails unless keys ascend in order and no node's priority
// exceeds its parent's.
func checkTreap(t *rapid.T, root *treapNode) {
	var walk func(n *treapNode, lo, hi *string, prio uint64)
	walk = func(n *treapNode, lo, hi *string, prio uint64) {
		if n == nil {
			return
		}
		if (lo != nil && n.key <= *lo) || (hi != nil && n.key >= *hi) {
			t.Fatalf("key %q out of order", n.key)
		}
		if n.prio > prio || n.prio != treapPriority(n.key) {
			t.Fatalf("key %q: priority %d under a parent of %d", n.key, n.prio, prio)
		}
		walk(n.left, lo, &n.key, n.prio)
		walk(n.right, &n.key, hi, n.prio)
	}
	walk(root, nil, nil, 1<<64-1)
}

// BenchmarkStoreSnapshotView measures taking a view of a store of 100k
// keys (it must not grow with the state) and a put after it.
func BenchmarkStoreSnapshotView(b *testing.B) {
	s := newKVStore()
	for i := range 100_000 {
		applyOp(b, s, uint64(i+1), "put", fmt.Sprintf("key%06d", i), strings.Repeat("v", 100))
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		v, _ := s.SnapshotView()
		applyOp(b, s, uint64(i+1), "put", fmt.Sprintf("key%06d", i%100_000), "x")
		v.Release()
	}
}
