package ann

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stylespace/style/internal/clustered"
)

// indexBytes returns what WriteTo writes for ix.
func indexBytes(t testing.TB, ix *Index) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := ix.WriteTo(&buf)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), n)
	return buf.Bytes()
}

// TestBuildDeterministic checks that the same vectors and Config give the
// same index, byte for byte, whatever the number of workers, and that
// another seed gives another graph.
func TestBuildDeterministic(t *testing.T) {
	n := 6000 // several full batches
	if testing.Short() || raceEnabled {
		n = 2500
	}
	const d = 24
	vecs := clustered.New(12, d, 6, 6, 0.1).Points(13, n)
	cfg := Config{M: 6, EfConstruction: 40, Seed: 14, Workers: 1}
	want := indexBytes(t, buildTest(t, vecs, d, &cfg))
	for _, w := range []int{1, 2, 3, 8} {
		cfg.Workers = w
		assert.True(t, bytes.Equal(want, indexBytes(t, buildTest(t, vecs, d, &cfg))), "Workers=%d", w)
	}
	cfg.Seed = 15
	assert.False(t, bytes.Equal(want, indexBytes(t, buildTest(t, vecs, d, &cfg))), "another seed")
}

// TestBuildConfig checks the defaults and the configuration errors, and
// that Build leaves the Config alone.
func TestBuildConfig(t *testing.T) {
	vecs := []float32{0, 0, 1, 1, 2, 2}
	ix := buildTest(t, vecs, 2, nil)
	assert.Equal(t, DefaultM, ix.m)
	assert.Equal(t, 2*DefaultM, ix.m0)
	assert.Equal(t, DefaultEfConstruction, ix.efc)

	cfg := Config{M: 5, EfConstruction: 3}
	ix = buildTest(t, vecs, 2, &cfg)
	assert.Equal(t, 5, ix.efc, "EfConstruction raised to M")
	assert.Equal(t, Config{M: 5, EfConstruction: 3}, cfg)

	for _, tc := range []struct {
		cfg Config
		msg string
	}{
		{Config{M: 1}, "style: ann: M 1 out of range [2, 128]"},
		{Config{M: MaxM + 1}, "style: ann: M 129 out of range [2, 128]"},
		{Config{EfConstruction: -1}, "style: ann: EfConstruction -1 out of range [1, 65536]"},
		{Config{EfConstruction: MaxEfConstruction + 1}, "style: ann: EfConstruction 65537 out of range [1, 65536]"},
		{Config{Workers: -1}, "style: ann: negative Workers -1"},
	} {
		_, err := Build(context.Background(), vecs, 2, &tc.cfg, nil)
		assert.EqualError(t, err, tc.msg)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		_, err := Build(context.Background(), []float32{0, 0, 1, bad}, 2, nil, nil)
		assert.EqualError(t, err, fmt.Sprintf("style: ann: vector 1 component 1 is %v", bad))
	}
}

// TestBuildPanics checks the documented panics on shape errors.
func TestBuildPanics(t *testing.T) {
	assert.PanicsWithValue(t, "style: ann: dimension 0", func() {
		Build(context.Background(), nil, 0, nil, nil)
	})
	assert.PanicsWithValue(t, "style: ann: 5 values are not rows of 2", func() {
		Build(context.Background(), make([]float32, 5), 2, nil, nil)
	})
}

// TestBuildCancel checks that a cancelled context stops the build between
// batches and within one: no progress is reported after the
// cancellation, and ctx.Err() comes back.
func TestBuildCancel(t *testing.T) {
	const d = 16
	vecs := clustered.New(16, d, 4, 4, 0.1).Points(17, 5000)
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(nil)
	_, err := Build(ctx, vecs, d, nil, nil)
	assert.ErrorIs(t, err, context.Canceled)

	for _, at := range []int{1, 2000} {
		ctx, cancel = context.WithCancelCause(context.Background())
		stop := errors.New("stop")
		cancelled, last := false, 0
		_, err = Build(ctx, vecs, d, &Config{Workers: 2}, func(done, total int) {
			require.False(t, cancelled, "progress after cancellation")
			require.Equal(t, 5000, total)
			require.Greater(t, done, last)
			last = done
			if done >= at {
				cancelled = true
				cancel(stop)
			}
		})
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, context.Cause(ctx), stop)
		assert.True(t, cancelled)
		assert.Less(t, last, 5000)
	}
}

// TestBuildCancelInBatch checks that a cancellation in the middle of a
// batch stops every worker after the node it is on.
func TestBuildCancelInBatch(t *testing.T) {
	const d, workers = 16, 3
	vecs := clustered.New(16, d, 4, 4, 0.1).Points(17, 5000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var nodes, after atomic.Int32
	testHookNode = func() {
		switch k := nodes.Add(1); {
		case k == 3000: // within the batch of nodes [2816, 3072)
			cancel()
		case k > 3000:
			after.Add(1)
		}
	}
	t.Cleanup(func() { testHookNode = nil })
	_, err := Build(ctx, vecs, d, &Config{Workers: workers}, nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.LessOrEqual(t, int(after.Load()), workers-1, "nodes started after the cancellation")
}

// TestBuildProgress checks that progress counts up to the total.
func TestBuildProgress(t *testing.T) {
	const d = 4
	vecs := clustered.New(18, d, 2, 2, 0.1).Points(19, 3000)
	var seen []int
	_, err := Build(context.Background(), vecs, d, nil, func(done, total int) {
		assert.Equal(t, 3000, total)
		seen = append(seen, done)
	})
	require.NoError(t, err)
	require.NotEmpty(t, seen)
	assert.IsIncreasing(t, seen)
	assert.Equal(t, 3000, seen[len(seen)-1])
}
