package study

import (
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stylespace/style"
)

// memSource is an in-memory style.FeatureSource.
type memSource struct {
	dim  int
	data []float32
}

func (m *memSource) Len() int { return len(m.data) / m.dim }
func (m *memSource) Dim() int { return m.dim }
func (m *memSource) FeatureTo(dst []float32, i int) []float32 {
	copy(dst, m.data[i*m.dim:(i+1)*m.dim])
	return dst
}

// cvData builds items with one of k hidden 4-D styles and an 8-D nuisance
// three times larger, mixed into dim non-negative features, and n pairs
// among them, a fraction pos compatible (same style).
func cvData(k, perStyle, dim, n int, pos float64) (*memSource, []style.LabeledPair) {
	rng := rand.New(rand.NewPCG(1, 7))
	const sd, nd = 4, 8
	mix := make([]float64, dim*(sd+nd))
	for i := range mix {
		mix[i] = rng.NormFloat64() / math.Sqrt(sd+nd)
	}
	styles := make([][sd]float64, k)
	for s := range styles {
		for j := range sd {
			styles[s][j] = rng.NormFloat64()
		}
	}
	items := k * perStyle
	src := &memSource{dim: dim, data: make([]float32, items*dim)}
	z := make([]float64, sd+nd)
	for i := range items {
		copy(z, styles[i%k][:])
		for j := sd; j < sd+nd; j++ {
			z[j] = 3 * rng.NormFloat64()
		}
		for r := range dim {
			v := 10.0
			for c, zc := range z {
				v += mix[r*(sd+nd)+c] * zc
			}
			src.data[i*dim+r] = float32(max(v, 0))
		}
	}
	var pairs []style.LabeledPair
	for len(pairs) < n {
		a, b := rng.IntN(items), rng.IntN(items)
		want := rng.Float64() < pos
		if a == b || (a%k == b%k) != want {
			continue
		}
		l := 0
		if want {
			l = 1
		}
		pairs = append(pairs, style.LabeledPair{A: a, B: b, Label: l})
	}
	return src, pairs
}

// TestCrossValidatePicksBetter: a learning rate too small to learn in 20
// epochs scores near chance, and on this data (the style entangled with a
// larger nuisance) a hidden layer separates the styles far better than
// the one-layer head: the grid must choose the hidden layer with the
// working learning rate. Everything is seeded; the chosen setting scores
// about 0.86 and the others about 0.55 or less.
func TestCrossValidatePicksBetter(t *testing.T) {
	src, pairs := cvData(12, 64, 48, 6000, 0.3)
	g := &Grid{Dims: []int{8}, Hidden: [][]int{nil, {32}}, LRs: []float64{1e-6, 3e-3}}
	res, err := CrossValidate(context.Background(), src, pairs, g, &CVOptions{Folds: 3, Seed: 2, Epochs: 20, BatchSize: 32, Workers: 2})
	require.NoError(t, err)
	require.Len(t, res.Results, 4)
	for _, r := range res.Results {
		t.Logf("%s: AUC %.4f ± %.4f %v", r.Setting, r.Mean, r.Std, r.AUCs)
		assert.Len(t, r.AUCs, 3)
	}
	best := res.Results[res.Best].Setting
	assert.Equal(t, []int{32}, best.Hidden, "chosen setting %s", best)
	assert.Equal(t, 3e-3, best.LR, "chosen setting %s", best)
	for i, r := range res.Results {
		if i != res.Best {
			assert.Greater(t, res.Results[res.Best].Mean, r.Mean+0.2, "the chosen setting is clearly better than %s", r.Setting)
		}
	}
}

// TestCrossValidateWorkersResume: the result does not depend on Workers,
// and a run cancelled after two trainings, then rerun with the same
// journal folder, trains only the rest and gives the uninterrupted result.
func TestCrossValidateWorkersResume(t *testing.T) {
	src, pairs := cvData(6, 24, 16, 400, 0.2)
	g := &Grid{Dims: []int{4}, Margins: []float64{0.5, 1}}
	opts := func(workers int, dir string) *CVOptions {
		return &CVOptions{Folds: 3, Seed: 4, Epochs: 3, BatchSize: 16, Workers: workers, Dir: dir}
	}
	ctx := context.Background()
	r1, err := CrossValidate(ctx, src, pairs, g, opts(1, ""))
	require.NoError(t, err)
	r2, err := CrossValidate(ctx, src, pairs, g, opts(2, ""))
	require.NoError(t, err)
	assert.Equal(t, r1, r2, "Workers 1 and 2")

	dir := filepath.Join(t.TempDir(), "cv")
	cctx, cancel := context.WithCancel(ctx)
	o := opts(2, dir)
	o.Progress = func(p style.Progress) {
		if p.Done == 2 {
			cancel()
		}
	}
	_, err = CrossValidate(cctx, src, pairs, g, o)
	require.ErrorIs(t, err, context.Canceled)
	journal, err := os.ReadFile(filepath.Join(dir, "cv.jsonl"))
	require.NoError(t, err)
	first := strings.Count(string(journal), "\n")
	require.GreaterOrEqual(t, first, 2)
	require.Less(t, first, 6, "the cancelled run finished everything")

	var trained int
	o = opts(1, dir)
	o.Progress = func(p style.Progress) { trained++ }
	r3, err := CrossValidate(ctx, src, pairs, g, o)
	require.NoError(t, err)
	assert.Equal(t, 6-first, trained, "trainings of the resumed run")
	assert.Equal(t, r1, r3, "resumed and uninterrupted results")

	// A truncated last line (a write cut short) is dropped and redone.
	journal, err = os.ReadFile(filepath.Join(dir, "cv.jsonl"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cv.jsonl"), journal[:len(journal)-5], 0o644))
	trained = 0
	r4, err := CrossValidate(ctx, src, pairs, g, o)
	require.NoError(t, err)
	assert.Equal(t, 1, trained)
	assert.Equal(t, r1, r4)

	// Records of other pairs are not reused.
	other := slices.Clone(pairs)
	other[0].Label = 1 - other[0].Label
	trained = 0
	_, err = CrossValidate(ctx, src, other, g, o)
	require.NoError(t, err)
	assert.Equal(t, 6, trained, "trainings with other pairs")
}

func TestCrossValidateErrors(t *testing.T) {
	src, pairs := cvData(6, 24, 16, 100, 0.2)
	ctx := context.Background()
	_, err := CrossValidate(ctx, src, pairs, nil, &CVOptions{Folds: 2})
	assert.ErrorContains(t, err, "at least 3")
	_, err = CrossValidate(ctx, src, pairs, nil, &CVOptions{Workers: -1})
	assert.ErrorContains(t, err, "Workers is -1")
	_, err = CrossValidate(ctx, src, pairs, &Grid{Hidden: [][]int{{0}}}, &CVOptions{Folds: 3, Epochs: 1})
	assert.ErrorContains(t, err, "hidden layer 0 has width 0")
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cv.jsonl"), []byte("{not json\n"), 0o644))
	_, err = CrossValidate(ctx, src, pairs, nil, &CVOptions{Folds: 3, Epochs: 1, Dir: dir})
	assert.ErrorContains(t, err, "cv.jsonl line 1")
}

func TestRefitEpochs(t *testing.T) {
	for _, c := range []struct {
		epochs []int
		want   int
	}{
		{nil, 0},
		{[]int{7}, 7},
		{[]int{9, 3, 5}, 5},
		{[]int{12, 3, 4, 30, 5}, 5},
		{[]int{4, 9}, 7}, // (4+9)/2 rounded up
		{[]int{2, 8, 4, 6}, 5},
	} {
		assert.Equal(t, c.want, SettingResult{Epochs: c.epochs}.RefitEpochs(), "%v", c.epochs)
	}
}

// TestCrossValidateEpochs: each fold records the epoch early stopping
// kept, the same after a resume from the journal; a journal record
// without epochs (an older format) is trained again.
func TestCrossValidateEpochs(t *testing.T) {
	src, pairs := cvData(6, 24, 16, 400, 0.2)
	g := &Grid{Dims: []int{4}}
	dir := t.TempDir()
	o := &CVOptions{Folds: 3, Seed: 4, Epochs: 12, Patience: 2, BatchSize: 16, Workers: 2, Dir: dir}
	ctx := context.Background()
	r1, err := CrossValidate(ctx, src, pairs, g, o)
	require.NoError(t, err)
	for _, e := range r1.Results[0].Epochs {
		assert.True(t, e >= 1 && e <= 12, "epochs %v", r1.Results[0].Epochs)
	}

	journal, err := os.ReadFile(filepath.Join(dir, "cv.jsonl"))
	require.NoError(t, err)
	old := regexp.MustCompile(`,"epochs":\d+`).ReplaceAll(journal, nil)
	require.NotEqual(t, journal, old)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cv.jsonl"), old, 0o644))
	trained := 0
	o.Progress = func(style.Progress) { trained++ }
	r2, err := CrossValidate(ctx, src, pairs, g, o)
	require.NoError(t, err)
	assert.Equal(t, 3, trained, "records without epochs are trained again")
	assert.Equal(t, r1, r2)
}

func TestGridSettings(t *testing.T) {
	s := (&Grid{}).Settings()
	require.Len(t, s, 1)
	assert.Equal(t, Setting{Margin: 1, Dim: 128, LR: 1e-3}, s[0])
	s = (&Grid{Margins: []float64{0.5, 1, 2}, Dims: []int{64, 128}, Hidden: [][]int{nil, {512}}, LRs: []float64{1e-3, 3e-4}}).Settings()
	assert.Len(t, s, 24)
	assert.Equal(t, "margin 0.5, dim 64, l2 0, hidden 512, lr 0.0003", s[3].String())
}

// TestCrossValidateGridValues: a grid value no head or trainer takes is
// an error before any training; zero is one too, as the library would
// read it as its default while the setting says 0.
func TestCrossValidateGridValues(t *testing.T) {
	src, pairs := cvData(6, 24, 16, 100, 0.2)
	for _, c := range []struct {
		grid Grid
		want string
	}{
		{Grid{Margins: []float64{1, 0}}, "margin 0 is not"},
		{Grid{Margins: []float64{math.NaN()}}, "margin NaN is not"},
		{Grid{Dims: []int{-4}}, "embedding length -4"},
		{Grid{L2s: []float64{math.Inf(1)}}, "L2 factor +Inf"},
		{Grid{Hidden: [][]int{nil, {8, -1}}}, "hidden layer 1 has width -1"},
		{Grid{LRs: []float64{-1e-3}}, "learning rate -0.001 is not"},
		{Grid{LRs: []float64{0}}, "learning rate 0 is not"},
	} {
		trained := 0
		_, err := CrossValidate(context.Background(), src, pairs, &c.grid, &CVOptions{
			Folds: 3, Epochs: 1, Progress: func(style.Progress) { trained++ },
		})
		assert.ErrorContains(t, err, c.want, "%+v", c.grid)
		assert.Zero(t, trained, "%+v: trainings before the error", c.grid)
	}
}
