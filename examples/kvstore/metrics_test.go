package main

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distkit/distkit/consensus"
	"github.com/distkit/distkit/consensus/raft"
	"github.com/distkit/distkit/transport"
)

// promSample is one sample line of the text exposition format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// promFamily is one metric family: its HELP, TYPE and samples.
type promFamily struct {
	name, typ, help string
	samples         []promSample
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// parseProm parses the Prometheus text format (version 0.0.4) strictly:
// every family has one HELP and one TYPE line before its samples, its
// samples are contiguous, names and labels are well formed, counters end
// in _total, and histograms have, per label set, cumulative buckets with
// increasing le ending at +Inf equal to _count, and a _sum.
func parseProm(text string) (map[string]*promFamily, error) {
	fams := map[string]*promFamily{}
	var cur *promFamily
	if !strings.HasSuffix(text, "\n") {
		return nil, errors.New("output does not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("line %d %q: %s", i+1, line, fmt.Sprintf(format, args...))
		}
		switch {
		case strings.HasPrefix(line, "# HELP "), strings.HasPrefix(line, "# TYPE "):
			kind := line[2:6]
			name, rest, ok := strings.Cut(line[7:], " ")
			if !ok || !metricNameRE.MatchString(name) {
				return nil, bad("bad metric name %q", name)
			}
			f := fams[name]
			if f == nil {
				f = &promFamily{name: name}
				fams[name] = f
			} else if f != cur || len(f.samples) > 0 {
				return nil, bad("family %s declared twice or after its samples", name)
			}
			cur = f
			if kind == "HELP" {
				if f.help != "" || f.typ != "" || rest == "" {
					return nil, bad("HELP repeated, after TYPE, or empty")
				}
				f.help = rest
				continue
			}
			switch rest {
			case "counter", "gauge", "histogram":
			default:
				return nil, bad("unknown type %q", rest)
			}
			if f.typ != "" {
				return nil, bad("TYPE repeated")
			}
			f.typ = rest
		case line == "" || strings.HasPrefix(line, "#"):
			return nil, bad("unexpected line")
		default:
			s, err := parseSample(line)
			if err != nil {
				return nil, bad("%v", err)
			}
			if cur == nil || cur.typ == "" || cur.help == "" || familyOf(s.name, cur.typ) != cur.name {
				return nil, bad("sample outside its family's HELP and TYPE")
			}
			cur.samples = append(cur.samples, s)
		}
	}
	for _, f := range fams {
		if err := checkFamily(f); err != nil {
			return nil, fmt.Errorf("family %s: %w", f.name, err)
		}
	}
	return fams, nil
}

// familyOf returns the family a sample named name belongs to.
func familyOf(name, typ string) string {
	if typ == "histogram" {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				return base
			}
		}
		return "" // a histogram has no plain samples
	}
	return name
}

// parseSample parses `name{label="value",...} value`.
func parseSample(line string) (promSample, error) {
	s := promSample{labels: map[string]string{}}
	end := strings.IndexAny(line, "{ ")
	if end < 0 {
		return s, errors.New("no value")
	}
	s.name, line = line[:end], line[end:]
	if !metricNameRE.MatchString(s.name) {
		return s, fmt.Errorf("bad metric name %q", s.name)
	}
	if strings.HasPrefix(line, "{") {
		line = line[1:]
		for !strings.HasPrefix(line, "}") {
			name, rest, ok := strings.Cut(line, `="`)
			if !ok || !labelNameRE.MatchString(name) {
				return s, fmt.Errorf("bad label name %q", name)
			}
			if _, dup := s.labels[name]; dup {
				return s, fmt.Errorf("label %s repeated", name)
			}
			var value strings.Builder
			j := 0
			for ; j < len(rest) && rest[j] != '"'; j++ {
				if rest[j] == '\n' {
					return s, errors.New("raw newline in a label value")
				}
				if rest[j] != '\\' {
					value.WriteByte(rest[j])
					continue
				}
				j++
				switch {
				case j < len(rest) && rest[j] == 'n':
					value.WriteByte('\n')
				case j < len(rest) && (rest[j] == '\\' || rest[j] == '"'):
					value.WriteByte(rest[j])
				default:
					return s, errors.New("bad escape in a label value")
				}
			}
			if j == len(rest) {
				return s, errors.New("unterminated label value")
			}
			s.labels[name] = value.String()
			line = rest[j+1:]
			if strings.HasPrefix(line, ",") {
				line = line[1:]
			} else if !strings.HasPrefix(line, "}") {
				return s, errors.New("labels not separated by commas")
			}
		}
		line = line[1:]
	}
	v, ok := strings.CutPrefix(line, " ")
	if !ok {
		return s, errors.New("no space before the value")
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return s, fmt.Errorf("bad value %q", v)
	}
	s.value = f
	return s, nil
}

// checkFamily checks the rules of a family's type.
func checkFamily(f *promFamily) error {
	if f.typ == "" || f.help == "" {
		return errors.New("missing TYPE or HELP")
	}
	if f.typ == "counter" && !strings.HasSuffix(f.name, "_total") {
		return errors.New("counter name does not end in _total")
	}
	for _, s := range f.samples {
		if f.typ == "counter" && (s.value < 0 || math.IsNaN(s.value)) {
			return fmt.Errorf("counter sample %v", s.value)
		}
	}
	if f.typ != "histogram" {
		return nil
	}
	type series struct {
		lastLE, lastCount float64
		buckets           int
		inf, count, sum   bool
		infValue          float64
		countValue        float64
	}
	all := map[string]*series{}
	for _, s := range f.samples {
		var keys []string
		for k, v := range s.labels {
			if k != "le" {
				keys = append(keys, k+"="+v)
			}
		}
		key := strings.Join(keys, ",")
		sr := all[key]
		if sr == nil {
			sr = &series{lastLE: math.Inf(-1)}
			all[key] = sr
		}
		switch s.name {
		case f.name + "_bucket":
			le, ok := s.labels["le"]
			if !ok {
				return errors.New("bucket without le")
			}
			bound, err := strconv.ParseFloat(le, 64)
			if err != nil || bound <= sr.lastLE || sr.inf {
				return fmt.Errorf("bucket le=%q not increasing", le)
			}
			if s.value < sr.lastCount {
				return fmt.Errorf("bucket le=%q count %v below the previous %v: not cumulative", le, s.value, sr.lastCount)
			}
			sr.lastLE, sr.lastCount = bound, s.value
			sr.buckets++
			if le == "+Inf" {
				sr.inf, sr.infValue = true, s.value
			}
		case f.name + "_sum":
			sr.sum = true
		case f.name + "_count":
			sr.count, sr.countValue = true, s.value
		}
	}
	if len(all) == 0 {
		return errors.New("histogram without samples")
	}
	for _, sr := range all {
		switch {
		case !sr.inf:
			return errors.New(`buckets do not end with le="+Inf"`)
		case !sr.count || !sr.sum:
			return errors.New("no _count or _sum")
		case sr.infValue != sr.countValue:
			return fmt.Errorf(`le="+Inf" bucket %v != _count %v`, sr.infValue, sr.countValue)
		}
	}
	return nil
}

// value returns the sample of family name with the given labels (name and
// value pairs) and whether there is one.
func (f *promFamily) value(sample string, labels ...string) (float64, bool) {
	for _, s := range f.samples {
		if s.name != sample || len(s.labels) != len(labels)/2 {
			continue
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && s.labels[labels[i]] == labels[i+1]
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// TestPromParserRejects: the test's parser is strict enough to catch the
// mistakes a hand-written exporter makes.
func TestPromParserRejects(t *testing.T) {
	hist := func(b1, b2, inf, count string) string {
		return "# HELP h_seconds h\n# TYPE h_seconds histogram\n" +
			`h_seconds_bucket{le="0.1"} ` + b1 + "\n" + `h_seconds_bucket{le="0.2"} ` + b2 + "\n" +
			`h_seconds_bucket{le="+Inf"} ` + inf + "\nh_seconds_sum 1\nh_seconds_count " + count + "\n"
	}
	tests := []struct {
		name, text string
		ok         bool
	}{
		{"valid", "# HELP a_total a\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 3\n" + hist("1", "2", "3", "3"), true},
		{"no TYPE", "# HELP g g\ng 1\n", false},
		{"no HELP", "# TYPE g gauge\ng 1\n", false},
		{"TYPE after samples", "# HELP g g\n# TYPE g gauge\ng 1\n# TYPE g gauge\n", false},
		{"unknown type", "# HELP g g\n# TYPE g thing\ng 1\n", false},
		{"bad name", "# HELP 1g g\n# TYPE 1g gauge\n1g 1\n", false},
		{"counter without _total", "# HELP c c\n# TYPE c counter\nc 1\n", false},
		{"unquoted label", "# HELP g g\n# TYPE g gauge\ng{x=1} 1\n", false},
		{"bad escape", "# HELP g g\n# TYPE g gauge\ng{x=\"\\t\"} 1\n", false},
		{"no comma", "# HELP g g\n# TYPE g gauge\ng{x=\"1\" y=\"2\"} 1\n", false},
		{"repeated label", "# HELP g g\n# TYPE g gauge\ng{x=\"1\",x=\"2\"} 1\n", false},
		{"bad value", "# HELP g g\n# TYPE g gauge\ng one\n", false},
		{"sample of another family", "# HELP g g\n# TYPE g gauge\nh 1\n", false},
		{"no final newline", "# HELP g g\n# TYPE g gauge\ng 1", false},
		{"buckets not cumulative", hist("2", "1", "3", "3"), false},
		{"no +Inf bucket", strings.Replace(hist("1", "2", "3", "3"), `le="+Inf"`, `le="0.3"`, 1), false},
		{"+Inf differs from count", hist("1", "2", "3", "4"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseProm(tt.text)
			if (err == nil) != tt.ok {
				t.Errorf("parseProm(%q) = %v; want ok %v", tt.text, err, tt.ok)
			}
		})
	}
}

// scrape GETs /metrics from s and parses it.
func scrape(t *testing.T, s *server) map[string]*promFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	s.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics = %d, Content-Type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	fams, err := parseProm(rec.Body.String())
	if err != nil {
		t.Fatalf("GET /metrics: %v\n%s", err, rec.Body.String())
	}
	return fams
}

// TestMetricsEndpoint: every node's /metrics parses, has the expected
// families with their types, and its figures move after writes; the
// leader reports each member's lag.
func TestMetricsEndpoint(t *testing.T) {
	ids := []transport.NodeID{"n1", "n2", "n3"}
	servers, _, err := startCluster(ids, t.TempDir())
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	if err != nil {
		t.Fatal(err)
	}
	put := func(node transport.NodeID, key string) {
		t.Helper()
		rec := httptest.NewRecorder()
		servers[node].handler().ServeHTTP(rec, httptest.NewRequest("PUT", "/kv/"+key, strings.NewReader("v")))
		if rec.Code != http.StatusOK {
			t.Fatalf("PUT /kv/%s on %s = %d %s", key, node, rec.Code, rec.Body.String())
		}
	}
	// read waits (ReadIndex) until node has applied every acknowledged write.
	read := func(node transport.NodeID, key string) {
		t.Helper()
		rec := httptest.NewRecorder()
		servers[node].handler().ServeHTTP(rec, httptest.NewRequest("GET", "/kv/"+key, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /kv/%s on %s = %d %s", key, node, rec.Code, rec.Body.String())
		}
	}
	put("n1", "first")
	before := map[transport.NodeID]map[string]*promFamily{}
	for _, id := range ids {
		read(id, "first")
		before[id] = scrape(t, servers[id])
	}
	for i := range 5 {
		put(ids[i%3], fmt.Sprint("k", i))
	}
	for _, id := range ids {
		read(id, "k4")
	}

	families := []struct{ name, typ string }{
		{"distkit_raft_term", "gauge"},
		{"distkit_raft_role", "gauge"},
		{"distkit_raft_commit_index", "gauge"},
		{"distkit_raft_applied_index", "gauge"},
		{"distkit_raft_last_index", "gauge"},
		{"distkit_raft_first_index", "gauge"},
		{"distkit_raft_pending_proposals", "gauge"},
		{"distkit_raft_dropped_messages_total", "counter"},
		{"distkit_raft_snapshots_total", "counter"},
		{"distkit_raft_snapshot_chunks_sent_total", "counter"},
		{"distkit_raft_last_save_seconds", "gauge"},
		{"distkit_raft_save_seconds", "histogram"},
		{"distkit_raft_apply_seconds", "histogram"},
		{"distkit_raft_member_match_index", "gauge"},
		{"distkit_raft_member_lag_entries", "gauge"},
		{"distkit_raft_member_ticks_since_heard", "gauge"},
	}
	// The figures that must have grown on every node after the writes.
	grows := []struct{ family, sample string }{
		{"distkit_raft_applied_index", "distkit_raft_applied_index"},
		{"distkit_raft_commit_index", "distkit_raft_commit_index"},
		{"distkit_raft_save_seconds", "distkit_raft_save_seconds_count"},
		{"distkit_raft_save_seconds", "distkit_raft_save_seconds_sum"},
		{"distkit_raft_apply_seconds", "distkit_raft_apply_seconds_count"},
	}
	for _, id := range ids {
		after := scrape(t, servers[id])
		for _, f := range families {
			got := after[f.name]
			if got == nil || got.typ != f.typ {
				t.Errorf("%s: family %s = %+v; want type %s", id, f.name, got, f.typ)
			}
		}
		for _, g := range grows {
			was, ok1 := before[id][g.family].value(g.sample)
			now, ok2 := after[g.family].value(g.sample)
			if !ok1 || !ok2 || now <= was {
				t.Errorf("%s: %s went from %v to %v (found %v %v); want it to grow after writes", id, g.sample, was, now, ok1, ok2)
			}
		}
		for _, reason := range []string{"foreign_cluster", "non_member", "malformed", "queue_full", "send_failed"} {
			if _, ok := after["distkit_raft_dropped_messages_total"].value("distkit_raft_dropped_messages_total", "reason", reason); !ok {
				t.Errorf("%s: no dropped_messages_total{reason=%q}", id, reason)
			}
		}
	}

	// The leader reports every member's lag. Leadership may move under a
	// loaded machine: ask again until a node that says it leads answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		lead := servers["n1"].node.Leader().Leader
		if lead != "" {
			fams := scrape(t, servers[lead])
			if v, _ := fams["distkit_raft_role"].value("distkit_raft_role", "role", "leader"); v == 1 {
				for _, m := range ids {
					if lag, ok := fams["distkit_raft_member_lag_entries"].value("distkit_raft_member_lag_entries", "member", string(m)); !ok || lag < 0 {
						t.Errorf("leader %s: member_lag_entries{member=%q} = %v, %v; want a value >= 0", lead, m, lag, ok)
					}
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node answered /metrics as leader within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMetricsFromStatus writes a made-up Status: label values are escaped
// (a member ID may hold any byte), the +Inf bucket counts the observations
// above the last bound, and every figure lands in its sample.
func TestMetricsFromStatus(t *testing.T) {
	odd := transport.NodeID("n\"1\\\n")
	st := consensus.Status{}
	st.Term, st.Role, st.LastIndex, st.Applied = 7, raft.Leader, 30, 29
	st.Progress = map[transport.NodeID]raft.ProgressStatus{
		odd:  {Match: 30, Lag: 0},
		"n2": {Match: 18, Lag: 12, TicksSinceHeard: 40},
	}
	st.DroppedQueueFull, st.SnapshotsSent = 3, 2
	for i := range consensus.HistogramBuckets { // cumulative: 1 at 50µs, 3 more by the last bound
		st.SaveLatency.Buckets[i] = 1
	}
	st.SaveLatency.Buckets[consensus.HistogramBuckets-1] = 4
	st.SaveLatency.Count, st.SaveLatency.Sum = 6, 5*time.Second // two above 1.6384 s
	var p promWriter
	writeStatusMetrics(&p, st)
	fams, err := parseProm(p.buf.String())
	if err != nil {
		t.Fatalf("parseProm: %v\n%s", err, p.buf.String())
	}
	tests := []struct {
		family, sample string
		labels         []string
		want           float64
	}{
		{"distkit_raft_term", "distkit_raft_term", nil, 7},
		{"distkit_raft_role", "distkit_raft_role", []string{"role", "leader"}, 1},
		{"distkit_raft_role", "distkit_raft_role", []string{"role", "follower"}, 0},
		{"distkit_raft_applied_index", "distkit_raft_applied_index", nil, 29},
		{"distkit_raft_member_match_index", "distkit_raft_member_match_index", []string{"member", string(odd)}, 30},
		{"distkit_raft_member_lag_entries", "distkit_raft_member_lag_entries", []string{"member", "n2"}, 12},
		{"distkit_raft_member_ticks_since_heard", "distkit_raft_member_ticks_since_heard", []string{"member", "n2"}, 40},
		{"distkit_raft_dropped_messages_total", "distkit_raft_dropped_messages_total", []string{"reason", "queue_full"}, 3},
		{"distkit_raft_snapshots_total", "distkit_raft_snapshots_total", []string{"event", "sent"}, 2},
		{"distkit_raft_save_seconds", "distkit_raft_save_seconds_bucket", []string{"le", "5e-05"}, 1},
		{"distkit_raft_save_seconds", "distkit_raft_save_seconds_bucket", []string{"le", "1.6384"}, 4},
		{"distkit_raft_save_seconds", "distkit_raft_save_seconds_bucket", []string{"le", "+Inf"}, 6},
		{"distkit_raft_save_seconds", "distkit_raft_save_seconds_count", nil, 6},
		{"distkit_raft_save_seconds", "distkit_raft_save_seconds_sum", nil, 5},
	}
	for _, tt := range tests {
		got, ok := fams[tt.family].value(tt.sample, tt.labels...)
		if !ok || got != tt.want {
			t.Errorf("%s%q = %v (found %v); want %v", tt.sample, tt.labels, got, ok, tt.want)
		}
	}
}
