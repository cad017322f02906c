// Package zerotest checks the promise every distkit package makes about
// zero values and nil receivers: calling an exported method on a value not
// built by its constructor returns an error or a harmless zero result; it
// never panics and never hangs.
//
// Sweep calls every exported method of each given value with zero
// arguments (a live context.Context for context parameters, no-op
// functions for function parameters, empty non-nil slices and maps) and
// fails the test naming the type and method that panicked or did not
// return. Pass both a typed nil pointer and a pointer to a zero value:
//
//	zerotest.Sweep(t, (*hashring.Ring)(nil), new(hashring.Ring))
//
// Methods documented to need a non-nil receiver (like writing to a nil
// map) are named in a NonNil set: SweepNonNil still calls them on zero
// values, but not through nil pointers.
package zerotest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// hangLimit is how long one call may take before the sweep reports it as
// hung. It is a safety net, not a timing assertion: a zero value's method
// either returns at once or blocks forever.
var hangLimit = 10 * time.Second

// NonNil names methods ("(*pkg.Type).Method") documented to need a non-nil
// receiver.
type NonNil map[string]bool

// Sweep calls every exported method of every value in values (see the
// package doc) and reports panics and hangs as test failures.
func Sweep(t testing.TB, values ...any) {
	t.Helper()
	SweepNonNil(t, nil, values...)
}

// SweepNonNil is Sweep that calls the methods named in nonNil only on
// zero values, not through nil pointers.
func SweepNonNil(t testing.TB, nonNil NonNil, values ...any) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, v := range values {
		rv := reflect.ValueOf(v)
		if !rv.IsValid() {
			t.Errorf("zerotest: untyped nil value; pass a typed nil like (*T)(nil)")
			continue
		}
		label := describe(rv)
		rt := rv.Type()
		for i := 0; i < rt.NumMethod(); i++ {
			m := rt.Method(i)
			name := fmt.Sprintf("%s.%s", typeName(rt), m.Name)
			isNil := rv.Kind() == reflect.Pointer && rv.IsNil()
			if (isNil && nonNil[name]) || !m.IsExported() {
				continue
			}
			args := zeroArgs(ctx, m.Type)
			if err := call(rv.Method(i), args, m.Type.IsVariadic()); err != "" {
				t.Errorf("%s on %s %s", name, label, err)
			}
		}
	}
}

// call invokes fn with args (the last one a slice for a variadic fn) and
// reports a panic or a hang.
func call(fn reflect.Value, args []reflect.Value, variadic bool) string {
	done := make(chan string, 1) // the call's verdict; buffered so a late return never blocks
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Sprintf("panicked: %v", r)
			}
		}()
		if variadic {
			fn.CallSlice(args)
		} else {
			fn.Call(args)
		}
		done <- ""
	}()
	timer := time.NewTimer(hangLimit)
	defer timer.Stop()
	select {
	case verdict := <-done:
		return verdict
	case <-timer.C:
		return fmt.Sprintf("did not return within %v", hangLimit)
	}
}

// zeroArgs builds arguments for a method value of type mt (receiver
// excluded, as rt.Method(i).Type includes it: skip index 0).
func zeroArgs(ctx context.Context, mt reflect.Type) []reflect.Value {
	ctxType := reflect.TypeFor[context.Context]()
	n := mt.NumIn() - 1
	args := make([]reflect.Value, 0, n)
	for i := 1; i <= n; i++ {
		in := mt.In(i)
		if mt.IsVariadic() && i == n {
			args = append(args, reflect.MakeSlice(in, 0, 0))
			continue
		}
		switch {
		case in == ctxType:
			args = append(args, reflect.ValueOf(ctx))
		case in.Kind() == reflect.Func:
			args = append(args, reflect.MakeFunc(in, func([]reflect.Value) []reflect.Value {
				out := make([]reflect.Value, in.NumOut())
				for j := range out {
					out[j] = reflect.Zero(in.Out(j))
				}
				return out
			}))
		case in.Kind() == reflect.Slice:
			args = append(args, reflect.MakeSlice(in, 0, 0))
		case in.Kind() == reflect.Map:
			args = append(args, reflect.MakeMap(in))
		default:
			args = append(args, reflect.Zero(in))
		}
	}
	return args
}

func typeName(rt reflect.Type) string {
	if rt.Kind() == reflect.Pointer {
		return "(*" + rt.Elem().String() + ")"
	}
	return rt.String()
}

func describe(rv reflect.Value) string {
	if rv.Kind() == reflect.Pointer && rv.IsNil() {
		return "a nil pointer"
	}
	return "a zero value"
}
