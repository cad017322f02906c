package hashring

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// tableLocator maps keys through a fixed table; unknown keys fail.
type tableLocator map[string]string

func (t tableLocator) Locate(key string) (string, error) {
	if n, ok := t[key]; ok {
		return n, nil
	}
	return "", ErrEmpty
}

func TestMeasureDistribution(t *testing.T) {
	l := tableLocator{"a": "x", "b": "x", "c": "x", "d": "y"}
	d, err := MeasureDistribution(l, []string{"x", "y", "z"}, slices.Values([]string{"a", "b", "c", "d"}))
	if err != nil {
		t.Fatal(err)
	}
	// loads 3, 1, 0: mean 4/3, population std-dev √(14/9)… computed directly.
	mean := 4.0 / 3
	std := math.Sqrt(((3-mean)*(3-mean) + (1-mean)*(1-mean) + mean*mean) / 3)
	tests := []struct {
		name      string
		got, want float64
	}{
		{"Keys", float64(d.Keys), 4},
		{"Nodes", float64(d.Nodes), 3},
		{"Min", float64(d.Min), 0},
		{"Max", float64(d.Max), 3},
		{"Mean", d.Mean, mean},
		{"StdDev", d.StdDev, std},
		{"StdDevPercent", d.StdDevPercent, 100 * std / mean},
		{"MaxPercent", d.MaxPercent, 100 * 3 / mean},
	}
	for _, tt := range tests {
		if math.Abs(tt.got-tt.want) > 1e-9 {
			t.Errorf("%s = %v; want %v", tt.name, tt.got, tt.want)
		}
	}
	if _, err := MeasureDistribution(l, nil, slices.Values([]string{"nope"})); !errors.Is(err, ErrEmpty) {
		t.Errorf("MeasureDistribution with a failing key: %v; want ErrEmpty", err)
	}
	if d, err := MeasureDistribution(l, nil, SequentialKeys(0)); err != nil || d.Nodes != 0 {
		t.Errorf("MeasureDistribution of nothing = %+v, %v; want an empty result", d, err)
	}
}

func TestMeasureMovement(t *testing.T) {
	before := tableLocator{"a": "x", "b": "x", "c": "y", "d": "y"}
	after := tableLocator{"a": "x", "b": "z", "c": "z", "d": "y"}
	m, err := MeasureMovement(before, after, slices.Values([]string{"a", "b", "c", "d"}))
	if err != nil {
		t.Fatal(err)
	}
	if m.Keys != 4 || m.Moved != 2 || m.Fraction != 0.5 || m.To["z"] != 2 || m.From["x"] != 1 || m.From["y"] != 1 {
		t.Errorf("MeasureMovement = %+v; want 2 of 4 moved, x→z and y→z", m)
	}
	if _, err := MeasureMovement(before, after, slices.Values([]string{"q"})); !errors.Is(err, ErrEmpty) {
		t.Errorf("MeasureMovement with a failing key: %v; want ErrEmpty", err)
	}
	if _, err := MeasureMovement(tableLocator{"q": "x"}, after, slices.Values([]string{"q"})); !errors.Is(err, ErrEmpty) {
		t.Errorf("MeasureMovement failing after: %v; want ErrEmpty", err)
	}
}

func TestSequentialKeys(t *testing.T) {
	got := slices.Collect(SequentialKeys(3))
	if want := []string{"key-0", "key-1", "key-2"}; !slices.Equal(got, want) {
		t.Errorf("SequentialKeys(3) = %v; want %v", got, want)
	}
	for k := range SequentialKeys(10) { // early break must be honoured
		if k == "key-1" {
			break
		}
	}
}
