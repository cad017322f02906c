package consensus

import (
	"errors"
	"fmt"
)

// Sentinel errors of DiskStorage. Compare with errors.Is.
var (
	// ErrCorrupt is wrapped by OpenDiskStorage's error when the data
	// directory is damaged in a way a crash cannot explain: a log record
	// that went bad after it was made durable (the wal's *CorruptError,
	// naming the file and offset, is in the chain too), an unreadable hard
	// state or snapshot file, or a missing hard state
	// (ErrMissingHardState). Such a node must not start: it would forget
	// acknowledged entries or its vote. See the package documentation for
	// the recovery steps.
	ErrCorrupt = errors.New("consensus: corrupt storage")
	// ErrMissingHardState is returned by OpenDiskStorage for a data
	// directory whose log or snapshot holds entries but whose hard state
	// file is gone: starting would forget the term and vote (§5.2: at most
	// one vote per term). It wraps ErrCorrupt.
	ErrMissingHardState = fmt.Errorf("%w: the log holds entries but the hard state file is missing", ErrCorrupt)
	// ErrLocked is returned by OpenDiskStorage (and New) when another
	// DiskStorage, in this process or another, holds the data directory.
	// The error names the holder's pid when it is known. New takes the
	// lock before it reads or writes anything in the directory.
	ErrLocked = errors.New("consensus: data directory is in use")
)
