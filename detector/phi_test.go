package detector

import (
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

// Reference values of −log10 Q(y), computed with mpmath at 40 digits.
func TestPhiOfReference(t *testing.T) {
	tests := []struct {
		y, want float64
	}{
		{0, 0.3010299956639812},
		{1, 0.7995455414919705},
		{2, 1.643016080140937},
		{3, 2.8696990359293691},
		{6, 9.0058643274767042},
		{8, 15.206142551017155},
		{10, 23.118053405486076},
		{29.999, 197.29616619962135},
		{30, 197.30920926166095},
		{30.001, 197.32225275751566},
		{40, 349.43700645934584},
		{100, 2173.8715428690344},
	}
	for _, tt := range tests {
		got := phiOf(tt.y)
		if math.Abs(got-tt.want) > 1e-8*math.Max(1, tt.want) {
			t.Errorf("phiOf(%v) = %.17g; want %.17g", tt.y, got, tt.want)
		}
	}
}

// The seeded window is {750 ms, 1250 ms}: mean 1 s, σ 250 ms. After beats at
// +1 s and +2 s it is {750, 1250, 1000, 1000} ms: mean 1 s, σ = √31250 ms.
func TestPhiHandComputed(t *testing.T) {
	cfg := DefaultPhiConfig()
	d, err := NewPhiAccrual(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Phi(t0.Add(time.Hour)); got != 0 {
		t.Fatalf("Phi before any heartbeat = %v; want 0", got)
	}
	d.Heartbeat(t0)
	tests := []struct {
		name  string
		at    time.Duration
		want  float64
		beats []time.Duration
	}{
		{"seed, y=0", ms(1000), 0.3010299956639812, nil},
		{"seed, y=2", ms(1500), 1.643016080140937, nil},
		{"seed, y=3", ms(1750), 2.8696990359293691, nil},
		{"four samples, y=2√2", ms(3500), 2.6309943826220405, []time.Duration{ms(1000), ms(2000)}},
	}
	for _, tt := range tests {
		for _, b := range tt.beats {
			d.Heartbeat(t0.Add(b))
		}
		got := d.Phi(t0.Add(tt.at))
		if math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: Phi(t0+%v) = %.12f; want %.12f", tt.name, tt.at, got, tt.want)
		}
	}
}

// With every interval exactly 1 s the variance is 0 and MinStdDev (100 ms)
// takes over: 1.8 s after the last beat y = 8.
func TestPhiMinStdDev(t *testing.T) {
	cfg := DefaultPhiConfig()
	cfg.WindowSize = 2
	d, _ := NewPhiAccrual(cfg)
	for i := range 5 {
		d.Heartbeat(t0.Add(time.Duration(i) * time.Second))
	}
	if got, want := d.Stats().StdDev, 100*time.Millisecond; got != want {
		t.Fatalf("StdDev = %v; want the floor %v", got, want)
	}
	got := d.Phi(t0.Add(4*time.Second + ms(1800)))
	if want := 15.206142551017155; math.Abs(got-want) > 1e-9 {
		t.Fatalf("Phi = %.12f; want %.12f", got, want)
	}
}

func TestPhiMonotonic(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := DefaultPhiConfig()
		cfg.WindowSize = rapid.IntRange(2, 64).Draw(t, "window")
		cfg.AcceptablePause = time.Duration(rapid.Int64Range(0, int64(3*time.Second)).Draw(t, "pause"))
		d, err := NewPhiAccrual(cfg)
		if err != nil {
			t.Fatal(err)
		}
		at := t0
		for _, gap := range rapid.SliceOfN(rapid.Int64Range(1, int64(4*time.Second)), 0, 100).Draw(t, "gaps") {
			d.Heartbeat(at)
			at = at.Add(time.Duration(gap))
		}
		d.Heartbeat(at)
		prev := -1.0
		for _, step := range rapid.SliceOfN(rapid.Int64Range(0, int64(2*time.Second)), 1, 200).Draw(t, "steps") {
			at = at.Add(time.Duration(step))
			got := d.Phi(at)
			if got < prev || math.IsNaN(got) || math.IsInf(got, 0) {
				t.Fatalf("Phi(%v) = %v after %v; want finite and non-decreasing", at, got, prev)
			}
			prev = got
		}
	})
}

// TestPhiAdapts checks that the same silence is alarming for a fast peer
// and unremarkable once the peer has slowed down.
func TestPhiAdapts(t *testing.T) {
	cfg := DefaultPhiConfig()
	cfg.WindowSize = 20
	d, _ := NewPhiAccrual(cfg)
	at := t0
	beat := func(n int, every time.Duration) {
		for range n {
			d.Heartbeat(at)
			at = at.Add(every)
		}
		at = at.Add(-every) // at = the latest heartbeat
	}
	beat(40, time.Second)
	fast := d.Phi(at.Add(2500 * time.Millisecond))
	if fast < 8 {
		t.Fatalf("1 s heartbeats: Phi 2.5 s after the last = %v; want ≥ 8", fast)
	}
	at = at.Add(3 * time.Second)
	beat(40, 3*time.Second)
	slow := d.Phi(at.Add(2500 * time.Millisecond))
	if slow > 1 {
		t.Fatalf("3 s heartbeats: Phi 2.5 s after the last = %v; want ≤ 1", slow)
	}
	if got := d.Stats().Mean; got != 3*time.Second {
		t.Fatalf("Mean after the window turned over = %v; want 3s", got)
	}
}

func TestPhiAcceptablePause(t *testing.T) {
	base := DefaultPhiConfig()
	paused := base
	paused.AcceptablePause = 2 * time.Second
	strict, _ := NewPhiAccrual(base)
	lenient, _ := NewPhiAccrual(paused)
	for i := range 30 {
		at := t0.Add(time.Duration(i) * time.Second)
		strict.Heartbeat(at)
		lenient.Heartbeat(at)
	}
	last := t0.Add(29 * time.Second)
	// A 2.5 s silence: 1.5 s beyond the usual interval, within the pause.
	at := last.Add(2500 * time.Millisecond)
	if got := strict.Phi(at); got < 8 {
		t.Errorf("without a pause, Phi after 2.5 s = %v; want ≥ 8", got)
	}
	if got := lenient.Phi(at); got >= 1 {
		t.Errorf("with a 2 s pause, Phi after 2.5 s = %v; want < 1", got)
	}
	// Beyond the pause it still trips.
	if got := lenient.Phi(last.Add(5 * time.Second)); got < 8 {
		t.Errorf("with a 2 s pause, Phi after 5 s = %v; want ≥ 8", got)
	}
}

// Long silences are outages, not samples; stale timestamps are ignored.
func TestPhiIgnoresOutagesAndStaleBeats(t *testing.T) {
	d, _ := NewPhiAccrual(DefaultPhiConfig())
	d.Heartbeat(t0)
	d.Heartbeat(t0.Add(time.Second))
	before := d.Stats()
	d.Heartbeat(t0.Add(time.Minute))      // outage: not sampled
	d.Heartbeat(t0.Add(30 * time.Second)) // stale: ignored
	d.Heartbeat(t0.Add(time.Minute))      // duplicate: ignored
	after := d.Stats()
	if after.Samples != before.Samples || after.Mean != before.Mean {
		t.Fatalf("after an outage and stale beats: %d samples, mean %v; want %d, %v",
			after.Samples, after.Mean, before.Samples, before.Mean)
	}
	if got, want := after.LastHeartbeat, t0.Add(time.Minute); !got.Equal(want) {
		t.Fatalf("LastHeartbeat = %v; want %v", got, want)
	}
}

func TestPhiConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*PhiConfig)
	}{
		{"zero threshold", func(c *PhiConfig) { c.Threshold = 0 }},
		{"NaN threshold", func(c *PhiConfig) { c.Threshold = math.NaN() }},
		{"infinite threshold", func(c *PhiConfig) { c.Threshold = math.Inf(1) }},
		{"window 1", func(c *PhiConfig) { c.WindowSize = 1 }},
		{"window too big", func(c *PhiConfig) { c.WindowSize = maxWindowSize + 1 }},
		{"zero min std-dev", func(c *PhiConfig) { c.MinStdDev = 0 }},
		{"negative pause", func(c *PhiConfig) { c.AcceptablePause = -1 }},
		{"zero estimate", func(c *PhiConfig) { c.FirstHeartbeatEstimate = 0 }},
		{"max interval below estimate", func(c *PhiConfig) { c.MaxInterval = c.FirstHeartbeatEstimate }},
		{"max interval too long", func(c *PhiConfig) { c.MaxInterval = 100 * time.Hour }},
	}
	for _, tt := range tests {
		cfg := DefaultPhiConfig()
		tt.mutate(&cfg)
		_, err := NewPhiAccrual(cfg)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: NewPhiAccrual error = %v; want ErrInvalidConfig", tt.name, err)
		}
	}
	if err := DefaultPhiConfig().Validate(); err != nil {
		t.Fatalf("DefaultPhiConfig().Validate() = %v; want nil", err)
	}
}

// TestPhiTableAccuracy checks the interpolated φ against direct evaluation
// on a fine grid that covers the table, its edges and beyond, and that it
// never decreases.
func TestPhiTableAccuracy(t *testing.T) {
	tab := sharedPhiTable()
	prev := math.Inf(-1)
	const n = 200_000
	for i := range n + 1 {
		y := -12 + 56*float64(i)/n
		got, want := tab.at(y), phiOf(y)
		if math.Abs(got-want) > 5e-10 {
			t.Fatalf("table φ(%v) = %.15g; want %.15g (error %.3g)", y, got, want, got-want)
		}
		if got < prev {
			t.Fatalf("table φ(%v) = %v < φ at the previous point %v", y, got, prev)
		}
		prev = got
	}
}

// TestDetectorsConcurrent records heartbeats and reads φ and statuses from
// several goroutines at once; run with -race it proves the locking, and
// the results must still be sane.
func TestDetectorsConcurrent(t *testing.T) {
	phi, _ := NewPhiAccrual(DefaultPhiConfig())
	fixed, _ := NewFixedTimeout(DefaultTimeoutConfig())
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				at := t0.Add(time.Duration(i)*time.Second + time.Duration(g)*time.Millisecond)
				phi.Heartbeat(at)
				fixed.Heartbeat(at)
				if p := phi.Phi(at.Add(time.Second)); math.IsNaN(p) || p < 0 {
					t.Errorf("Phi = %v; want a non-negative number", p)
					return
				}
				fixed.Probe(at.Add(time.Second))
				_ = phi.Stats()
			}
		}()
	}
	wg.Wait()
	if got := fixed.Status(); got != Alive {
		t.Fatalf("fixed-timeout status after steady heartbeats = %v; want alive", got)
	}
	// Late reports are ignored, so the latest heartbeat is the latest ever.
	if got, want := phi.Stats().LastHeartbeat, t0.Add(1999*time.Second+3*time.Millisecond); !got.Equal(want) {
		t.Fatalf("LastHeartbeat = %v; want %v", got, want)
	}
}

// TestPhiSuspectAtThreshold: Suspect is true once φ has reached the
// threshold (φ ≥ threshold), not only beyond it. A second detector whose
// threshold is exactly the first one's φ at some instant, fed the same
// heartbeats, suspects at that instant and not a millisecond before.
func TestPhiSuspectAtThreshold(t *testing.T) {
	beats := []time.Duration{0, ms(1000), ms(2100), ms(2900), ms(4000)}
	feed := func(d *PhiAccrual) {
		for _, b := range beats {
			d.Heartbeat(t0.Add(b))
		}
	}
	ref, _ := NewPhiAccrual(DefaultPhiConfig())
	feed(ref)
	at := t0.Add(ms(5600))
	cfg := DefaultPhiConfig()
	cfg.Threshold = ref.Phi(at)
	d, err := NewPhiAccrual(cfg)
	if err != nil {
		t.Fatal(err)
	}
	feed(d)
	if got := d.Phi(at); got != cfg.Threshold {
		t.Fatalf("Phi = %v; want %v, the threshold (same heartbeats)", got, cfg.Threshold)
	}
	if !d.Suspect(at) {
		t.Errorf("Suspect with φ = threshold = %v is false; want true (φ ≥ threshold)", cfg.Threshold)
	}
	if d.Suspect(at.Add(-time.Millisecond)) {
		t.Errorf("Suspect 1 ms before φ reaches the threshold is true; want false")
	}
}

// TestPhiSamplesUpToMaxInterval: an interval of exactly MaxInterval is a
// sample; only a longer one is an outage left out of the window.
func TestPhiSamplesUpToMaxInterval(t *testing.T) {
	d, _ := NewPhiAccrual(DefaultPhiConfig()) // MaxInterval 10 s
	d.Heartbeat(t0)
	d.Heartbeat(t0.Add(10 * time.Second))
	if got, want := d.Stats().Samples, 3; got != want {
		t.Fatalf("after an interval of exactly MaxInterval, Samples = %d; want %d (the two seeds and it)", got, want)
	}
	d.Heartbeat(t0.Add(20*time.Second + 1))
	if got, want := d.Stats().Samples, 3; got != want {
		t.Fatalf("after an interval 1 ns above MaxInterval, Samples = %d; want %d (an outage, not sampled)", got, want)
	}
}

// TestPhiTouchIsNoSample: a sign of life that is not a heartbeat (an ack,
// a refutation) restarts φ, but neither the interval before it nor the
// one after it is sampled: it arrived off the heartbeat schedule.
func TestPhiTouchIsNoSample(t *testing.T) {
	d, _ := NewPhiAccrual(DefaultPhiConfig())
	d.Heartbeat(t0)
	d.Heartbeat(t0.Add(time.Second))
	before := d.Stats()
	late := t0.Add(ms(2500))
	untouched := d.Phi(late)
	d.touch(t0.Add(ms(1300)))
	if got := d.Phi(late); got >= untouched {
		t.Errorf("Phi(t0+2.5s) after a touch at t0+1.3s = %v; want below %v, its value timed from the heartbeat at t0+1s", got, untouched)
	}
	d.Heartbeat(t0.Add(2 * time.Second))
	if got := d.Stats(); got.Samples != before.Samples || got.Mean != before.Mean {
		t.Fatalf("after touch and a heartbeat 700 ms later: %d samples, mean %v; want %d, %v (not sampled)",
			got.Samples, got.Mean, before.Samples, before.Mean)
	}
	d.Heartbeat(t0.Add(3 * time.Second))
	if got, want := d.Stats().Samples, before.Samples+1; got != want {
		t.Fatalf("the next heartbeat interval: Samples = %d; want %d (sampled again)", got, want)
	}
}
