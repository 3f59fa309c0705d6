package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
)

// Main runs an example program's run function with the command-line
// arguments, standard output and error, and a context cancelled by Ctrl-C.
// It exits with status 2 for a usage error (after -h, say), 1 for any other
// error, printed as "name: error"; after an interrupt it adds interrupted,
// if not empty, as a hint (for example how to resume).
func Main(name, interrupted string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	if ctx.Err() != nil && interrupted != "" {
		fmt.Fprintf(os.Stderr, "%s: %s\n", name, interrupted)
	}
	os.Exit(1)
}
