package txn

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/distkit/distkit/transport"
)

// loop is the goroutine shared by the runtime drivers: it waits for work
// (a notification or a tick), then lets process drain the core. One
// goroutine per driver does all I/O, so the records of everything that
// happened while it was busy go to the log in one batch: one fsync for
// many transactions (group commit).
type loop struct {
	notify chan struct{} // size 1: a pending notification is enough
	done   chan struct{} // closed by stop
	wg     sync.WaitGroup
	once   sync.Once
}

func newLoop() *loop {
	return &loop{notify: make(chan struct{}, 1), done: make(chan struct{})}
}

func (l *loop) wake() {
	select {
	case l.notify <- struct{}{}:
	default:
	}
}

func (l *loop) start(tick time.Duration, onTick func(), process func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-l.notify:
			case <-t.C:
				onTick()
			}
			process()
		}
	}()
}

func (l *loop) stop() {
	l.once.Do(func() { close(l.done) })
	l.wg.Wait()
}

// send marshals and sends the messages of a Ready. Errors are only logged:
// every message is retried by the protocol until it is answered. No
// deadline is needed: Transport.Send never blocks for long (a full queue
// is an error, and the message is retried like a lost one).
func send(ctx context.Context, t transport.Transport, log *slog.Logger, msgs []Envelope) {
	if len(msgs) == 0 {
		return
	}
	debug := log.Enabled(ctx, slog.LevelDebug)
	for _, e := range msgs {
		b, err := e.Msg.MarshalBinary()
		if err != nil {
			log.Error("txn: marshal", "msg", e.Msg.String(), "err", err)
			continue
		}
		err = t.Send(ctx, e.To, e.Service, b)
		switch {
		case err != nil && debug:
			log.Debug("txn: send failed", "to", e.To, "msg", e.Msg.String(), "err", err)
		case debug:
			log.Debug("txn: send", "to", e.To, "msg", e.Msg.String())
		}
	}
}

func logRecords(log *slog.Logger, recs []Record) {
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	for _, r := range recs {
		log.Debug("txn: log", "record", r.String())
	}
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
