package txn_test

import (
	"context"
	"errors"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"

	"github.com/distkit/distkit/txn"
)

func TestStorePrepareVotes(t *testing.T) {
	tests := []struct {
		name    string
		ops     []txn.Op
		wantErr error
	}{
		{"credit", []txn.Op{{Kind: txn.OpAdd, Key: "a", Amount: 5}}, nil},
		{"debit within balance", []txn.Op{{Kind: txn.OpAdd, Key: "a", Amount: -10}}, nil},
		{"overdraft", []txn.Op{{Kind: txn.OpAdd, Key: "a", Amount: -11}}, txn.ErrInsufficientFunds},
		{"put then debit", []txn.Op{{Kind: txn.OpPut, Key: "a", Amount: 3}, {Kind: txn.OpAdd, Key: "a", Amount: -3}}, nil},
		{"locked key", []txn.Op{{Kind: txn.OpAdd, Key: "held", Amount: 1}}, txn.ErrLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := txn.NewStore()
			s.Set("a", 10)
			holdOps, _ := txn.EncodeOps(txn.Op{Kind: txn.OpPut, Key: "held", Amount: 1})
			if _, err := s.Prepare(context.Background(), uuid.New(), holdOps); err != nil {
				t.Fatal(err)
			}
			ops, err := txn.EncodeOps(tt.ops...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.Prepare(context.Background(), uuid.New(), ops)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Prepare(%v) = %v; want %v", tt.ops, err, tt.wantErr)
			}
			if got, _ := s.Get("a"); got != 10 {
				t.Fatalf("Get(a) after Prepare = %d; want 10 (prepare must not change committed state)", got)
			}
		})
	}
}

func TestEncodeOpsRejects(t *testing.T) {
	tests := []struct {
		name string
		op   txn.Op
	}{
		{"no kind", txn.Op{Key: "a"}},
		{"empty key", txn.Op{Kind: txn.OpAdd}},
	}
	for _, tt := range tests {
		if _, err := txn.EncodeOps(tt.op); !errors.Is(err, txn.ErrInvalid) {
			t.Errorf("%s: EncodeOps = %v; want ErrInvalid", tt.name, err)
		}
	}
}

// TestStoreAgainstModel runs random prepare/commit/abort sequences on a
// Store and on a plain map, and checks that committed values, snapshots and
// recovery agree.
func TestStoreAgainstModel(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		s := txn.NewStore()
		model := map[string]int64{}
		type prep struct {
			id     uuid.UUID
			intent []byte
			next   map[string]int64
		}
		var open []prep
		keys := []string{"a", "b", "c"}
		var committed []txn.Intent
		for range 200 {
			switch rng.IntN(3) {
			case 0: // prepare
				id := uuid.New()
				k := keys[rng.IntN(len(keys))]
				amt := rng.Int64N(21) - 10
				ops, _ := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: k, Amount: amt})
				intent, err := s.Prepare(context.Background(), id, ops)
				locked := false
				for _, p := range open {
					if _, ok := p.next[k]; ok {
						locked = true
					}
				}
				wantOK := !locked && model[k]+amt >= 0
				if (err == nil) != wantOK {
					t.Fatalf("seed %d: Prepare(%s %+d) = %v; model says ok=%v", seed, k, amt, err, wantOK)
				}
				if err == nil {
					open = append(open, prep{id: id, intent: intent, next: map[string]int64{k: model[k] + amt}})
				}
			case 1, 2: // commit or abort the oldest
				if len(open) == 0 {
					continue
				}
				p := open[0]
				open = open[1:]
				if rng.IntN(2) == 0 {
					if err := s.Commit(p.id, p.intent); err != nil {
						t.Fatal(err)
					}
					maps.Copy(model, p.next)
					committed = append(committed, txn.Intent{Txn: p.id, Data: p.intent})
				} else if err := s.Abort(p.id, p.intent); err != nil {
					t.Fatal(err)
				}
			}
		}
		for k, v := range model {
			if got, _ := s.Get(k); got != v {
				t.Fatalf("seed %d: Get(%s) = %d; want %d", seed, k, got, v)
			}
		}
		// Recovery from nothing plus the committed intents gives the same state.
		r := txn.NewStore()
		var inDoubt []txn.Intent
		for _, p := range open {
			inDoubt = append(inDoubt, txn.Intent{Txn: p.id, Data: p.intent})
		}
		if err := r.Recover(txn.Recovery{Committed: committed, InDoubt: inDoubt}); err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(r.Values(), s.Values()) || r.Locked() != s.Locked() {
			t.Fatalf("seed %d: recovered %v (%d locks); want %v (%d locks)", seed, r.Values(), r.Locked(), s.Values(), s.Locked())
		}
		snap, _ := s.Snapshot()
		r2 := txn.NewStore()
		if err := r2.Recover(txn.Recovery{Snapshot: snap}); err != nil || !maps.Equal(r2.Values(), s.Values()) {
			t.Fatalf("seed %d: from snapshot %v, %v; want %v", seed, r2.Values(), err, s.Values())
		}
	}
}

func TestConfigValidate(t *testing.T) {
	mut := func(f func(*txn.Config)) txn.Config {
		c := txn.DefaultConfig()
		f(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  txn.Config
		ok   bool
	}{
		{"default", txn.DefaultConfig(), true},
		{"zero vote timeout", mut(func(c *txn.Config) { c.VoteTimeout = 0 }), false},
		{"zero retry", mut(func(c *txn.Config) { c.RetryInterval = 0 }), false},
		{"ttl below vote timeout", mut(func(c *txn.Config) { c.FinishedTTL = c.VoteTimeout }), false},
		{"zero checkpoint", mut(func(c *txn.Config) { c.CheckpointEvery = 0 }), false},
		{"zero tick", mut(func(c *txn.Config) { c.TickInterval = 0 }), false},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, txn.ErrInvalid)) {
			t.Errorf("%s: Validate() = %v; want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// TestZeroStore: a zero Store works like NewStore's, without panicking.
func TestZeroStore(t *testing.T) {
	var s txn.Store
	if got, ok := s.Get("a"); ok || got != 0 {
		t.Fatalf("Get on a zero Store = %d, %v; want 0, false", got, ok)
	}
	s.Set("a", 5)
	ops, err := txn.EncodeOps(txn.Op{Kind: txn.OpAdd, Key: "a", Amount: -2})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	intent, err := s.Prepare(context.Background(), id, ops)
	if err != nil {
		t.Fatalf("Prepare = %v; want a YES vote", err)
	}
	if err := s.Commit(id, intent); err != nil {
		t.Fatalf("Commit = %v", err)
	}
	if got, _ := s.Get("a"); got != 3 {
		t.Fatalf("a = %d after the commit; want 3", got)
	}
	var r txn.Store
	if err := r.Recover(txn.Recovery{}); err != nil || r.Locked() != 0 {
		t.Fatalf("Recover on a zero Store = %v, %d locks; want nil, 0", err, r.Locked())
	}
}
