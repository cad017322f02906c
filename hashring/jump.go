package hashring

import "fmt"

// MaxBuckets is the largest bucket count Jump accepts; the algorithm works
// on 32-bit bucket numbers.
const MaxBuckets = 1<<31 - 1

// Jump returns the bucket in [0, buckets) for key using Jump consistent hash
// (Lamping & Veach, "A Fast, Minimal Memory, Consistent Hash Algorithm",
// 2014). It needs no memory and balances almost perfectly, and growing from
// n to n+1 buckets moves exactly the expected 1/(n+1) of the keys, all to the
// new bucket. Buckets are numbers: only the last one can be removed without
// extra movement, so Jump suits numbered shards, not named servers that fail
// at random. key should already be a good hash (see JumpString). It returns
// ErrInvalidCount unless 1 ≤ buckets ≤ MaxBuckets.
func Jump(key uint64, buckets int) (int, error) {
	if buckets < 1 || buckets > MaxBuckets {
		return 0, fmt.Errorf("%w: %d buckets, want 1..%d", ErrInvalidCount, buckets, MaxBuckets)
	}
	return jump(key, buckets), nil
}

// JumpString is Jump of the xxhash64 of key.
func JumpString(key string, buckets int) (int, error) {
	return Jump(hashKey(key), buckets)
}

// jump is the loop of the paper's Figure 1: each step is a linear
// congruential step of key, and j jumps forward to the next bucket count at
// which this key would move (§3: the expected number of steps is ln n).
func jump(key uint64, buckets int) int {
	b, j := int64(-1), int64(0)
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

// JumpNodes adapts Jump to named nodes: bucket i is JumpNodes[i]. Appending
// a node or removing the last one moves the minimum of keys; removing any
// other node renumbers the ones after it and moves many keys, which is
// Jump's documented trade-off.
type JumpNodes []string

// Locate returns the node for key, or ErrEmpty if there are no nodes.
func (j JumpNodes) Locate(key string) (string, error) {
	if len(j) == 0 {
		return "", ErrEmpty
	}
	b, err := JumpString(key, len(j))
	if err != nil {
		return "", err
	}
	return j[b], nil
}
