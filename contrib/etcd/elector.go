package dketcd

import (
	"fmt"

	"github.com/distkit/distkit/lock"
)

// NewElector returns an election.Elector on etcd: lock.Elector (to
// campaign is to acquire the election lock, FIFO by create revision; the
// leadership's epoch is the grant's fencing token, the lock key's create
// revision; losing the session's lease is losing the leadership) over the
// Service svc. Close it before closing svc's client.
func NewElector(svc *Service, cfg lock.ElectorConfig) (*lock.Elector, error) {
	if svc == nil || svc.client == nil {
		return nil, fmt.Errorf("%w: nil Service", ErrInvalidConfig)
	}
	return lock.NewElector(svc, cfg)
}
