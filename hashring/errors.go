package hashring

import "errors"

// Sentinel errors. Functions wrap them with %w and add the offending value, so
// compare with errors.Is.
var (
	// ErrEmpty is returned by lookups on a ring (or rendezvous set, or bounded
	// balancer) that has no nodes.
	ErrEmpty = errors.New("hashring: no nodes")

	// ErrInvalidConfig is returned by Config.Validate and constructors.
	ErrInvalidConfig = errors.New("hashring: invalid config")

	// ErrInvalidNode is returned for an empty node name.
	ErrInvalidNode = errors.New("hashring: invalid node name")

	// ErrInvalidWeight is returned for a weight that is not a finite number
	// greater than zero, or that would give a node more than MaxPointsPerNode
	// points.
	ErrInvalidWeight = errors.New("hashring: invalid weight")

	// ErrNodeExists is returned when adding a node that is already present.
	ErrNodeExists = errors.New("hashring: node already present")

	// ErrNodeNotFound is returned when removing or reweighting a node that is
	// not present.
	ErrNodeNotFound = errors.New("hashring: node not found")

	// ErrInvalidCount is returned for a negative replica count or a bucket
	// count outside [1, MaxBuckets].
	ErrInvalidCount = errors.New("hashring: invalid count")

	// ErrTooManyPoints is returned when a change would put more than
	// MaxPoints points on a ring.
	ErrTooManyPoints = errors.New("hashring: too many points")

	// ErrNotAssigned is returned by Bounded.Release for a key that holds no
	// assignment.
	ErrNotAssigned = errors.New("hashring: key not assigned")
)
