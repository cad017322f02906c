package clock

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// event is one step of a random execution, with every clock's reading.
type event struct {
	proc    int
	kind    string // "local", "send" or "recv"
	lamport uint64
	vector  *Vector
	hlc     Timestamp
}

// execution is a random run of n processes doing local, send and receive
// events, with messages delivered in random order, duplicated or never. hb[a][b] is
// the true happens-before relation, computed from the trace alone.
type execution struct {
	events []event
	hb     [][]bool
}

func randomExecution(t *testing.T, seed int64) *execution {
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	n := 2 + rng.IntN(5)
	steps := 10 + rng.IntN(60)

	lamports := make([]Lamport, n)
	vectors := make([]*Vector, n)
	hlcs := make([]*HLC, n)
	manuals := make([]*Manual, n)
	for p := range n {
		vectors[p] = NewVector()
		// Physical clocks with arbitrary skew that also jump backwards:
		// the HLC must satisfy the clock condition regardless.
		manuals[p] = NewManual(hlcEpoch.Add(time.Duration(rng.Int64N(int64(time.Second)))))
		hlcs[p] = newTestHLC(t, manuals[p], 24*time.Hour)
	}
	type message struct {
		to, sendEvent int
		lamport       uint64
		vector        *Vector
		hlc           Timestamp
	}
	var inflight []message
	ex := &execution{}
	last := make([]int, n) // index of each process's latest event, -1 if none
	for p := range last {
		last[p] = -1
	}
	for range steps {
		p := rng.IntN(n)
		for q := range manuals {
			manuals[q].Advance(time.Duration(rng.Int64N(int64(time.Millisecond))) - 200*time.Microsecond)
		}
		var mine []int // in-flight messages addressed to p
		for i, m := range inflight {
			if m.to == p {
				mine = append(mine, i)
			}
		}
		ev := event{proc: p}
		from := -1 // the send event this receive matches
		switch k := rng.IntN(3); {
		case k == 2 && len(mine) > 0:
			i := mine[rng.IntN(len(mine))]
			m := inflight[i]
			if rng.IntN(5) != 0 { // otherwise the network duplicates m: it stays in flight
				inflight = append(inflight[:i], inflight[i+1:]...)
			}
			ev.kind, from = "recv", m.sendEvent
			var err error
			if ev.lamport, err = lamports[p].Receive(m.lamport); err != nil {
				t.Fatalf("Lamport.Receive: %v", err)
			}
			vectors[p].Receive(NodeID(fmt.Sprint("p", p)), m.vector)
			if ev.hlc, err = hlcs[p].Update(m.hlc); err != nil {
				t.Fatalf("HLC.Update: %v", err)
			}
		case k == 1:
			ev.kind = "send"
			ev.lamport = lamports[p].Send()
			vectors[p].Tick(NodeID(fmt.Sprint("p", p)))
			ev.hlc = hlcs[p].Now()
			inflight = append(inflight, message{
				to: rng.IntN(n), sendEvent: len(ex.events),
				lamport: ev.lamport, vector: vectors[p].Copy(), hlc: ev.hlc,
			})
		default:
			ev.kind = "local"
			ev.lamport = lamports[p].Tick()
			vectors[p].Tick(NodeID(fmt.Sprint("p", p)))
			ev.hlc = hlcs[p].Now()
		}
		ev.vector = vectors[p].Copy()

		// The true happens-before relation: everything before the previous
		// event of the same process (rule 1) and, for a receive, everything
		// before the matching send (rule 2), closed transitively (rule 3).
		e := len(ex.events)
		row := make([]bool, e+1)
		for _, pred := range []int{last[p], from} {
			if pred < 0 {
				continue
			}
			row[pred] = true
			for a := range pred {
				row[a] = row[a] || ex.hb[a][pred]
			}
		}
		for a := range ex.hb {
			ex.hb[a] = append(ex.hb[a], row[a])
		}
		ex.hb = append(ex.hb, make([]bool, e+1))
		ex.events = append(ex.events, ev)
		last[p] = e
	}
	return ex
}

// TestRandomExecutions checks the clocks against the true happens-before
// relation of random executions:
//
//   - Lamport clocks and HLCs satisfy the clock condition a → b ⇒ C(a) < C(b),
//     and Stamps order every pair of distinct events consistently with it;
//   - vector clocks satisfy the strong clock condition: VC(a) < VC(b) ⇔ a → b,
//     Concurrent exactly when neither a → b nor b → a, Equal only for a = b.
//
// Replay a failure with go test -run 'TestRandomExecutions/seed=N$'.
func TestRandomExecutions(t *testing.T) {
	for seed := range int64(seedCount(300, 20000)) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			ex := randomExecution(t, seed)
			for a, ea := range ex.events {
				for b, eb := range ex.events {
					checkPair(t, ex, a, b, ea, eb)
				}
			}
		})
	}
}

func checkPair(t *testing.T, ex *execution, a, b int, ea, eb event) {
	t.Helper()
	hb, rev := ex.hb[a][b], ex.hb[b][a]
	if hb && rev {
		t.Fatalf("reference relation has a cycle between events %d and %d", a, b)
	}
	if hb && ea.lamport >= eb.lamport {
		t.Errorf("event %d → event %d but Lamport %d ≥ %d", a, b, ea.lamport, eb.lamport)
	}
	if hb && !ea.hlc.Less(eb.hlc) {
		t.Errorf("event %d → event %d but HLC %v ≥ %v", a, b, ea.hlc, eb.hlc)
	}
	sa := Stamp{ea.lamport, NodeID(fmt.Sprint("p", ea.proc))}
	sb := Stamp{eb.lamport, NodeID(fmt.Sprint("p", eb.proc))}
	if a != b && sa.Compare(sb) == 0 {
		t.Errorf("events %d and %d share Stamp %v; want a total order", a, b, sa)
	}
	var want Ordering
	switch {
	case a == b:
		want = Equal
	case hb:
		want = Before
	case rev:
		want = After
	default:
		want = Concurrent
	}
	if got := ea.vector.Compare(eb.vector); got != want {
		t.Errorf("event %d %v vs event %d %v: Compare = %v; want %v (hb %v, reverse %v)", a, ea.vector, b, eb.vector, got, want, hb, rev)
	}
}

// TestRandomExecutionsHaveConcurrency guards the property test against a
// generator that never produces the interesting cases.
func TestRandomExecutionsHaveConcurrency(t *testing.T) {
	var ordered, concurrent, sameLamportConcurrent int
	for seed := range int64(50) {
		ex := randomExecution(t, seed)
		for a := range ex.events {
			for b := a + 1; b < len(ex.events); b++ {
				switch {
				case ex.hb[a][b] || ex.hb[b][a]:
					ordered++
				case ex.events[a].lamport == ex.events[b].lamport:
					sameLamportConcurrent++
					concurrent++
				default:
					concurrent++
				}
			}
		}
	}
	if ordered == 0 || concurrent == 0 || sameLamportConcurrent == 0 {
		t.Errorf("over 50 seeds: %d ordered, %d concurrent, %d concurrent with equal Lamport times; want all > 0",
			ordered, concurrent, sameLamportConcurrent)
	}
}
