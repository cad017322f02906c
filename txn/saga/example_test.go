package saga_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/distkit/distkit/txn/saga"
)

// A trip: book a flight, a hotel and a car. The car cannot be rented, so
// the hotel and the flight are cancelled, in reverse order.
func Example() {
	step := func(name string, fail bool) saga.Step {
		return saga.Step{Name: name,
			Action: func(context.Context, string) error {
				if fail {
					fmt.Println("book", name, "-> refused")
					return saga.Permanent(errors.New("no " + name + " left"))
				}
				fmt.Println("book", name)
				return nil
			},
			Compensate: func(context.Context, string) error {
				fmt.Println("cancel", name)
				return nil
			}}
	}
	r, err := saga.NewRunner(saga.NewMemoryLog(), saga.DefaultConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	r.Register(saga.Saga{Name: "trip", Steps: []saga.Step{step("flight", false), step("hotel", false), step("car", true)}})
	o, err := r.Run(context.Background(), "trip", "trip-1")
	fmt.Println(o, err, "-", r.Cause("trip-1"))
	// Output:
	// book flight
	// book hotel
	// book car -> refused
	// cancel car
	// cancel hotel
	// cancel flight
	// compensated <nil> - step 2 failed: no car left
}
