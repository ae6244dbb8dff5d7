// Package service owns the lifecycle the four Threadline binaries share: reading flags and
// THREADLINE_* variables, validating every component, -print-config, and running the service's
// long-lived parts until a signal or the first failure.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/threadline/threadline/pkg/config"
)

// ErrPrinted is returned by Parse after -print-config printed the configuration.
var ErrPrinted = errors.New("configuration printed")

// Validator is a component configuration that can check itself.
type Validator interface{ Validate() error }

// Parse reads env and args into fs, handles -print-config, and validates every component. Pass
// the components as pointers: they are read after parsing.
func Parse(fs *flag.FlagSet, args []string, out io.Writer, components ...Validator) error {
	printConfig := fs.Bool("print-config", false, "print the configuration (secrets masked) and exit")
	if err := config.Parse(fs, args, os.LookupEnv); err != nil {
		return err
	}
	var errs []error
	for _, c := range components {
		if err := c.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if *printConfig {
		if err := config.Print(out, fs); err != nil {
			return err
		}
		if err := errors.Join(errs...); err != nil {
			fmt.Fprintf(out, "# invalid: %v\n", err)
		}
		return ErrPrinted
	}
	return errors.Join(errs...)
}

// Run runs every part until ctx ends or one of them returns; the first error cancels the rest,
// and Run waits for all of them before returning that error.
func Run(ctx context.Context, parts ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for _, p := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p(ctx)
			if err != nil && !errors.Is(err, context.Canceled) {
				once.Do(func() { firstErr = err })
			}
			cancel()
		}()
	}
	wg.Wait()
	return firstErr
}
