package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"
)

// Exit statuses of the example programs.
const (
	ExitOK          = 0   // success, or -h
	ExitError       = 1   // any error
	ExitUsage       = 2   // a bad flag or argument
	ExitInterrupted = 130 // stopped by Ctrl-C (SIGINT) or SIGTERM
)

// UsageError is a mistake in the command line: a bad flag, value or
// argument count. Programs exit with ExitUsage for it.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a *UsageError with a formatted message.
func Usagef(format string, args ...any) error {
	return &UsageError{fmt.Errorf(format, args...)}
}

// ExitCode maps the error run returned to the program's exit status:
// ExitOK for nil and for -h (flag.ErrHelp), ExitInterrupted when the
// program was interrupted (whatever the error), ExitUsage for a
// *UsageError and ExitError otherwise.
func ExitCode(err error, interrupted bool) int {
	switch {
	case interrupted:
		return ExitInterrupted
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	}
	var u *UsageError
	if errors.As(err, &u) {
		return ExitUsage
	}
	return ExitError
}

// internalPrefix matches the package, function and method prefixes of
// library errors ("style: ", "study: ", "picture: ", "style:
// GenerateWeights: ", "Study.Run: "), at the start of a message or after
// another ": ".
var internalPrefix = regexp.MustCompile(`(^|: )((style|study|picture)(\.[A-Za-z]+)*: ([A-Z][A-Za-z]*(\.[A-Z][A-Za-z]*)?: )?|[A-Z][A-Za-z]*\.[A-Z][A-Za-z]*: )`)

// Message is err's text for a user: the library's internal prefixes
// removed (what they wrap, such as file names, is kept).
func Message(err error) string {
	s := err.Error()
	for {
		t := internalPrefix.ReplaceAllString(s, "$1")
		if t == s {
			return s
		}
		s = t
	}
}

// resumable is an error of interrupted work that a new run resumes.
type resumable struct {
	err  error
	hint string
}

func (e *resumable) Error() string { return e.err.Error() }
func (e *resumable) Unwrap() error { return e.err }

// Resumable marks err, the error of work stopped by an interruption, as
// resumable: Main then adds hint (how to resume) to "interrupted". Programs
// call it only when something was kept for the next run to resume from.
func Resumable(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &resumable{err, hint}
}

// Main runs an example program's run function with the command-line
// arguments, standard output and error, and a context cancelled by Ctrl-C
// (SIGINT) or SIGTERM, and exits with the status ExitCode gives. An error
// is printed as "name: message" (see Message). After an interruption it
// prints "name: interrupted", with how to resume when run returned an
// error marked by Resumable.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	interrupted := ctx.Err() != nil
	stop()
	os.Exit(report(os.Stderr, name, err, interrupted))
}

// MainService is Main for a program that runs until it is stopped, such
// as a server: run gets a context that is never cancelled, and handles
// SIGINT and SIGTERM itself (a graceful shutdown on the first, the default
// handling restored for a second). Being stopped by a signal is such a
// program's normal end, not an interruption: the exit status is
// ExitCode(err, false), ExitOK when run returns nil after stopping
// cleanly, and err is printed as Main prints it.
func MainService(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(report(os.Stderr, name, err, false))
}

// report prints err and the interruption notice for Main and returns the
// exit status.
func report(stderr io.Writer, name string, err error, interrupted bool) int {
	code := ExitCode(err, interrupted)
	switch {
	case interrupted:
		msg := "interrupted"
		var r *resumable
		if errors.As(err, &r) && r.hint != "" {
			msg += "; " + r.hint
		}
		fmt.Fprintf(stderr, "%s: %s\n", name, msg)
	case code != ExitOK:
		fmt.Fprintf(stderr, "%s: %s\n", name, Message(err))
		if code == ExitUsage {
			fmt.Fprintf(stderr, "Run %s -h for help.\n", name)
		}
	}
	return code
}

// Parse parses args with fl, accepting flags before, between and after
// the positional arguments (evaluate a.jpg b.jpg -json); "--" ends the
// flags. It returns the positional arguments. An unknown or malformed flag
// is a *UsageError (flag.ErrHelp is returned as it is, after fl's usage is
// printed).
func Parse(fl *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &UsageError{err}
		}
		rest := fl.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fl stopped at a positional argument, or after "--".
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}
