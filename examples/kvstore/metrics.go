package main

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// serveMetrics answers GET /metrics: this node's consensus.Status in the
// Prometheus text exposition format (version 0.0.4), written by hand so
// that the example needs no client library. Every figure is read from one
// Status, so a scrape is consistent.
func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var p promWriter
	writeStatusMetrics(&p, s.node.Status())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write(p.buf.Bytes())
}

// writeStatusMetrics writes st as metric families named distkit_raft_*.
func writeStatusMetrics(p *promWriter, st consensus.Status) {
	p.family("distkit_raft_term", "gauge", "Current Raft term.")
	p.sample("distkit_raft_term", nil, float64(st.Term))
	p.family("distkit_raft_role", "gauge", "1 for this node's current role, 0 for the others.")
	for _, role := range []raft.Role{raft.Follower, raft.PreCandidate, raft.Candidate, raft.Leader} {
		p.sample("distkit_raft_role", []string{"role", role.String()}, bool01(st.Role == role))
	}
	for _, g := range []struct {
		name, help string
		v          uint64
	}{
		{"distkit_raft_commit_index", "Highest log index known committed.", st.Commit},
		{"distkit_raft_applied_index", "Highest log index applied to the state machine.", st.Applied},
		{"distkit_raft_last_index", "Index of the last entry in the log.", st.LastIndex},
		{"distkit_raft_first_index", "First log index still held (earlier ones are in the snapshot).", st.FirstIndex},
		{"distkit_raft_pending_proposals", "Proposals accepted on this node and not applied yet.", uint64(st.PendingProposals)},
	} {
		p.family(g.name, "gauge", g.help)
		p.sample(g.name, nil, float64(g.v))
	}

	p.family("distkit_raft_dropped_messages_total", "counter", "Raft messages dropped, by reason.")
	for _, d := range []struct {
		reason consensus.DropReason
		n      uint64
	}{
		{consensus.DropForeignCluster, st.DroppedForeign},
		{consensus.DropNonMember, st.DroppedNonMember},
		{consensus.DropMalformed, st.DroppedMalformed},
		{consensus.DropQueueFull, st.DroppedQueueFull},
		{consensus.DropSendFailed, st.DroppedSendFailed},
	} {
		p.sample("distkit_raft_dropped_messages_total", []string{"reason", d.reason.String()}, float64(d.n))
	}
	p.family("distkit_raft_snapshots_total", "counter", "Snapshots taken by this node, sent by it as leader (transfers started) and installed from a leader.")
	for _, e := range []struct {
		ev consensus.SnapshotEvent
		n  uint64
	}{
		{consensus.SnapshotTaken, st.SnapshotsTaken},
		{consensus.SnapshotSent, st.SnapshotsSent},
		{consensus.SnapshotInstalled, st.SnapshotsInstalled},
	} {
		p.sample("distkit_raft_snapshots_total", []string{"event", e.ev.String()}, float64(e.n))
	}
	p.family("distkit_raft_snapshot_chunks_sent_total", "counter", "Snapshot chunks sent to followers.")
	p.sample("distkit_raft_snapshot_chunks_sent_total", nil, float64(st.SnapshotChunksSent))

	p.family("distkit_raft_last_save_seconds", "gauge", "Duration of the last write of log entries or of a new term or vote (one fsync).")
	p.sample("distkit_raft_last_save_seconds", nil, seconds(st.LastSaveDuration))
	p.histogram("distkit_raft_save_seconds", "Duration of each write of log entries or of a new term or vote (one fsync).", st.SaveLatency)
	p.histogram("distkit_raft_apply_seconds", "Duration of applying each batch of committed entries to the state machine.", st.ApplyLatency)

	// Per-member replication progress, on the leader only.
	ids := make([]transport.NodeID, 0, len(st.Progress))
	for id := range st.Progress {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	p.family("distkit_raft_member_match_index", "gauge", "Leader only: highest index known replicated on each member.")
	for _, id := range ids {
		p.sample("distkit_raft_member_match_index", []string{"member", string(id)}, float64(st.Progress[id].Match))
	}
	p.family("distkit_raft_member_lag_entries", "gauge", "Leader only: the leader's last index minus each member's match index.")
	for _, id := range ids {
		p.sample("distkit_raft_member_lag_entries", []string{"member", string(id)}, float64(st.Progress[id].Lag))
	}
	p.family("distkit_raft_member_ticks_since_heard", "gauge", "Leader only: ticks since the leader last heard from each member.")
	for _, id := range ids {
		p.sample("distkit_raft_member_ticks_since_heard", []string{"member", string(id)}, float64(st.Progress[id].TicksSinceHeard))
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// promWriter writes the Prometheus text format into buf.
type promWriter struct {
	buf bytes.Buffer
}

// family starts a metric family: its # HELP and # TYPE lines.
func (p *promWriter) family(name, typ, help string) {
	p.buf.WriteString("# HELP " + name + " " + escapeHelp(help) + "\n")
	p.buf.WriteString("# TYPE " + name + " " + typ + "\n")
}

// sample writes one sample; labels alternate names and values.
func (p *promWriter) sample(name string, labels []string, v float64) {
	p.buf.WriteString(name)
	if len(labels) > 0 {
		p.buf.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				p.buf.WriteByte(',')
			}
			p.buf.WriteString(labels[i] + `="` + escapeLabel(labels[i+1]) + `"`)
		}
		p.buf.WriteByte('}')
	}
	p.buf.WriteByte(' ')
	p.buf.WriteString(formatFloat(v))
	p.buf.WriteByte('\n')
}

// histogram writes h as a histogram family in seconds: cumulative
// _bucket{le="…"} samples ending with le="+Inf", then _sum and _count.
func (p *promWriter) histogram(name, help string, h consensus.Histogram) {
	p.family(name, "histogram", help)
	for i := range consensus.HistogramBuckets {
		p.sample(name+"_bucket", []string{"le", formatFloat(seconds(consensus.HistogramBound(i)))}, float64(h.Buckets[i]))
	}
	p.sample(name+"_bucket", []string{"le", "+Inf"}, float64(h.Count))
	p.sample(name+"_sum", nil, seconds(h.Sum))
	p.sample(name+"_count", nil, float64(h.Count))
}

// seconds converts d with one correctly rounded division, so that bucket
// bounds print short ("1.6384", where Duration.Seconds gives
// "1.6383999999999999").
func seconds(d time.Duration) float64 { return float64(d) / float64(time.Second) }

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// escapeLabel escapes a label value: backslash, double quote and newline.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// escapeHelp escapes HELP text: backslash and newline.
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

func escapeHelp(s string) string { return helpEscaper.Replace(s) }
