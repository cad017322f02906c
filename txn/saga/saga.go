package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"
)

// Sentinel errors. Compare with errors.Is.
var (
	// ErrInvalid reports a bad argument or configuration.
	ErrInvalid = errors.New("saga: invalid argument")
	// ErrMalformed reports a log event that does not decode.
	ErrMalformed = errors.New("saga: malformed event")
	// ErrUnknownSaga is returned for a saga name that was not registered.
	ErrUnknownSaga = errors.New("saga: unknown saga")
	// ErrRunning is returned by Run for a saga ID another Run is driving.
	ErrRunning = errors.New("saga: already running")
	// ErrStopped is returned once the Runner's log failed: it stops, and a
	// new Runner on the reopened log resumes.
	ErrStopped = errors.New("saga: runner stopped after a log failure")
	// ErrHanging is returned by Barrier.Action for an action whose
	// compensation was recorded first: it must not run any more.
	ErrHanging = errors.New("saga: action refused: its compensation came first")
	// ErrBusy is returned by the Barrier while another attempt of the same
	// branch is in progress: retry later.
	ErrBusy = errors.New("saga: branch attempt in progress")
)

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks an action's error as one a retry cannot fix (a refusal,
// such as "no seat left"): the saga turns back at once instead of
// retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// Outcome is how a saga ended.
type Outcome uint8

// Outcomes.
const (
	// Running: not finished (in the log only: Run never returns it).
	Running Outcome = iota
	// Done: every step's action succeeded.
	Done
	// Compensated: a step failed for good and every step that may have
	// acted, that one included, was compensated, in reverse order.
	Compensated
)

// String returns "running", "done" or "compensated".
func (o Outcome) String() string {
	switch o {
	case Running:
		return "running"
	case Done:
		return "done"
	case Compensated:
		return "compensated"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Step is one step of a saga: an action and the compensation that undoes
// it. Both are called at least once and possibly more (after a crash, or
// a retry whose first attempt did act but its answer was lost), and a
// compensation may be called for an action that never ran or will arrive
// late: wrap the remote handlers in a Barrier, which makes each run once
// and in the right order.
type Step struct {
	Name string
	// Action does the step's work. A Permanent error turns the saga back
	// at once; another error is retried Config.Retries times first.
	Action func(ctx context.Context, id string) error
	// Compensate undoes Action semantically (refund, cancel). It must
	// succeed eventually: it is retried until it does or ctx ends. nil
	// means there is nothing to undo.
	Compensate func(ctx context.Context, id string) error
}

// Saga is a named sequence of steps.
type Saga struct {
	Name  string
	Steps []Step
}

// Config configures a Runner. Start from DefaultConfig.
type Config struct {
	// Retries is how many times a failed action is retried before the
	// saga turns back (forward recovery).
	Retries int
	// Backoff is the pause before each retry of an action or compensation.
	Backoff time.Duration
	// CompactEvery: when the Log is a Compacter, every CompactEvery
	// ended sagas the runner compacts it: the events of the sagas still
	// running replace everything logged, and the ended sagas are
	// forgotten (Status no longer knows them, and Run with their ID
	// would start them anew: saga IDs must be unique). 0 never compacts.
	CompactEvery int
	// Logger receives the steps at debug level. nil is silent.
	Logger *slog.Logger
}

// DefaultConfig returns 3 retries 100 ms apart, compacting every 1024
// ended sagas.
func DefaultConfig() Config {
	return Config{Retries: 3, Backoff: 100 * time.Millisecond, CompactEvery: 1024}
}

// Validate reports the first unusable field.
func (c Config) Validate() error {
	switch {
	case c.Retries < 0:
		return fmt.Errorf("%w: Config.Retries = %d; want >= 0", ErrInvalid, c.Retries)
	case c.Backoff < 0:
		return fmt.Errorf("%w: Config.Backoff = %v; want >= 0", ErrInvalid, c.Backoff)
	case c.CompactEvery < 0:
		return fmt.Errorf("%w: Config.CompactEvery = %d; want >= 0", ErrInvalid, c.CompactEvery)
	}
	return nil
}

// state is a saga instance as the log tells it.
type state struct {
	name      string
	done      int    // steps whose action succeeded (0..done-1)
	back      bool   // turned back
	failed    int    // the step that failed (back)
	reason    string // why (back)
	compNext  int    // back: the next step to compensate (compNext down to 0)
	outcome   Outcome
	lastEvent EventKind
}

// Runner runs sagas, logging every step durably before going on. It is
// safe for concurrent use; each saga ID is driven by one Run at a time.
type Runner struct {
	log    Log
	cfg    Config
	logger *slog.Logger

	// logMu: appends hold it shared, a compaction exclusively (nothing
	// is appended while the log is replaced).
	logMu sync.RWMutex

	// mu guards sagas, states, running, ended and err.
	mu      sync.Mutex
	sagas   map[string]Saga
	states  map[string]*state
	running map[string]bool
	ended   int   // sagas ended since the last compaction
	err     error // sticky log failure
}

// NewRunner returns a runner over log, loading its state: sagas found
// unfinished are continued by Resume (or by Run with their ID). The caller
// keeps ownership of log.
func NewRunner(log Log, cfg Config) (*Runner, error) {
	if log == nil {
		return nil, fmt.Errorf("%w: nil log", ErrInvalid)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	evs, err := log.Load()
	if err != nil {
		return nil, fmt.Errorf("saga: recovery: %w", err)
	}
	r := &Runner{log: log, cfg: cfg, logger: cfg.Logger, sagas: map[string]Saga{},
		states: map[string]*state{}, running: map[string]bool{}}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	for _, e := range evs {
		if err := r.replay(e); err != nil {
			return nil, fmt.Errorf("saga: recovery: %w", err)
		}
	}
	return r, nil
}

// replay applies one logged event to the state.
func (r *Runner) replay(e Event) error {
	s := r.states[e.ID]
	if e.Kind != EvStart && s == nil {
		return fmt.Errorf("%w: %v for saga %q before its start", ErrMalformed, e.Kind, e.ID)
	}
	switch e.Kind {
	case EvStart:
		if s != nil {
			return fmt.Errorf("%w: saga %q started twice", ErrMalformed, e.ID)
		}
		r.states[e.ID] = &state{name: e.Name}
		return nil
	case EvStepDone:
		if s.back || e.Step != s.done {
			return fmt.Errorf("%w: saga %q: step %d done out of order", ErrMalformed, e.ID, e.Step)
		}
		s.done++
	case EvTurnBack:
		if s.back || e.Step != s.done {
			return fmt.Errorf("%w: saga %q: turned back at step %d out of order", ErrMalformed, e.ID, e.Step)
		}
		s.back, s.failed, s.reason, s.compNext = true, e.Step, e.Reason, e.Step
	case EvCompensated:
		if !s.back || e.Step != s.compNext {
			return fmt.Errorf("%w: saga %q: step %d compensated out of order", ErrMalformed, e.ID, e.Step)
		}
		s.compNext--
	case EvEnd:
		if e.Outcome != Done && e.Outcome != Compensated {
			return fmt.Errorf("%w: saga %q ended %v", ErrMalformed, e.ID, e.Outcome)
		}
		s.outcome = e.Outcome
	}
	s.lastEvent = e.Kind
	return nil
}

// Register makes saga s runnable by name. Registering a name again
// replaces it (the steps must be the same ones, for sagas in the log).
func (r *Runner) Register(s Saga) error {
	if s.Name == "" || len(s.Name) > maxName || len(s.Steps) == 0 || len(s.Steps) >= maxSteps {
		return fmt.Errorf("%w: saga %q with %d steps", ErrInvalid, s.Name, len(s.Steps))
	}
	for i, st := range s.Steps {
		if st.Action == nil {
			return fmt.Errorf("%w: saga %q step %d has no action", ErrInvalid, s.Name, i)
		}
	}
	r.mu.Lock()
	r.sagas[s.Name] = s
	r.mu.Unlock()
	return nil
}

// Run runs saga instance id of the saga registered as name to its end and
// returns Done or Compensated. If the log already holds id, Run continues
// it from where it stopped (or returns its outcome if it ended). It returns
// an error only if it could not finish: ctx ended (the saga stays in the
// log, to be continued), the log failed (ErrStopped), or bad arguments.
// A turned-back saga returns Compensated and a nil error; Cause tells why.
func (r *Runner) Run(ctx context.Context, name, id string) (Outcome, error) {
	if id == "" || len(id) > maxID {
		return Running, fmt.Errorf("%w: saga ID %q", ErrInvalid, id)
	}
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return Running, r.err
	}
	sg, ok := r.sagas[name]
	if !ok {
		r.mu.Unlock()
		return Running, fmt.Errorf("%w: %q", ErrUnknownSaga, name)
	}
	if r.running[id] {
		r.mu.Unlock()
		return Running, fmt.Errorf("%w: %q", ErrRunning, id)
	}
	s := r.states[id]
	if s != nil && s.name != name {
		r.mu.Unlock()
		return Running, fmt.Errorf("%w: saga ID %q runs %q, not %q", ErrInvalid, id, s.name, name)
	}
	r.running[id] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.running, id)
		r.mu.Unlock()
	}()
	if s == nil {
		if err := r.append(Event{Kind: EvStart, ID: id, Name: name}); err != nil {
			return Running, err
		}
		r.mu.Lock()
		s = r.states[id]
		r.mu.Unlock()
	}
	return r.drive(ctx, sg, id, s)
}

// Cause returns why saga id turned back ("" if it did not, or is unknown).
func (r *Runner) Cause(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.states[id]; s != nil && s.back {
		return fmt.Sprintf("step %d failed: %s", s.failed, s.reason)
	}
	return ""
}

// Status returns saga id's outcome as logged (Running if unfinished) and
// whether the log knows it.
func (r *Runner) Status(id string) (Outcome, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.states[id]
	if s == nil {
		return Running, false
	}
	return s.outcome, true
}

// Resume continues every saga the log holds unfinished, one after the
// other, and returns their outcomes by ID. Their sagas must be registered.
func (r *Runner) Resume(ctx context.Context) (map[string]Outcome, error) {
	r.mu.Lock()
	var ids []string
	for id, s := range r.states {
		if s.outcome == Running {
			ids = append(ids, id)
		}
	}
	r.mu.Unlock()
	sort.Strings(ids)
	out := make(map[string]Outcome, len(ids))
	for _, id := range ids {
		r.mu.Lock()
		name := r.states[id].name
		r.mu.Unlock()
		o, err := r.Run(ctx, name, id)
		if err != nil {
			return out, fmt.Errorf("saga: resume %q: %w", id, err)
		}
		out[id] = o
	}
	return out, nil
}

// append logs one event durably and applies it; a failure stops the
// runner. Every Config.CompactEvery ended sagas it compacts the log.
func (r *Runner) append(e Event) error {
	r.logMu.RLock()
	if err := r.log.Append(e); err != nil {
		r.logMu.RUnlock()
		return r.stop(err)
	}
	r.mu.Lock()
	err := r.replay(e)
	if err == nil && e.Kind == EvEnd {
		r.ended++
	}
	due := r.cfg.CompactEvery > 0 && r.ended >= r.cfg.CompactEvery
	r.mu.Unlock()
	r.logMu.RUnlock()
	if err != nil || !due {
		return err
	}
	if c, ok := r.log.(Compacter); ok {
		return r.compact(c)
	}
	return nil
}

// stop makes err the runner's sticky failure (wrapped in ErrStopped).
func (r *Runner) stop(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = fmt.Errorf("%w: %w", ErrStopped, err)
	}
	return r.err
}

// compact replaces the log by the events of the sagas still running and
// forgets the ended ones. Appends wait meanwhile. A failure stops the
// runner, like a failed append: the log's state is then unknown.
func (r *Runner) compact(c Compacter) error {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	r.mu.Lock()
	if r.ended < r.cfg.CompactEvery || r.err != nil {
		r.mu.Unlock()
		return nil // another append compacted first, or the runner stopped
	}
	ids := make([]string, 0, len(r.states))
	for id, s := range r.states {
		if s.outcome == Running {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var live []Event
	for _, id := range ids {
		live = append(live, r.states[id].events(id)...)
	}
	r.mu.Unlock()
	if err := c.Compact(live); err != nil {
		return r.stop(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, s := range r.states {
		if s.outcome != Running {
			delete(r.states, id)
		}
	}
	r.ended = 0
	r.logger.Debug("saga: log compacted", "running", len(ids))
	return nil
}

// events returns the events that rebuild s (a running saga) on replay.
func (s *state) events(id string) []Event {
	evs := []Event{{Kind: EvStart, ID: id, Name: s.name}}
	for i := range s.done {
		evs = append(evs, Event{Kind: EvStepDone, ID: id, Step: i})
	}
	if s.back {
		evs = append(evs, Event{Kind: EvTurnBack, ID: id, Step: s.failed, Reason: s.reason})
		for j := s.failed; j > s.compNext; j-- {
			evs = append(evs, Event{Kind: EvCompensated, ID: id, Step: j})
		}
	}
	return evs
}

// snapshot reads s under the lock.
func (r *Runner) snapshot(s *state) state {
	r.mu.Lock()
	defer r.mu.Unlock()
	return *s
}

// drive runs the saga forward from its first undone step, or backward
// from its next uncompensated one.
func (r *Runner) drive(ctx context.Context, sg Saga, id string, sp *state) (Outcome, error) {
	for {
		s := r.snapshot(sp)
		switch {
		case s.outcome != Running:
			return s.outcome, nil
		case !s.back && s.done == len(sg.Steps):
			if err := r.append(Event{Kind: EvEnd, ID: id, Outcome: Done}); err != nil {
				return Running, err
			}
		case !s.back:
			err := r.act(ctx, sg.Steps[s.done], id)
			if ctx.Err() != nil {
				return Running, fmt.Errorf("saga: %q step %d: %w", id, s.done, ctx.Err())
			}
			e := Event{Kind: EvStepDone, ID: id, Step: s.done}
			if err != nil {
				r.logger.Debug("saga: step failed; turning back", "saga", id, "step", sg.Steps[s.done].Name, "err", err)
				e = Event{Kind: EvTurnBack, ID: id, Step: s.done, Reason: err.Error()}
			}
			if err := r.append(e); err != nil {
				return Running, err
			}
		case s.compNext >= 0:
			if err := r.compensate(ctx, sg.Steps[s.compNext], id); err != nil {
				return Running, fmt.Errorf("saga: %q compensating step %d: %w", id, s.compNext, err)
			}
			if err := r.append(Event{Kind: EvCompensated, ID: id, Step: s.compNext}); err != nil {
				return Running, err
			}
		default:
			if err := r.append(Event{Kind: EvEnd, ID: id, Outcome: Compensated}); err != nil {
				return Running, err
			}
		}
	}
}

// act runs an action with forward recovery: up to Retries retries unless
// the error is Permanent.
func (r *Runner) act(ctx context.Context, st Step, id string) error {
	var err error
	for attempt := 0; attempt <= r.cfg.Retries; attempt++ {
		if attempt > 0 && !sleep(ctx, r.cfg.Backoff) {
			return ctx.Err()
		}
		if err = st.Action(ctx, id); err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return err
		}
		r.logger.Debug("saga: action failed; retrying", "saga", id, "step", st.Name, "attempt", attempt+1, "err", err)
	}
	return err
}

// compensate runs a compensation until it succeeds or ctx ends.
func (r *Runner) compensate(ctx context.Context, st Step, id string) error {
	if st.Compensate == nil {
		return nil
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 && !sleep(ctx, r.cfg.Backoff) {
			return ctx.Err()
		}
		err := st.Compensate(ctx, id)
		if err == nil {
			return nil
		}
		r.logger.Debug("saga: compensation failed; retrying", "saga", id, "step", st.Name, "err", err)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
