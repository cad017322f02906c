package tcp

import (
	"errors"
	"fmt"

	"github.com/distkit/distkit/transport"
)

// ListenMesh starts one transport per configuration and tells every
// transport the address of every other, so the returned transports form a
// full mesh. It is meant for clusters in one process (tests, benchmarks,
// demos): each configuration should let the system choose the port, as
// DefaultConfig's "127.0.0.1:0" does. MeshConfigs builds such
// configurations from node IDs.
//
// On error every transport already started is closed. The caller owns the
// returned transports and closes them.
func ListenMesh(cfgs ...Config) ([]*Transport, error) {
	ts := make([]*Transport, 0, len(cfgs))
	fail := func(err error) ([]*Transport, error) {
		for _, t := range ts {
			err = errors.Join(err, t.Close())
		}
		return nil, err
	}
	for _, cfg := range cfgs {
		t, err := Listen(cfg)
		if err != nil {
			return fail(fmt.Errorf("tcp: mesh: %s: %w", cfg.ID, err))
		}
		ts = append(ts, t)
	}
	for _, a := range ts {
		for _, b := range ts {
			if a == b {
				continue
			}
			if err := a.AddPeer(b.ID(), b.Addr().String()); err != nil {
				return fail(fmt.Errorf("tcp: mesh: %w", err))
			}
		}
	}
	return ts, nil
}

// MeshConfigs returns one configuration per id: base with its ID set to that
// id, then passed to mutate (if not nil), which may adjust it per node (for
// example to give each node its own TLS certificate).
func MeshConfigs(base Config, mutate func(*Config), ids ...transport.NodeID) []Config {
	cfgs := make([]Config, len(ids))
	for i, id := range ids {
		cfgs[i] = base
		cfgs[i].ID = id
		if mutate != nil {
			mutate(&cfgs[i])
		}
	}
	return cfgs
}
