package consensus

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"testing"
)

// viewRecordSM is recordSM with a point-in-time view (a copy of the
// applied list taken when the view is made).
type viewRecordSM struct {
	recordSM
	released int
}

func (r *viewRecordSM) SnapshotView() (SnapshotWriter, error) {
	return &recordView{owner: r, applied: slices.Clone(r.applied)}, nil
}

type recordView struct {
	owner   *viewRecordSM
	applied []string
}

func (v *recordView) WriteSnapshot(w io.Writer) error { return json.NewEncoder(w).Encode(v.applied) }
func (v *recordView) Release()                        { v.owner.released++ }

// TestSessionMachineSnapshotView: the wrapper offers a view whatever it
// wraps; the view writes exactly the bytes Snapshot writes at the moment
// the view was taken (later entries do not leak into it), it restores the
// sessions and the wrapped state, and the wrapped machine's own view is
// used and released when it has one.
func TestSessionMachineSnapshotView(t *testing.T) {
	tests := []struct {
		name  string
		inner StateMachine
	}{
		{"wrapped machine without a view", &recordSM{}},
		{"wrapped machine with a view", &viewRecordSM{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newSessionMachine(t, tt.inner)
			l := &sessionLog{m: m}
			l.apply([]byte("a"), 0)
			l.apply([]byte("b"), 0)
			var want bytes.Buffer
			if err := m.Snapshot(&want); err != nil {
				t.Fatal(err)
			}
			view, err := m.SnapshotView()
			if err != nil {
				t.Fatal(err)
			}
			l.apply([]byte("c"), 0) // after the view: must not show in it
			var got bytes.Buffer
			if err := view.WriteSnapshot(&got); err != nil {
				t.Fatal(err)
			}
			view.Release()
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Fatalf("view wrote %q; want the snapshot of that moment %q", got.Bytes(), want.Bytes())
			}
			restored := newSessionMachine(t, &recordSM{})
			if err := restored.Restore(bytes.NewReader(got.Bytes())); err != nil {
				t.Fatalf("Restore(view) = %v", err)
			}
			if inner := restored.sm.(*recordSM); !slices.Equal(inner.applied, []string{"a", "b"}) {
				t.Errorf("restored wrapped state %q; want [a b]", inner.applied)
			}
			if v, ok := tt.inner.(*viewRecordSM); ok && v.released != 1 {
				t.Errorf("wrapped view released %d times; want 1", v.released)
			}
		})
	}
}
