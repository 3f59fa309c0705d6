package engine

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The worker pool of the module, with two entry points: For runs one
// parallel loop; a Team runs many loops in a row on goroutines started
// once. Both hand the indices out in increasing order to whichever
// goroutine is free, and tell the body which goroutine calls it, so that
// callers keep per-worker scratch. Results stay independent of the
// number of workers as long as each index writes its own outputs (the
// callers partition outputs, never reductions).

// Workers resolves a Workers setting: n if it is positive, else
// runtime.GOMAXPROCS(0).
func Workers(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}

// For calls body(w, i) for every i in [0, n), on at most workers
// goroutines (the calling one among them), and returns when all calls
// have returned. The indices are handed out in increasing order as the
// goroutines become free. w, in [0, workers), identifies the goroutine
// making the call: calls with the same w never overlap, so body may use
// per-worker scratch indexed by w. With workers <= 1 or n <= 1 the calls
// run in order on the calling goroutine, with w = 0. No goroutine
// outlives the call.
func For(workers, n int, body func(w, i int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for i := range n {
			body(0, i)
		}
		return
	}
	l := &loop{n: n, body: body}
	l.done.Add(workers - 1)
	for w := 1; w < workers; w++ {
		go l.helper(w)
	}
	l.run(0)
	l.done.Wait()
}

// loop is one parallel loop: the next index to hand out and the body.
type loop struct {
	n    int
	body func(w, i int)
	next atomic.Int64
	done sync.WaitGroup // For's helpers still running
}

// run calls the body as goroutine w until no index is left.
func (l *loop) run(w int) {
	for {
		i := int(l.next.Add(1) - 1)
		if i >= l.n {
			return
		}
		l.body(w, i)
	}
}

func (l *loop) helper(w int) {
	defer l.done.Done()
	l.run(w)
}

// A Team runs parallel loops like For on the calling goroutine and
// workers-1 helper goroutines that NewTeam starts and Close stops, so
// that a loop starts no goroutine and allocates nothing: for callers
// running many short loops in a row (the phases of one matrix product,
// the iterations of t-SNE). A Team is used by one goroutine at a time
// and must be closed.
type Team struct {
	helpers int
	l       loop
	wake    chan struct{}  // one token per helper and loop
	busy    sync.WaitGroup // helpers working on the current loop
	alive   sync.WaitGroup // helpers not yet exited
}

// NewTeam starts a team of workers goroutines: the caller of For and
// workers-1 helpers. With workers <= 1 it starts none and For runs
// serially.
func NewTeam(workers int) *Team {
	t := &Team{helpers: max(0, workers-1), wake: make(chan struct{})}
	t.alive.Add(t.helpers)
	for w := 1; w <= t.helpers; w++ {
		go t.helper(w)
	}
	return t
}

func (t *Team) helper(w int) {
	defer t.alive.Done()
	for range t.wake {
		t.l.run(w)
		t.busy.Done()
	}
}

// For is the package function For on the team's goroutines: it calls
// body(w, i) for every i in [0, n), w identifying the calling goroutine
// (0 for the caller), and returns when all calls have returned.
func (t *Team) For(n int, body func(w, i int)) {
	h := min(t.helpers, n-1)
	if h <= 0 {
		for i := range n {
			body(0, i)
		}
		return
	}
	t.l.n, t.l.body = n, body
	t.l.next.Store(0)
	t.busy.Add(h)
	for range h {
		t.wake <- struct{}{}
	}
	t.l.run(0)
	t.busy.Wait()
	t.l.body = nil // do not retain the caller's closure
}

// Close stops the helpers and waits until they have exited.
func (t *Team) Close() {
	close(t.wake)
	t.alive.Wait()
}
