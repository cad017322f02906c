package hashring

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

func TestJumpBadInput(t *testing.T) {
	tests := []struct {
		name    string
		buckets int
	}{
		{"zero", 0},
		{"negative", -1},
		{"too many", MaxBuckets + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Jump(42, tt.buckets); !errors.Is(err, ErrInvalidCount) {
				t.Fatalf("Jump(42, %d) error = %v; want ErrInvalidCount", tt.buckets, err)
			}
		})
	}
	if _, err := (JumpNodes{}).Locate("k"); !errors.Is(err, ErrEmpty) {
		t.Fatalf("JumpNodes{}.Locate error = %v; want ErrEmpty", err)
	}
}

// TestJumpKnownValues pins outputs of the paper's algorithm for fixed inputs
// (computed independently with a Python transcription of Figure 1), so a change
// to the loop is caught.
func TestJumpKnownValues(t *testing.T) {
	tests := []struct {
		key     uint64
		buckets int
		want    int
	}{
		{0, 1, 0},
		{0, 100, 0},
		{1, 1, 0},
		{math.MaxUint64, 1, 0},
		{1, 100, 55},
		{42, 10, 2},
		{42, 1000, 571},
		{3735928559, 7, 5},
		{9223372036854775813, 1048576, 877767},
		{123456789, 1000003, 561473},
		{math.MaxUint64, 16, 10},
	}
	for _, tt := range tests {
		if got, _ := Jump(tt.key, tt.buckets); got != tt.want {
			t.Errorf("Jump(%d, %d) = %d; want %d", tt.key, tt.buckets, got, tt.want)
		}
	}
}

// TestJumpMonotone checks Jump's defining property over many keys: growing
// from n to n+1 buckets moves a key only to the new bucket, about 1/(n+1) of
// them, and results stay in range.
func TestJumpMonotone(t *testing.T) {
	const keys = 20000
	for _, n := range []int{1, 9, 10, 99} {
		moved := 0
		for k := range keys {
			h := hashKey(fmt.Sprint(k))
			a, _ := Jump(h, n)
			b, _ := Jump(h, n+1)
			if a < 0 || a >= n || b < 0 || b > n {
				t.Fatalf("Jump(%d, %d/%d) = %d/%d out of range", h, n, n+1, a, b)
			}
			if a != b {
				moved++
				if b != n {
					t.Fatalf("key %d moved from %d to %d; want only to the new bucket %d", k, a, b, n)
				}
			}
		}
		frac, want := float64(moved)/keys, 1/float64(n+1)
		if math.Abs(frac-want) > 0.25*want+0.005 {
			t.Errorf("%d→%d buckets moved %.4f of keys; want about %.4f", n, n+1, frac, want)
		}
	}
}

func TestJumpBalance(t *testing.T) {
	nodes := make(JumpNodes, 10)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("shard-%d", i)
	}
	d, err := MeasureDistribution(nodes, nodes, SequentialKeys(200_000))
	if err != nil {
		t.Fatal(err)
	}
	if d.StdDevPercent > 2 {
		t.Errorf("jump std-dev = %.2f%% of mean; want ≤ 2%% (it is near perfect)", d.StdDevPercent)
	}
}
