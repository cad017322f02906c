package detector

import (
	"errors"
	"testing"
	"time"
)

// TestFixedTimeoutScenario walks one peer through suspicion, failure,
// a flap that must not count as recovery, and recovery.
func TestFixedTimeoutScenario(t *testing.T) {
	d, err := NewFixedTimeout(DefaultTimeoutConfig()) // 3 s, 3 confirmations, 2 to recover
	if err != nil {
		t.Fatal(err)
	}
	sec := func(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Second))) }
	type step struct {
		beat  bool // a heartbeat at at; otherwise a probe at at
		at    float64
		want  Status
		descr string
	}
	steps := []step{
		{true, 0, Alive, "first heartbeat"},
		{false, 1, Alive, "probe within the timeout"},
		{false, 3, Alive, "probe exactly at the timeout"},
		{false, 4, Suspect, "first missed probe"},
		{true, 4.5, Alive, "a heartbeat clears suspicion"},
		{false, 8, Suspect, "missed 1"},
		{false, 9, Suspect, "missed 2"},
		{false, 10, Failed, "missed 3: confirmed"},
		{true, 11, Failed, "one heartbeat is not recovery"},
		{false, 15, Failed, "missed again: streak reset"},
		{true, 16, Failed, "streak 1"},
		{true, 17, Alive, "streak 2: recovered"},
	}
	for _, s := range steps {
		var got Status
		if s.beat {
			d.Heartbeat(sec(s.at))
			got = d.Status()
		} else {
			got = d.Probe(sec(s.at))
		}
		if got != s.want {
			t.Fatalf("%s (t=%vs): status = %v; want %v", s.descr, s.at, got, s.want)
		}
	}
}

// A peer never heard from is timed from the first probe.
func TestFixedTimeoutNeverHeard(t *testing.T) {
	cfg := DefaultTimeoutConfig()
	cfg.Confirmations = 1
	d, _ := NewFixedTimeout(cfg)
	if got := d.Probe(t0); got != Alive {
		t.Fatalf("first probe = %v; want alive", got)
	}
	if got := d.Probe(t0.Add(4 * time.Second)); got != Failed {
		t.Fatalf("probe 4 s later = %v; want failed", got)
	}
}

func TestTimeoutConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*TimeoutConfig)
	}{
		{"zero timeout", func(c *TimeoutConfig) { c.Timeout = 0 }},
		{"zero confirmations", func(c *TimeoutConfig) { c.Confirmations = 0 }},
		{"zero recovery confirmations", func(c *TimeoutConfig) { c.RecoveryConfirmations = 0 }},
	}
	for _, tt := range tests {
		cfg := DefaultTimeoutConfig()
		tt.mutate(&cfg)
		_, err := NewFixedTimeout(cfg)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: NewFixedTimeout error = %v; want ErrInvalidConfig", tt.name, err)
		}
	}
}
