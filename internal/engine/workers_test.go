package engine

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWorkers(t *testing.T) {
	assert.Equal(t, 3, Workers(3))
	assert.Equal(t, runtime.GOMAXPROCS(0), Workers(0))
	assert.Equal(t, runtime.GOMAXPROCS(0), Workers(-2))
}

// checkLoop runs a loop of n indices through run and checks that every
// index is visited once, that w stays in [0, workers), that calls with
// the same w never overlap, and, when serial, that the indices come in
// order with w = 0.
func checkLoop(t *testing.T, workers, n int, run func(body func(w, i int))) {
	t.Helper()
	visits := make([]atomic.Int32, n)
	busy := make([]atomic.Int32, max(workers, 1))
	var order []int
	var bad atomic.Int32
	run(func(w, i int) {
		if w < 0 || w >= len(busy) {
			bad.Add(1)
			return
		}
		if busy[w].Add(1) != 1 {
			bad.Add(1) // two calls with the same w at once
		}
		if workers <= 1 {
			order = append(order, i)
		} else if i%7 == 0 {
			time.Sleep(10 * time.Microsecond) // let the others overtake
		}
		visits[i].Add(1)
		busy[w].Add(-1)
	})
	require.Zero(t, bad.Load(), "workers=%d n=%d: w out of range or reused concurrently", workers, n)
	for i := range visits {
		require.EqualValues(t, 1, visits[i].Load(), "workers=%d n=%d: index %d", workers, n, i)
	}
	if workers <= 1 {
		for i, v := range order {
			require.Equal(t, i, v, "serial loop out of order")
		}
	}
}

func TestFor(t *testing.T) {
	base := runtime.NumGoroutine()
	for _, workers := range []int{-1, 0, 1, 2, 3, 8} {
		for _, n := range []int{0, 1, 2, 5, 100} {
			checkLoop(t, workers, n, func(body func(w, i int)) { For(workers, n, body) })
		}
	}
	// No goroutine outlives For.
	assertGoroutines(t, base)
}

func TestTeam(t *testing.T) {
	base := runtime.NumGoroutine()
	for _, workers := range []int{0, 1, 2, 3, 8} {
		team := NewTeam(workers)
		for _, n := range []int{0, 1, 2, 5, 100, 3} {
			checkLoop(t, workers, n, func(body func(w, i int)) { team.For(n, body) })
		}
		team.Close()
	}
	assertGoroutines(t, base)
}

// assertGoroutines checks that at most n goroutines run, allowing the
// ones that have just returned a moment to be reaped.
func assertGoroutines(t *testing.T, n int) {
	t.Helper()
	for range 1000 {
		if runtime.NumGoroutine() <= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Errorf("%d goroutines left running, want at most %d", runtime.NumGoroutine(), n)
}

// TestTeamAllocs checks that a loop on a team allocates nothing once its
// body exists: t-SNE runs thousands of them per embedding.
func TestTeamAllocs(t *testing.T) {
	team := NewTeam(2)
	defer team.Close()
	out := make([]int, 64)
	body := func(_, i int) { out[i] += i }
	allocs := testing.AllocsPerRun(100, func() { team.For(len(out), body) })
	assert.Zero(t, allocs)
	assert.Equal(t, 101*63, out[63]) // 100 runs and the warm-up
}
