package consensustest_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/distkit/distkit/consensus/consensustest"
)

// ExampleStart starts three nodes on an in-memory network, waits for a
// leader, writes through a client that finds the leader on its own, and
// reads the write on every node's state machine. In a test, pass the
// test's t to Start; an Example has none, so it brings a small TB.
func ExampleStart() {
	t := &exampleTB{}
	defer t.cleanup()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	c := consensustest.Start(t, 3)
	c.WaitLeader(ctx)
	res, err := c.Client().Propose(ctx, []byte("greeting=hello"))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, id := range c.IDs() {
		kv := c.KV(id)
		if err := kv.WaitApplied(ctx, res.(uint64)); err != nil {
			fmt.Println(err)
			return
		}
		v, _ := kv.Get("greeting")
		fmt.Println(id, v)
	}
	// Output:
	// n1 hello
	// n2 hello
	// n3 hello
}

// exampleTB is a consensustest.TB for an Example: it runs the cleanups
// at the end and panics on a fatal error.
type exampleTB struct {
	cleanups []func()
	dirs     []string
}

func (t *exampleTB) Helper()                   {}
func (t *exampleTB) Cleanup(f func())          { t.cleanups = append(t.cleanups, f) }
func (t *exampleTB) Errorf(f string, a ...any) { fmt.Printf(f+"\n", a...) }
func (t *exampleTB) Fatal(a ...any)            { panic(fmt.Sprint(a...)) }
func (t *exampleTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }

func (t *exampleTB) TempDir() string {
	dir, err := os.MkdirTemp("", "consensustest")
	if err != nil {
		panic(err)
	}
	t.dirs = append(t.dirs, dir)
	return dir
}

func (t *exampleTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
	for _, dir := range t.dirs {
		os.RemoveAll(dir)
	}
}
