package cli

// Running a program as a subprocess of its own test binary, to test its
// exit status and its handling of signals.

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// RunAsMain, called first in a test binary's TestMain, runs the program's
// main instead of the tests when the environment variable env is "1",
// with the space-separated arguments of env+"_ARGS" (see Terminate).
func RunAsMain(env, name string, main func()) {
	if os.Getenv(env) != "1" {
		return
	}
	os.Args = append([]string{name}, strings.Fields(os.Getenv(env+"_ARGS"))...)
	main()
	os.Exit(0)
}

// Terminate runs the current test binary as the program (see RunAsMain)
// with args, sends it SIGTERM when a line it writes to its standard error
// satisfies at, and waits for it to end. It returns the exit status, the
// standard error, and whether the signal was sent.
func Terminate(env, args string, at func(line string) bool) (code int, stderr string, signalled bool, err error) {
	return Signal(env, args, syscall.SIGTERM, at)
}

// Signal is Terminate with the signal sig instead of SIGTERM; the exit
// status of a process ended by the signal itself (SIGKILL) is -1.
func Signal(env, args string, sig syscall.Signal, at func(line string) bool) (code int, stderr string, signalled bool, err error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env+"=1", env+"_ARGS="+args)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return 0, "", false, err
	}
	if err := cmd.Start(); err != nil {
		return 0, "", false, err
	}
	var out strings.Builder
	sc := bufio.NewScanner(pipe)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if !signalled && at(line) {
			if err := cmd.Process.Signal(sig); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				return 0, out.String(), false, err
			}
			signalled = true
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String(), signalled, nil
	}
	return 0, out.String(), signalled, err
}
