//go:build unix

package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style/examples/internal/cli"
)

// TestShutdown runs the command, sends it SIGTERM while a request is in
// flight, and checks that readiness turns 503 at once, the request
// completes, and the command then returns cleanly and stops listening.
func TestShutdown(t *testing.T) {
	f := newFixture(t)
	b := newBlocker()
	addrc := make(chan string, 1)
	hooks := &runHooks{
		setup:   func(s *server) { s.beforeExtract = b.hook },
		started: func(addr string) { addrc <- addr },
	}
	logs := &syncBuffer{}
	args := []string{"-addr", "127.0.0.1:0", "-head", f.head, "-catalog", f.catalog, "-images", f.images,
		"-meta", f.meta, "-weights-seed", "1", "-weights-divisor", "8", "-drain-delay", "1s", "-shutdown-timeout", "20s"}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, logs, hooks) }()
	var base string
	select {
	case addr := <-addrc:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("run: %v\n%s", err, logs)
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 10*time.Millisecond, "the model loads: %s", logs)

	inflight := make(chan response, 1)
	go func() { inflight <- scoreFiles(t, base, f.photos[0], f.photos[1]) }()
	<-b.entered

	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	// Readiness turns 503 while the listener still accepts connections
	// (the drain delay), and the request in flight goes on.
	require.Eventually(t, func() bool {
		return get(t, base+"/readyz").status == http.StatusServiceUnavailable
	}, 2*time.Second, 5*time.Millisecond)
	resp := get(t, base+"/readyz")
	var st map[string]string
	resp.json(t, &st)
	assert.Equal(t, "shutting down", st["status"])
	select {
	case err := <-done:
		t.Fatalf("run returned with a request in flight: %v", err)
	default:
	}

	close(b.release)
	resp = <-inflight
	assert.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	var got scoreResult
	resp.json(t, &got)
	assert.Positive(t, got.Distance)

	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after shutdown")
	}
	_, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
	assert.Error(t, err, "the listener is closed")
	out := logs.String()
	assert.Contains(t, out, "msg=\"shutting down\"")
	assert.Contains(t, out, "msg=stopped")
	assert.Less(t, strings.Index(out, "msg=\"shutting down\""), strings.LastIndex(out, "path=/api/score status=200"),
		"the request completed after shutdown began")
}

// TestShutdownExitStatus runs the program itself as a subprocess: stopped
// by SIGTERM once its model is loaded, it shuts down gracefully and exits
// with status 0, a server's normal end; -h exits 0 too, and a bad flag 2.
func TestShutdownExitStatus(t *testing.T) {
	f := newFixture(t)
	args := strings.Join([]string{"-addr", "127.0.0.1:0", "-head", f.head, "-catalog", f.catalog, "-images", f.images,
		"-meta", f.meta, "-weights-seed", "1", "-weights-divisor", "8", "-shutdown-timeout", "20s"}, " ")
	code, errOut, signalled, err := cli.Terminate("SERVE_TEST_MAIN", args, func(line string) bool {
		return strings.Contains(line, `msg="model loaded"`)
	})
	require.NoError(t, err)
	require.True(t, signalled, "the model did not load:\n%s", errOut)
	assert.Equal(t, cli.ExitOK, code, errOut)
	assert.Contains(t, errOut, `msg="shutting down"`)
	assert.Contains(t, errOut, "msg=stopped")
	assert.NotContains(t, errOut, "interrupted")

	never := func(string) bool { return false }
	code, errOut, _, err = cli.Terminate("SERVE_TEST_MAIN", "-h", never)
	require.NoError(t, err)
	assert.Equal(t, cli.ExitOK, code, errOut)
	assert.Contains(t, errOut, "Usage: serve")
	code, errOut, _, err = cli.Terminate("SERVE_TEST_MAIN", "-head h -queue -1", never)
	require.NoError(t, err)
	assert.Equal(t, cli.ExitUsage, code, errOut)
	assert.Contains(t, errOut, "serve: -queue -1: must not be negative\nRun serve -h for help.")
}
