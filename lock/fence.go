package lock

import (
	"fmt"
	"sync"
)

// Fence guards a resource against writes from stale lock holders. The
// resource checks the fencing token of every write: a token lower than the
// highest it has accepted comes from a holder whose lease has expired and
// whose lock has been granted to someone else since (Kleppmann, "How to do
// distributed locking", 2016; Chubby's sequencers). Equal tokens are
// accepted: one holder may write many times.
//
// The check and the write must be atomic at the resource: call Check under
// the same lock (or in the same transaction) as the write it guards.
//
// The zero Fence accepts any token. A Fence is safe for concurrent use.
type Fence struct {
	mu      sync.Mutex // guards highest
	highest Token
}

// Check accepts token if it is at least the highest accepted so far, and
// remembers it; otherwise it fails with an error wrapping ErrStaleToken.
func (f *Fence) Check(token Token) error {
	if f == nil {
		return fmt.Errorf("%w: nil *Fence (its zero value is ready to use)", ErrInvalidArgument)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if token < f.highest {
		return fmt.Errorf("%w: %d after %d", ErrStaleToken, token, f.highest)
	}
	f.highest = token
	return nil
}

// Highest returns the highest token accepted so far.
func (f *Fence) Highest() Token {
	if f == nil {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.highest
}
