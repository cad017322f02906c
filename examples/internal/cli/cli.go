// Package cli holds the flag handling every example shares: -h prints the
// usage and exits 0, an unknown flag or a stray argument prints the usage
// and exits 2, so no example runs its whole demo when asked for help.
package cli

import (
	"errors"
	"flag"
	"fmt"
)

// Parse parses args into fs, which must use flag.ContinueOnError and
// print its usage with fs.Usage. It returns flag.ErrHelp for -h or -help,
// and an error (after printing the usage) for an unknown flag or for any
// argument left over after the flags: the examples take none.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q", fs.Arg(0))
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
		fs.Usage()
		return err
	}
	return nil
}

// ExitCode is the process exit code for an error from Parse: 0 for a
// request for help, 2 (as the flag package uses) for bad usage.
func ExitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
