// Command lock shows distributed locks with fencing tokens on a replicated
// lock service.
//
// Three lock servers run a Raft-replicated lock table over an in-process
// network. Four workers sell a shared inventory one item at a time: each
// takes the lock, reads the count, and writes the count minus one, tagging
// the write with the grant's fencing token; the inventory store rejects any
// token lower than one it has seen. Midway the lock cluster's leader is
// killed, and a worker is paused (think: a long GC pause) between reading
// and writing for longer than its lease. The lock passes on while it
// sleeps, and when it wakes its write is rejected by its token. The
// program ends with the count at exactly zero: no item sold twice.
//
//	go run ./examples/lock
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/examples/internal/cli"
	"github.com/distkit/distkit/lock"
	"github.com/distkit/distkit/transport"
	"github.com/distkit/distkit/transport/memnet"
)

// parseFlags accepts only -h: the demo is fixed. It reports flag.ErrHelp
// for -h and an error for anything else, after printing the usage.
func parseFlags(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("lock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: go run ./examples/lock")
		fmt.Fprintln(stderr, "Sells an inventory through a three-node replicated lock service, kills its leader and shows a paused worker's stale write rejected by its fencing token.")
		fs.PrintDefaults()
	}
	return cli.Parse(fs, args)
}

func main() {
	if err := parseFlags(os.Args[1:], os.Stderr); err != nil {
		os.Exit(cli.ExitCode(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := run(ctx, os.Stdout, defaultSettings())
	if err != nil {
		fmt.Fprintln(os.Stderr, "lock:", err)
		os.Exit(1)
	}
	if res.final != 0 || res.stale == 0 {
		fmt.Fprintf(os.Stderr, "lock: unexpected outcome: %+v\n", res)
		os.Exit(1)
	}
}

// settings are the demo's knobs.
type settings struct {
	items     int           // initial inventory
	workers   int           // concurrent sellers
	ttl       time.Duration // session lease
	pause     time.Duration // the paused worker's stall (longer than ttl)
	work      time.Duration // time a sale takes under the lock
	killAfter int           // kill the lock leader after this many sales
	pauseAt   int           // pause the worker making this sale
}

func defaultSettings() settings {
	return settings{items: 20, workers: 4, ttl: time.Second, pause: 1500 * time.Millisecond, work: 5 * time.Millisecond,
		killAfter: 6, pauseAt: 12}
}

// result is what the demo observed.
type result struct {
	final int // inventory count at the end
	sold  int // accepted writes
	stale int // writes rejected by their token
}

// inventory is the protected resource: a counter whose writes carry a
// fencing token, checked atomically with the write.
type inventory struct {
	mu    sync.Mutex // guards count and fence's check+write pairs
	count int
	fence lock.Fence
}

func (inv *inventory) read() int {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	return inv.count
}

func (inv *inventory) write(token lock.Token, count int) error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if err := inv.fence.Check(token); err != nil {
		return err
	}
	inv.count = count
	return nil
}

var servers = []transport.NodeID{"lock1", "lock2", "lock3"}

// cluster is the replicated lock service.
type cluster struct {
	net     *memnet.Network
	members map[transport.NodeID]*member
}

type member struct {
	tr  transport.Transport
	rpc *transport.RPC
	srv *lock.Server
}

func startCluster(net *memnet.Network) (*cluster, error) {
	c := &cluster{net: net, members: map[transport.NodeID]*member{}}
	for i, id := range servers {
		tr, err := net.Join(id)
		if err != nil {
			return nil, err
		}
		rpc, err := transport.NewRPC(tr, transport.DefaultRPCConfig())
		if err != nil {
			return nil, err
		}
		cfg := lock.DefaultServerConfig()
		cfg.Consensus.ID = id
		cfg.Consensus.Peers = servers
		cfg.Consensus.Seed = uint64(i + 1)
		cfg.TickInterval = 20 * time.Millisecond
		cfg.WaitPoll = 200 * time.Millisecond
		srv, err := lock.NewServer(cfg, tr, rpc)
		if err != nil {
			return nil, err
		}
		c.members[id] = &member{tr: tr, rpc: rpc, srv: srv}
	}
	return c, nil
}

// leader waits for a member to lead.
func (c *cluster) leader(ctx context.Context) (transport.NodeID, error) {
	for {
		for _, id := range servers {
			if m := c.members[id]; m != nil && m.srv.Node().Status().Role == raft.Leader {
				return id, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no leader: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// kill stops a member as if its machine died.
func (c *cluster) kill(id transport.NodeID) {
	if m := c.members[id]; m != nil {
		c.net.Crash(id)
		m.srv.Close()
		m.rpc.Close()
		m.tr.Close()
		delete(c.members, id)
	}
}

func (c *cluster) close() {
	for _, id := range servers {
		c.kill(id)
	}
}

// demo is the shared state of one run.
type demo struct {
	s   settings
	out io.Writer
	inv *inventory
	net *memnet.Network

	mu      sync.Mutex // guards sales, paused, res and output order
	sales   int
	paused  bool
	res     result
	killReq chan struct{} // closed when it is time to kill the leader
	killed  sync.Once
}

func (d *demo) printf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, format, args...)
}

func run(ctx context.Context, out io.Writer, s settings) (result, error) {
	net, err := memnet.New(memnet.DefaultConfig())
	if err != nil {
		return result{}, err
	}
	defer net.Close()
	c, err := startCluster(net)
	if err != nil {
		return result{}, err
	}
	defer c.close()
	first, err := c.leader(ctx)
	if err != nil {
		return result{}, err
	}
	fmt.Fprintf(out, "lock service up: %v, leader %s; inventory %d items, %d workers, lease %v\n",
		servers, first, s.items, s.workers, s.ttl)

	d := &demo{s: s, out: out, inv: &inventory{count: s.items}, net: net, killReq: make(chan struct{})}
	var wg sync.WaitGroup
	errc := make(chan error, s.workers) // one result per worker
	remotes := make([]*lock.Remote, s.workers)
	for w := range s.workers { // join everyone first, then start
		tr, err := net.Join(transport.NodeID(fmt.Sprint("worker", w+1)))
		if err != nil {
			return result{}, err
		}
		rpc, err := transport.NewRPC(tr, transport.DefaultRPCConfig())
		if err != nil {
			return result{}, err
		}
		defer tr.Close()
		defer rpc.Close()
		rcfg := lock.DefaultRemoteConfig()
		rcfg.Servers = servers
		rcfg.WaitPoll = 200 * time.Millisecond
		rcfg.AttemptTimeout = 100 * time.Millisecond // a dead server must cost far less than a lease
		if remotes[w], err = lock.NewRemote(rpc, rcfg); err != nil {
			return result{}, err
		}
	}
	for w, remote := range remotes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- d.work(ctx, fmt.Sprint("worker", w+1), remote)
		}()
	}
	workersDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(workersDone)
	}()
	// The killer: waits for its cue, then kills whoever leads.
	select {
	case <-workersDone:
	case <-d.killReq:
		leader, err := c.leader(ctx)
		if err != nil {
			return result{}, err
		}
		c.kill(leader)
		d.printf("*** lock leader %s killed; the survivors elect a new one and extend every lease\n", leader)
	case <-ctx.Done():
	}
	wg.Wait()
	for range s.workers {
		if err := <-errc; err != nil {
			return result{}, err
		}
	}
	d.res.final = d.inv.read()
	fmt.Fprintf(out, "sold %d items; inventory now %d (expected 0); stale writes rejected: %d\n",
		d.res.sold, d.res.final, d.res.stale)
	return d.res, nil
}

// work sells items until none are left. It opens a new session whenever
// its lease is lost.
func (d *demo) work(ctx context.Context, name string, svc lock.Service) error {
	cfg := lock.DefaultSessionConfig()
	cfg.TTL = d.s.ttl
	cfg.Owner = name
	for {
		sess, err := lock.NewSession(ctx, svc, cfg)
		if err != nil {
			return err
		}
		done, err := d.sell(ctx, name, sess)
		sess.Close()
		if done || err != nil {
			return err
		}
		d.printf("  %s: lease lost; opening a new session\n", name)
	}
}

// sell loops lock → read → write → unlock on one session; it returns
// done when the inventory is empty, or false when the lease was lost.
func (d *demo) sell(ctx context.Context, name string, sess *lock.Session) (done bool, err error) {
	for {
		g, err := sess.Lock(ctx, "inventory")
		if errors.Is(err, lock.ErrLeaseLost) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: lock: %w", name, err)
		}
		count := d.inv.read()
		if count == 0 {
			sess.Unlock(ctx, g)
			return true, nil
		}
		d.printf("%-8s granted token %2d, sees %2d items\n", name, g.Token, count)

		d.mu.Lock()
		d.sales++
		pause := d.sales == d.s.pauseAt && !d.paused
		d.paused = d.paused || pause
		if d.sales == d.s.killAfter {
			d.killed.Do(func() { close(d.killReq) })
		}
		d.mu.Unlock()
		time.Sleep(d.s.work) // processing the order
		if pause {
			// A stop-the-world pause freezes the whole process, keepalives
			// included: model it by cutting the worker off while it sleeps.
			d.printf("  %s: pauses for %v (longer than its %v lease) before writing\n", name, d.s.pause, d.s.ttl)
			d.net.Isolate(transport.NodeID(name))
			time.Sleep(d.s.pause)
			d.net.Heal()
		}
		err = d.inv.write(g.Token, count-1)
		d.mu.Lock()
		if err == nil {
			d.res.sold++
		} else {
			d.res.stale++
		}
		d.mu.Unlock()
		if err != nil {
			d.printf("  %s: write of %d with token %d REJECTED: %v\n", name, count-1, g.Token, err)
			return false, nil // the lease is gone too: start over
		}
		if err := sess.Unlock(ctx, g); err != nil && !errors.Is(err, lock.ErrNotHolder) {
			return false, fmt.Errorf("%s: unlock: %w", name, err)
		}
	}
}
