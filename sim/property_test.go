package sim_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/distkit/distkit/sim"
	"github.com/distkit/distkit/transport"
)

// diskModel is the dumb reference for Disk: for each file, what reads see
// and what survives a crash (without torn writes).
type diskModel struct {
	current, durable map[string][]byte
}

// TestDiskMatchesModel runs random operations against a Disk and the
// reference model and compares every read, listing and crash.
func TestDiskMatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		s, err := sim.New(sim.Config{Seed: 1})
		if err != nil {
			rt.Fatal(err)
		}
		if err := s.AddNode("a", func() sim.Node { return &recorder{} }); err != nil {
			rt.Fatal(err)
		}
		d := s.Disk("a")
		m := diskModel{current: map[string][]byte{}, durable: map[string][]byte{}}
		names := []string{"x", "y"}
		for step := range rapid.IntRange(1, 40).Draw(rt, "steps") {
			name := rapid.SampledFrom(names).Draw(rt, "file")
			data := rapid.SliceOfN(rapid.Byte(), 0, 8).Draw(rt, "data")
			_, exists := m.current[name]
			switch op := rapid.IntRange(0, 6).Draw(rt, "op"); op {
			case 0:
				if err := d.Append(name, data); err != nil {
					rt.Fatalf("step %d: Append: %v", step, err)
				}
				m.current[name] = append(slices.Clone(m.current[name]), data...)
			case 1:
				if err := d.WriteFile(name, data); err != nil {
					rt.Fatalf("step %d: WriteFile: %v", step, err)
				}
				m.current[name] = slices.Clone(data)
			case 2:
				err := d.Sync(name)
				if exists != (err == nil) {
					rt.Fatalf("step %d: Sync(%s) = %v with file present %v", step, name, err, exists)
				}
				if exists {
					m.durable[name] = slices.Clone(m.current[name])
				}
			case 3:
				size := int64(rapid.IntRange(0, 12).Draw(rt, "size"))
				err := d.Truncate(name, size)
				if exists != (err == nil) {
					rt.Fatalf("step %d: Truncate(%s) = %v with file present %v", step, name, err, exists)
				}
				if exists {
					cur := m.current[name]
					if int64(len(cur)) >= size {
						m.current[name] = slices.Clone(cur[:size])
					} else {
						m.current[name] = append(slices.Clone(cur), make([]byte, size-int64(len(cur)))...)
					}
				}
			case 4:
				err := d.Remove(name)
				if exists != (err == nil) {
					rt.Fatalf("step %d: Remove(%s) = %v with file present %v", step, name, err, exists)
				}
				delete(m.current, name)
				delete(m.durable, name) // removal is durable at once
			case 5:
				s.Crash("a")
				s.Restart("a")
				m.current = map[string][]byte{}
				for k, v := range m.durable {
					m.current[k] = slices.Clone(v)
				}
			case 6:
				// Mutating a returned buffer must not reach the disk.
				if got, err := d.ReadFile(name); err == nil && len(got) > 0 {
					got[0] ^= 0xff
				}
			}
			for _, n := range names {
				got, err := d.ReadFile(n)
				want, ok := m.current[n]
				if ok != (err == nil) || !bytes.Equal(got, want) {
					rt.Fatalf("step %d: ReadFile(%s) = %q, %v; want %q (present %v)", step, n, got, err, want, ok)
				}
				if !ok && !errors.Is(err, fs.ErrNotExist) {
					rt.Fatalf("step %d: ReadFile(%s) error %v; want fs.ErrNotExist", step, n, err)
				}
			}
			var want []string
			for n := range m.current {
				want = append(want, n)
			}
			slices.Sort(want)
			if got := d.List(); !slices.Equal(got, want) && len(got)+len(want) > 0 {
				rt.Fatalf("step %d: List() = %v; want %v", step, got, want)
			}
		}
	})
}

// chatter sends a random burst to random peers whenever a timer fires, and
// counts what it receives per sender, to check the network's bookkeeping.
type chatter struct {
	peers []transport.NodeID
	got   *map[transport.NodeID]int
}

func (c *chatter) Start(env sim.Env) {
	env.SetTimer(time.Duration(1+env.Rand().IntN(20))*time.Millisecond, "t")
}
func (c *chatter) Receive(env sim.Env, msg transport.Message) {
	(*c.got)[msg.To]++
}
func (c *chatter) Timer(env sim.Env, _ sim.TimerID, _ string) {
	for range env.Rand().IntN(4) {
		env.Send(c.peers[env.Rand().IntN(len(c.peers))], "chat", []byte("hi"))
	}
	env.SetTimer(time.Duration(1+env.Rand().IntN(20))*time.Millisecond, "t")
}

// TestNetworkBookkeeping drives random traffic through random faults,
// partitions, cuts and crashes, then lets the network drain and checks that
// every message is accounted for: sent + duplicated = delivered + dropped,
// per link and in total, and that nodes saw exactly what was delivered.
func TestNetworkBookkeeping(t *testing.T) {
	ids := []transport.NodeID{"a", "b", "c", "d"}
	sim.Seeds(t, 20, func(t *testing.T, seed int64) {
		s, err := sim.New(sim.Config{Seed: seed, Faults: lossy})
		if err != nil {
			t.Fatal(err)
		}
		got := map[transport.NodeID]int{}
		for _, id := range ids {
			if err := s.AddNode(id, func() sim.Node { return &chatter{peers: ids, got: &got} }); err != nil {
				t.Fatal(err)
			}
		}
		actions := []func(rng int){
			func(r int) { s.Partition(ids[:r%4]) },
			func(r int) { s.Cut(ids[r%4], ids[(r/4)%4]) },
			func(r int) { s.Crash(ids[r%4]) },
			func(r int) { s.Restart(ids[r%4]) },
			func(int) { s.Heal() },
			func(r int) { s.SetLinkFaults(ids[r%4], ids[(r/4)%4], sim.Faults{Drop: 0.5, MaxDelay: time.Second}) },
		}
		for i := range 30 {
			r := int(seed)*31 + i*17
			s.At(time.Duration(i)*50*time.Millisecond, func() { actions[r%len(actions)](r / 7) })
		}
		s.Run(2 * time.Second)
		// Stop the traffic and let everything in flight land.
		for _, id := range ids {
			s.Crash(id)
		}
		s.Run(10 * time.Second)
		if s.Step() {
			t.Fatalf("events remain after every node crashed and the network drained")
		}
		st := s.Stats()
		if st.Sent+st.Duplicated != st.Delivered+st.Dropped {
			t.Fatalf("Stats() = %+v; want sent+duplicated = delivered+dropped", st)
		}
		var sum sim.LinkStats
		for _, from := range ids {
			for _, to := range ids {
				ls := s.LinkStats(from, to)
				if ls.Sent+ls.Duplicated != ls.Delivered+ls.Dropped {
					t.Fatalf("LinkStats(%s, %s) = %+v; want sent+duplicated = delivered+dropped", from, to, ls)
				}
				sum.Sent += ls.Sent
				sum.Delivered += ls.Delivered
			}
		}
		received := 0
		for _, n := range got {
			received += n
		}
		if sum.Sent != st.Sent || sum.Delivered != st.Delivered || uint64(received) != st.Delivered {
			t.Fatalf("links sum to %+v, nodes received %d; want the totals %+v", sum, received, st)
		}
	})
}

func TestFaultsValidateSentinel(t *testing.T) {
	if err := (sim.Faults{Drop: 2}).Validate(); !errors.Is(err, sim.ErrInvalidFaults) {
		t.Fatalf("Validate() = %v; want ErrInvalidFaults", err)
	}
	s, err := sim.New(sim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetLinkFaults("a", "b", sim.Faults{MinDelay: 2, MaxDelay: 1})
	if err := s.Err(); !errors.Is(err, sim.ErrInvalidFaults) {
		t.Fatalf("Err() after SetLinkFaults with bad faults = %v; want ErrInvalidFaults", err)
	}
}

// TestSeedsFailingProperty is a property that fails for seed 3. It only runs
// when TestSeedsPrintsReplay starts this test binary again with
// DISTKIT_SIM_SELFTEST set.
func TestSeedsFailingProperty(t *testing.T) {
	if os.Getenv("DISTKIT_SIM_SELFTEST") == "" {
		t.Skip("run by TestSeedsPrintsReplay")
	}
	sim.Seeds(t, 5, func(t *testing.T, seed int64) {
		t.Logf("ran seed %d", seed)
		if seed == 3 {
			t.Fatalf("property violated")
		}
	})
}

// TestSeedsPrintsReplay checks the failure path of Seeds in a child process:
// it stops at the failing seed, prints the replay command, and that command
// runs only the failing seed.
func TestSeedsPrintsReplay(t *testing.T) {
	run := func(env ...string) string {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSeedsFailingProperty$", "-test.v")
		cmd.Env = append(os.Environ(), append([]string{"DISTKIT_SIM_SELFTEST=1", "DISTKIT_SOAK="}, env...)...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("child test passed; want it to fail:\n%s", out)
		}
		return string(out)
	}
	out := run("DISTKIT_SEED=")
	want := "replay with: DISTKIT_SEED=3 go test -run '^TestSeedsFailingProperty$'"
	if !strings.Contains(out, want) {
		t.Fatalf("output lacks %q:\n%s", want, out)
	}
	if strings.Contains(out, "ran seed 4") || !strings.Contains(out, "ran seed 2") {
		t.Fatalf("Seeds did not stop at the failing seed 3:\n%s", out)
	}
	out = run("DISTKIT_SEED=3")
	if !strings.Contains(out, "ran seed 3") || strings.Contains(out, "ran seed 1") {
		t.Fatalf("DISTKIT_SEED=3 did not run exactly seed 3:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("%s=3", sim.EnvSeed)) {
		t.Fatalf("replay run lacks the replay line:\n%s", out)
	}
}
