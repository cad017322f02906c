package detector

import "time"

// peerDetector is what a Membership needs from the detector of one member.
type peerDetector interface {
	// heartbeat records a heartbeat that arrived at at.
	heartbeat(at time.Time)
	// touch records another sign of life at at (an answer to a probe, an
	// alive announcement): the silence restarts, but it is no sample of the
	// heartbeat interval.
	touch(at time.Time)
	// probe is called once per heartbeat interval.
	probe(now time.Time)
	// suspect reports whether the member should be suspected at now.
	suspect(now time.Time) bool
	// recovered reports whether a Failed member has been heard from enough
	// to be Alive again.
	recovered(now time.Time) bool
	// level is the suspicion level reported in events.
	level(now time.Time) float64
}

func newPeerDetector(cfg Config) (peerDetector, error) {
	cfg = cfg.resolved()
	if cfg.Detector == KindFixedTimeout {
		d, err := NewFixedTimeout(cfg.Timeout)
		if err != nil {
			return nil, err
		}
		return timeoutPeer{d: d, confirmations: cfg.Timeout.Confirmations}, nil
	}
	d, err := NewPhiAccrual(cfg.Phi)
	if err != nil {
		return nil, err
	}
	return phiPeer{d}, nil
}

type phiPeer struct{ d *PhiAccrual }

func (p phiPeer) heartbeat(at time.Time)       { p.d.Heartbeat(at) }
func (p phiPeer) probe(time.Time)              {}
func (p phiPeer) suspect(now time.Time) bool   { return p.d.Suspect(now) }
func (p phiPeer) recovered(now time.Time) bool { return !p.d.Suspect(now) }
func (p phiPeer) level(now time.Time) float64  { return p.d.Phi(now) }

// timeoutPeer suspects a member while it has missed Confirmations probes in
// a row, and lets a Failed one recover only once the FixedTimeout has seen
// its RecoveryConfirmations heartbeats.
type timeoutPeer struct {
	d             *FixedTimeout
	confirmations int
}

func (p timeoutPeer) heartbeat(at time.Time)   { p.d.Heartbeat(at) }
func (p timeoutPeer) probe(now time.Time)      { p.d.Probe(now) }
func (p timeoutPeer) suspect(time.Time) bool   { return p.d.Missed() >= p.confirmations }
func (p timeoutPeer) recovered(time.Time) bool { return p.d.Status() != Failed }
func (p timeoutPeer) level(time.Time) float64  { return float64(p.d.Missed()) }

func (p phiPeer) touch(at time.Time)     { p.d.touch(at) }
func (p timeoutPeer) touch(at time.Time) { p.d.Heartbeat(at) }
