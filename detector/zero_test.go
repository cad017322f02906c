package detector_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distkit/distkit/detector"
)

// The zero PhiAccrual and FixedTimeout are detectors with the default
// settings: they answer exactly as the ones built from the defaults.
func TestZeroDetectorsAreDefault(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	beats := []time.Duration{0, time.Second, 2 * time.Second, 3100 * time.Millisecond, 4 * time.Second}
	probes := []time.Duration{4500 * time.Millisecond, 5 * time.Second, 6 * time.Second, 8 * time.Second, 9 * time.Second}

	var zeroPhi detector.PhiAccrual
	defPhi, err := detector.NewPhiAccrual(detector.DefaultPhiConfig())
	if err != nil {
		t.Fatal(err)
	}
	var zeroTimeout detector.FixedTimeout
	defTimeout, err := detector.NewFixedTimeout(detector.DefaultTimeoutConfig())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := zeroPhi.Threshold(), defPhi.Threshold(); got != want {
		t.Errorf("zero PhiAccrual Threshold() = %v; want %v", got, want)
	}
	if got, want := zeroTimeout.Status(), defTimeout.Status(); got != want {
		t.Errorf("zero FixedTimeout Status() = %v; want %v", got, want)
	}
	for _, b := range beats {
		zeroPhi.Heartbeat(base.Add(b))
		defPhi.Heartbeat(base.Add(b))
		zeroTimeout.Heartbeat(base.Add(b))
		defTimeout.Heartbeat(base.Add(b))
	}
	if got, want := zeroPhi.Stats(), defPhi.Stats(); got != want {
		t.Errorf("zero PhiAccrual Stats() = %+v; want %+v", got, want)
	}
	for _, p := range probes {
		now := base.Add(p)
		if got, want := zeroPhi.Phi(now), defPhi.Phi(now); got != want {
			t.Errorf("zero PhiAccrual Phi(+%v) = %v; want %v", p, got, want)
		}
		if got, want := zeroPhi.Suspect(now), defPhi.Suspect(now); got != want {
			t.Errorf("zero PhiAccrual Suspect(+%v) = %v; want %v", p, got, want)
		}
		if got, want := zeroTimeout.Probe(now), defTimeout.Probe(now); got != want {
			t.Errorf("zero FixedTimeout Probe(+%v) = %v; want %v", p, got, want)
		}
	}
}

// A zero Membership and a zero Monitor fail with errors, never panics.
func TestZeroMembershipAndMonitor(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	var core detector.Membership
	var mon detector.Monitor
	core.Tick(now) // a no-op
	tests := []struct {
		name    string
		err     error
		wantErr error
	}{
		{"Membership.AddMember", core.AddMember("n2", now), detector.ErrInvalidConfig},
		{"Membership.RemoveMember", core.RemoveMember("n2"), detector.ErrUnknownMember},
		{"Membership.Receive", core.Receive(now, "n2", []byte{1}), detector.ErrInvalidConfig},
		{"Monitor.AddMember", mon.AddMember(ctx, "n2"), detector.ErrClosed},
		{"Monitor.RemoveMember", mon.RemoveMember(ctx, "n2"), detector.ErrClosed},
		{"Monitor.Member", func() error { _, err := mon.Member("n2"); return err }(), detector.ErrUnknownMember},
		{"Monitor.Close", mon.Close(), nil},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.wantErr) {
			t.Errorf("%s on the zero value: %v; want %v", tt.name, tt.err, tt.wantErr)
		}
	}
	if rd := core.Ready(); len(rd.Messages)+len(rd.Events) != 0 {
		t.Errorf("zero Membership Ready() = %+v; want nothing", rd)
	}
	var nilCtx context.Context
	if err := mon.AddMember(nilCtx, "n2"); err == nil {
		t.Errorf("Monitor.AddMember(nil context) succeeded; want an error")
	}
	if got := mon.Members(); got != nil {
		t.Errorf("zero Monitor Members() = %v; want nil", got)
	}
	if _, open := <-mon.Events(); open {
		t.Errorf("zero Monitor Events() delivered an event; want a closed channel")
	}
}
