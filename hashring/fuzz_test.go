package hashring

import (
	"fmt"
	"slices"
	"testing"
)

// FuzzRingOps interprets the input as a program of ring changes and
// lookups and checks that nothing panics, every change leaves a ring that
// matches the linear-scan reference, and errors are the documented ones.
func FuzzRingOps(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 3, 1, 2, 1, 4})
	f.Add([]byte{0, 0, 0, 0, 1, 0, 2, 0, 255})
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 64 {
			prog = prog[:64]
		}
		const vnodes = 7
		r, err := NewRing(Config{VirtualNodes: vnodes})
		if err != nil {
			t.Fatal(err)
		}
		model := map[string]float64{}
		for i := 0; i+1 < len(prog); i += 2 {
			op, arg := prog[i]%4, prog[i+1]
			name := fmt.Sprintf("n%d", arg%8)
			weight := float64(arg%5) / 2 // 0 is invalid on purpose
			_, present := model[name]
			switch op {
			case 0:
				err := r.Add(name, weight)
				if (err == nil) != (!present && weight > 0) {
					t.Fatalf("Add(%q, %v) = %v with present=%v", name, weight, err, present)
				}
				if err == nil {
					model[name] = weight
				}
			case 1:
				err := r.Remove(name)
				if (err == nil) != present {
					t.Fatalf("Remove(%q) = %v with present=%v", name, err, present)
				}
				delete(model, name)
			case 2:
				err := r.SetWeight(name, weight)
				if (err == nil) != (present && weight > 0) {
					t.Fatalf("SetWeight(%q, %v) = %v with present=%v", name, weight, err, present)
				}
				if err == nil {
					model[name] = weight
				}
			case 3:
				key := fmt.Sprintf("key-%d", arg)
				n := int(arg%5) - 1 // -1 exercises the error path
				got, err := r.LocateN(nil, key, n)
				switch {
				case n < 0 || (len(model) == 0 && n > 0):
					if err == nil {
						t.Fatalf("LocateN(%q, %d) on %d nodes succeeded", key, n, len(model))
					}
				case n > 0:
					want := newRefRing(vnodes, model).locateN(hashKey(key), n)
					if err != nil || !slices.Equal(got, want) {
						t.Fatalf("LocateN(%q, %d) = %v, %v; want %v", key, n, got, err, want)
					}
				}
			}
		}
	})
}
