package hashring

import "fmt"

const (
	// DefaultVirtualNodes is the number of ring points a node of weight 1
	// gets by default. With it the load of equal nodes has a standard
	// deviation of about 1/√(2·160) ≈ 5.6% of the mean (see the package
	// doc).
	DefaultVirtualNodes = 160

	// MaxVirtualNodes bounds Config.VirtualNodes.
	MaxVirtualNodes = 1 << 16

	// MaxPointsPerNode bounds the points of one node (weight × VirtualNodes).
	MaxPointsPerNode = 1 << 20

	// MaxPoints bounds the points of a whole ring, so that point indexes fit
	// in 32 bits with room to spare and memory stays predictable
	// (32 bytes per point plus the lookup index).
	MaxPoints = 1 << 26
)

// Config configures a Ring.
type Config struct {
	// VirtualNodes is the number of points a node of weight 1 gets on the
	// ring; a node of weight w gets round(w × VirtualNodes) points, and at
	// least one. More points even out the load (the standard deviation falls
	// as 1/√(2·VirtualNodes)) at the cost of memory and slower membership
	// changes; lookups stay constant-time thanks to the index. Must be in
	// [1, MaxVirtualNodes].
	VirtualNodes int
}

// DefaultConfig returns the configuration used by most callers:
// DefaultVirtualNodes points per unit of weight.
func DefaultConfig() Config {
	return Config{VirtualNodes: DefaultVirtualNodes}
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.VirtualNodes < 1 || c.VirtualNodes > MaxVirtualNodes {
		return fmt.Errorf("%w: VirtualNodes is %d, want 1..%d", ErrInvalidConfig, c.VirtualNodes, MaxVirtualNodes)
	}
	return nil
}
