package lock_test

import (
	"testing"

	"github.com/distkit/distkit/internal/zerotest"
	"github.com/distkit/distkit/lock"
)

// TestZeroValuesDoNotPanic calls every exported method on nil pointers and
// zero values of the package's types: each returns an error or a harmless
// zero result, never a panic or a hang. (StateMachine.Apply is the
// consensus node's to call, on a machine made by NewStateMachine.)
func TestZeroValuesDoNotPanic(t *testing.T) {
	zerotest.SweepNonNil(t, zerotest.NonNil{
		"(*lock.Local).SetOnQueued":  true, // a test hook (export_test.go)
		"(*lock.StateMachine).Apply": true,
	},
		(*lock.Elector)(nil), new(lock.Elector),
		(*lock.Fence)(nil), new(lock.Fence),
		(*lock.Local)(nil), new(lock.Local),
		(*lock.Remote)(nil), new(lock.Remote),
		(*lock.Server)(nil), new(lock.Server),
		(*lock.Session)(nil), new(lock.Session),
		(*lock.Table)(nil), new(lock.Table),
		lock.ElectorConfig{}, lock.LocalConfig{}, lock.RemoteConfig{}, lock.ServerConfig{},
		lock.SessionConfig{}, lock.TableConfig{}, lock.Request{}, lock.Response{},
		lock.Op(0), lock.Token(0), lock.SessionID(0),
	)
}

// TestZeroSessionLockFails: the case the newcomer issue found — a zero
// Session's Lock panicked.
func TestZeroSessionLockFails(t *testing.T) {
	var s lock.Session
	if _, err := s.Lock(t.Context(), "inventory"); err == nil {
		t.Fatal("zero Session Lock succeeded; want an error")
	}
	select {
	case <-s.Done():
	default:
		t.Error("zero Session Done is open; want closed (it never held a lease)")
	}
}
