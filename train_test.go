package style

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// memFeatures is an in-memory FeatureSource for tests and benchmarks.
type memFeatures struct {
	dim  int
	data []float32
}

func (m *memFeatures) Len() int { return len(m.data) / m.dim }
func (m *memFeatures) Dim() int { return m.dim }
func (m *memFeatures) FeatureTo(dst []float32, i int) []float32 {
	if len(dst) != m.dim {
		panic("style: memFeatures: wrong dst length")
	}
	copy(dst, m.data[i*m.dim:(i+1)*m.dim])
	return dst
}

// goldenContrastive mirrors testdata/contrastive_rmsprop.json.
type goldenContrastive struct {
	Semantics string
	Margin    float64
	L2        float64
	LR        float64
	Rho       float64
	Eps       float64
	X1, X2    [][]float64
	Y         []float64
	Init      struct {
		W [][]float64
		B []float64
	}
	Steps []struct {
		Distances []float64
		DataLoss  float64     `json:"data_loss"`
		Loss      float64     `json:"loss"`
		GradW     [][]float64 `json:"grad_W"`
		GradB     []float64   `json:"grad_b"`
		WAfter    [][]float64 `json:"W_after"`
		BAfter    []float64   `json:"b_after"`
	}
}

func loadGoldenContrastive(t *testing.T) *goldenContrastive {
	t.Helper()
	b, err := os.ReadFile("testdata/contrastive_rmsprop.json")
	require.NoError(t, err)
	var g goldenContrastive
	require.NoError(t, json.Unmarshal(b, &g))
	require.Len(t, g.Steps, 3, "golden steps")
	require.Len(t, g.X1, 6, "golden pairs")
	require.Len(t, g.X1[0], 32, "golden feature length")
	require.Len(t, g.Init.W, 32, "golden kernel rows")
	require.Len(t, g.Init.W[0], 8, "golden kernel columns")
	return &g
}

func flat64(m [][]float64) []float64 {
	var r []float64
	for _, row := range m {
		r = append(r, row...)
	}
	return r
}

func to32(v []float64) []float32 {
	r := make([]float32, len(v))
	for i, x := range v {
		r[i] = float32(x)
	}
	return r
}

// checkClose fails if got and want differ by more than rel·|want| + abs. It
// returns the largest difference relative to rel·|want| + abs (at most 1).
func checkClose[T learnFloat](t *testing.T, what string, got []T, want []float64, rel, abs float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		tol := rel*math.Abs(want[i]) + abs
		if !(d <= tol) {
			t.Fatalf("%s[%d] = %.17g, want %.17g (diff %.3g)", what, i, float64(got[i]), want[i], d)
		}
		if tol > 0 {
			worst = math.Max(worst, d/tol)
		}
	}
	return worst
}

// TestContrastiveRMSPropGolden64 runs the three reference steps in float64
// with the generic reference arithmetic (dense, loss, L2, RMSProp) and
// requires agreement to 1e-9 relative: the reference is float64 too, so only
// summation order differs. The 1e-15 absolute term covers entries that are
// exactly zero (dead ReLU units).
func TestContrastiveRMSPropGolden64(t *testing.T) {
	g := loadGoldenContrastive(t)
	const n, in, out = 6, 32, 8
	x := append(flat64(g.X1), flat64(g.X2)...)
	labels := make([]int, n)
	for i, y := range g.Y {
		labels[i] = int(y)
	}
	w, b := flat64(g.Init.W), slices.Clone(g.Init.B)
	aw, ab := make([]float64, len(w)), make([]float64, len(b))
	h := make([]float64, 2*n*out)
	dh := make([]float64, 2*n*out)
	gw, gb := make([]float64, in*out), make([]float64, out)
	dist := make([]float64, n)
	for s, st := range g.Steps {
		denseForwardRef(h, x, w, b, 2*n, in, out)
		dataLoss := contrastiveEval(g.Margin, dh[:n*out], dh[n*out:], h[:n*out], h[n*out:], labels, dist)
		denseBackwardRef(gw, gb, nil, x, h, dh, w, 2*n, 2, in, out)
		loss := dataLoss + l2PenaltyRef(gw, w, g.L2)
		worst := checkClose(t, "distances", dist, st.Distances, 1e-9, 1e-15)
		worst = max(worst, checkClose(t, "data_loss", []float64{dataLoss}, []float64{st.DataLoss}, 1e-9, 0))
		worst = max(worst, checkClose(t, "loss", []float64{loss}, []float64{st.Loss}, 1e-9, 0))
		worst = max(worst, checkClose(t, "grad_W", gw, flat64(st.GradW), 1e-9, 1e-15))
		worst = max(worst, checkClose(t, "grad_b", gb, st.GradB, 1e-9, 1e-15))
		rmspropUpdate(w, gw, aw, g.LR, g.Rho, g.Eps)
		rmspropUpdate(b, gb, ab, g.LR, g.Rho, g.Eps)
		worst = max(worst, checkClose(t, "W_after", w, flat64(st.WAfter), 1e-9, 1e-15))
		worst = max(worst, checkClose(t, "b_after", b, st.BAfter, 1e-9, 1e-15))
		t.Logf("step %d: loss %.17g, worst error %.2g of the tolerance", s, loss, worst)
	}
}

// TestContrastiveRMSPropGolden32 runs the same three steps through the
// float32 training path (BLAS matrix products, float32 RMSProp through the
// Optimizer interface). Tolerances are float32 precision: distances and
// losses 1e-5 relative (a few ulps of float32 for sums of 32 products);
// gradients 1e-5 of the largest gradient (cancellation in the sums makes
// small entries only accurate relative to the large ones); parameters 1e-6
// absolute, since one RMSProp step moves a parameter by about
// lr·sqrt(10) = 3.2e-3 almost independently of the gradient's size and the
// inputs were rounded to float32 (relative 6e-8).
func TestContrastiveRMSPropGolden32(t *testing.T) {
	g := loadGoldenContrastive(t)
	const n = 6
	head, err := NewSiameseHead(&HeadConfig{In: 32, Out: 8, Margin: g.Margin})
	require.NoError(t, err)
	copy(head.Dense.W, to32(flat64(g.Init.W)))
	copy(head.Dense.B, to32(g.Init.B))
	src := &memFeatures{dim: 32, data: to32(append(flat64(g.X1), flat64(g.X2)...))}
	pairs := make([]LabeledPair, n)
	for i := range pairs {
		pairs[i] = LabeledPair{A: i, B: n + i, Label: int(g.Y[i])}
	}
	ws := newHeadWorkspace(head, n, true, 1)
	ws.pairs = append(ws.pairs[:0], pairs...)
	opt := &RMSProp{LearningRate: g.LR, Rho: g.Rho, Epsilon: g.Eps}
	maxAbs := func(v []float64) float64 {
		m := 0.0
		for _, x := range v {
			m = math.Max(m, math.Abs(x))
		}
		return m
	}
	for s, st := range g.Steps {
		ws.gather(src, ws.pairs)
		loss := ws.step(head, g.L2, opt)
		worst := checkClose(t, "distances", ws.dist[:n], st.Distances, 1e-5, 0)
		worst = max(worst, checkClose(t, "loss", []float64{loss}, []float64{st.Loss}, 1e-5, 0))
		gw := flat64(st.GradW)
		worst = max(worst, checkClose(t, "grad_W", ws.gW, gw, 0, 1e-5*maxAbs(gw)))
		worst = max(worst, checkClose(t, "grad_b", ws.gB, st.GradB, 0, 1e-5*maxAbs(st.GradB)))
		worst = max(worst, checkClose(t, "W_after", head.Dense.W, flat64(st.WAfter), 0, 1e-6))
		worst = max(worst, checkClose(t, "b_after", head.Dense.B, st.BAfter, 0, 1e-6))
		t.Logf("step %d: worst error %.2g of the tolerance", s, worst)
	}
}

// synthStyles builds a data set where the answer is known: every item has
// one of k hidden style vectors (4-D) and its own nuisance vector (8-D,
// three times larger), mixed into dim features by a random matrix. Two
// items are compatible when they share the style. The nuisance dominates
// raw feature distances, so a random head ranks pairs little better than
// chance; a trained head must learn to ignore it.
func synthStyles(seed uint64, k, perStyle, dim int) (*memFeatures, []int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	const sd, nd = 4, 8
	mix := make([]float64, dim*(sd+nd))
	for i := range mix {
		mix[i] = rng.NormFloat64() / math.Sqrt(sd+nd)
	}
	styles := make([][]float64, k)
	for s := range styles {
		styles[s] = make([]float64, sd)
		for j := range styles[s] {
			styles[s][j] = rng.NormFloat64()
		}
	}
	n := k * perStyle
	src := &memFeatures{dim: dim, data: make([]float32, n*dim)}
	style := make([]int, n)
	z := make([]float64, sd+nd)
	for i := 0; i < n; i++ {
		style[i] = i % k
		copy(z, styles[style[i]])
		for j := sd; j < sd+nd; j++ {
			z[j] = 3 * rng.NormFloat64()
		}
		for r := 0; r < dim; r++ {
			v := 10.0 // offset: features are mostly positive, like ReLU outputs
			for c, zc := range z {
				v += mix[r*(sd+nd)+c] * zc
			}
			src.data[i*dim+r] = float32(max(v, 0))
		}
	}
	return src, style
}

// synthPairs draws n pairs among the items accepted by use, a fraction pos
// of them compatible (same style).
func synthPairs(seed uint64, style []int, use func(int) bool, n int, pos float64) []LabeledPair {
	rng := rand.New(rand.NewPCG(seed, 11))
	var items []int
	for i := range style {
		if use(i) {
			items = append(items, i)
		}
	}
	pairs := make([]LabeledPair, 0, n)
	for len(pairs) < n {
		a, b := items[rng.IntN(len(items))], items[rng.IntN(len(items))]
		if a == b {
			continue
		}
		want := rng.Float64() < pos
		if (style[a] == style[b]) != want {
			continue
		}
		l := 0
		if want {
			l = 1
		}
		pairs = append(pairs, LabeledPair{A: a, B: b, Label: l})
	}
	return pairs
}

type synthSet struct {
	src              *memFeatures
	train, val, test []LabeledPair
}

func newSynthSet(t testing.TB, trainN int) *synthSet {
	src, style := synthStyles(1, 12, 64, 48)
	isTest := func(i int) bool { return (i/12)%4 == 3 } // held-out items of every style
	return &synthSet{
		src:   src,
		train: synthPairs(2, style, func(i int) bool { return !isTest(i) }, trainN, 0.3),
		val:   synthPairs(3, style, func(i int) bool { return !isTest(i) }, 300, 0.3),
		test:  synthPairs(4, style, isTest, 400, 0.3),
	}
}

func newSynthHead(t testing.TB, s *synthSet, seed uint64) *SiameseHead {
	scale, err := FeatureScale(context.Background(), s.src, s.train)
	require.NoError(t, err)
	h, err := NewSiameseHead(&HeadConfig{In: s.src.dim, Out: 8, Seed: seed, Scale: scale})
	require.NoError(t, err)
	return h
}

// TestTrainLearnsStyle trains on synthetic data with a known hidden style
// and requires the held-out AUC to rise far above the untrained head's and
// the learning curves to fall.
func TestTrainLearnsStyle(t *testing.T) {
	s := newSynthSet(t, 4000)
	h := newSynthHead(t, s, 5)
	ctx := context.Background()
	before := headROC(t, h, s.src, s.test)
	tr := &Trainer{Epochs: 30, BatchSize: 32, Seed: 9, Optimizer: &RMSProp{LearningRate: 1e-2}}
	hist, err := tr.Fit(ctx, h, s.src, s.train, s.val)
	require.NoError(t, err)
	after := headROC(t, h, s.src, s.test)
	t.Logf("test AUC untrained %.4f, trained %.4f; loss %.4f -> %.4f, val loss %.4f -> %.4f",
		before.AUC(), after.AUC(), hist.Loss[0], hist.Loss[len(hist.Loss)-1], hist.ValLoss[0], hist.ValLoss[len(hist.ValLoss)-1])
	assert.LessOrEqual(t, before.AUC(), 0.75, "untrained AUC: the synthetic task is too easy to show learning")
	// The held-out items' nuisance vectors were never seen, so the test AUC
	// stays below the training AUC (about 0.98); 0.8 is far above chance.
	assert.GreaterOrEqual(t, after.AUC(), 0.8, "trained AUC")
	assert.GreaterOrEqual(t, after.AUC(), before.AUC()+0.25, "trained AUC, 0.25 above the untrained one")
	require.Len(t, hist.Loss, 30, "training losses")
	require.Len(t, hist.ValLoss, 30, "validation losses")
	last := len(hist.Loss) - 1
	assert.Less(t, hist.Loss[last], 0.5*hist.Loss[0], "training curve does not fall: %v", hist.Loss)
	assert.Less(t, hist.ValLoss[last], 0.5*hist.ValLoss[0], "validation curve does not fall: %v", hist.ValLoss)
}

// headROC returns the ROC curve of the head's distances on labelled
// pairs: PairDistances, then ROCFromDistances.
func headROC(t testing.TB, h *SiameseHead, src FeatureSource, pairs []LabeledPair) *ROC {
	t.Helper()
	dist, err := h.PairDistances(context.Background(), src, pairs)
	require.NoError(t, err)
	labels := make([]int, len(pairs))
	for i, p := range pairs {
		labels[i] = p.Label
	}
	roc, err := ROCFromDistances(dist, labels)
	require.NoError(t, err)
	return roc
}

func trainSynth(t *testing.T, s *synthSet, tr *Trainer, headSeed uint64) (*SiameseHead, *History) {
	t.Helper()
	h := newSynthHead(t, s, headSeed)
	hist, err := tr.Fit(context.Background(), h, s.src, s.train, s.val)
	require.NoError(t, err)
	return h, hist
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestTrainDeterministic requires bit-identical weights and history for the
// same seed, whatever the number of workers, and different weights for
// another shuffling seed.
func TestTrainDeterministic(t *testing.T) {
	s := newSynthSet(t, 600)
	run := func(seed uint64, workers int) (*SiameseHead, *History) {
		return trainSynth(t, s, &Trainer{Epochs: 3, BatchSize: 16, Seed: seed, Workers: workers}, 3)
	}
	h1, hist1 := run(1, 1)
	h2, hist2 := run(1, 1)
	h3, hist3 := run(1, 2)
	h4, _ := run(2, 2)
	assert.True(t, bitsEqual(h1.Dense.W, h2.Dense.W) && bitsEqual(h1.Dense.B, h2.Dense.B), "same seed, different weights")
	assert.True(t, bitsEqual(h1.Dense.W, h3.Dense.W) && bitsEqual(h1.Dense.B, h3.Dense.B), "Workers 1 and 2 give different weights")
	assert.Equal(t, hist1.Loss, hist2.Loss, "same seed, different training losses")
	assert.Equal(t, hist1.Loss, hist3.Loss, "Workers 1 and 2, different training losses")
	assert.Equal(t, hist1.ValLoss, hist3.ValLoss, "Workers 1 and 2, different validation losses")
	assert.False(t, bitsEqual(h1.Dense.W, h4.Dense.W), "another shuffling seed gave the same weights")
}

// TestTrainEarlyStoppingRestoresBest validates on the training pairs with
// flipped labels, so the validation loss gets worse as training improves:
// early stopping must stop after Patience bad epochs and give back the
// weights of the best epoch, whose validation loss we measure again.
func TestTrainEarlyStoppingRestoresBest(t *testing.T) {
	s := newSynthSet(t, 600)
	flipped := make([]LabeledPair, len(s.train))
	for i, p := range s.train {
		flipped[i] = LabeledPair{A: p.A, B: p.B, Label: 1 - p.Label}
	}
	h := newSynthHead(t, s, 3)
	tr := &Trainer{Epochs: 30, BatchSize: 16, Patience: 2, Seed: 1, Optimizer: &RMSProp{LearningRate: 1e-2}}
	hist, err := tr.Fit(context.Background(), h, s.src, s.train, flipped)
	require.NoError(t, err)
	require.True(t, hist.Stopped, "no early stop: %d epochs, val loss %v", len(hist.Loss), hist.ValLoss)
	require.NotEqual(t, 30, len(hist.Loss), "no early stop: val loss %v", hist.ValLoss)
	assert.Equal(t, hist.BestEpoch+1+tr.Patience, len(hist.Loss), "epochs run after the best epoch %d, patience %d", hist.BestEpoch, tr.Patience)
	for e, v := range hist.ValLoss {
		assert.GreaterOrEqual(t, v, hist.ValLoss[hist.BestEpoch], "epoch %d has a val loss below the best epoch's", e)
	}
	t.Logf("best epoch %d of %d, val loss %v", hist.BestEpoch, len(hist.ValLoss), hist.ValLoss)
	ws := newHeadWorkspace(h, 16, false, 1)
	got, _, err := h.evalPairs(context.Background(), s.src, flipped, ws, defaultL2, true)
	require.NoError(t, err)
	// Same batches and arithmetic as during training: equal to rounding.
	want := hist.ValLoss[hist.BestEpoch]
	assert.InEpsilon(t, want, got, 1e-12, "restored weights' val loss vs the best epoch's (last %.17g)", hist.ValLoss[len(hist.ValLoss)-1])
}

// cancelSource cancels a context after a given number of feature reads and
// counts the reads after it.
type cancelSource struct {
	FeatureSource
	reads, after atomic.Int64
	limit        int64
	cancel       context.CancelFunc
}

func (c *cancelSource) FeatureTo(dst []float32, i int) []float32 {
	if c.reads.Add(1) == c.limit {
		c.cancel()
	} else if c.reads.Load() > c.limit {
		c.after.Add(1)
	}
	return c.FeatureSource.FeatureTo(dst, i)
}

// TestTrainCancel cancels in the middle of the second epoch: Fit must
// return context.Canceled after finishing at most the current mini-batch.
func TestTrainCancel(t *testing.T) {
	s := newSynthSet(t, 600)
	h := newSynthHead(t, s, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const batch = 16
	src := &cancelSource{FeatureSource: s.src, limit: 2*600 + 2*batch*3 + 5, cancel: cancel}
	epochs := 0
	tr := &Trainer{Epochs: 50, BatchSize: batch, Workers: 2, Progress: func(p Progress) { epochs = int(p.Done) }}
	_, err := tr.Fit(ctx, h, src, s.train, nil)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, epochs, "epochs reported before the cancellation")
	assert.LessOrEqual(t, src.after.Load(), int64(2*batch), "feature reads after cancellation: want at most one batch")
}

// TestTrainProgressAndErrors checks the progress reports and the errors
// for bad input.
func TestTrainProgressAndErrors(t *testing.T) {
	s := newSynthSet(t, 200)
	h := newSynthHead(t, s, 3)
	var got []Progress
	tr := &Trainer{Epochs: 3, BatchSize: 64, Progress: func(p Progress) { got = append(got, p) }}
	hist, err := tr.Fit(context.Background(), h, s.src, s.train, s.val)
	require.NoError(t, err)
	require.Len(t, got, 3, "progress reports")
	for i, p := range got {
		assert.Equal(t, Progress{Stage: "train", Done: int64(i + 1), Total: 3, Loss: hist.Loss[i], ValLoss: hist.ValLoss[i], Elapsed: p.Elapsed}, p, "report %d", i)
	}
	ctx := context.Background()
	bad := []struct {
		name       string
		train, val []LabeledPair
	}{
		{"no pairs", nil, nil},
		{"index out of range", []LabeledPair{{A: 0, B: s.src.Len()}}, nil},
		{"negative index", []LabeledPair{{A: -1, B: 0}}, nil},
		{"label 2", []LabeledPair{{A: 0, B: 1, Label: 2}}, nil},
		{"bad validation pair", s.train, []LabeledPair{{A: 0, B: 1, Label: -1}}},
	}
	for _, c := range bad {
		_, err := tr.Fit(ctx, h, s.src, c.train, c.val)
		assert.Error(t, err, c.name)
	}
	wrong, err := NewSiameseHead(&HeadConfig{In: 10, Out: 4})
	require.NoError(t, err)
	_, err = tr.Fit(ctx, wrong, s.src, s.train, nil)
	assert.Error(t, err, "feature length mismatch")
	_, err = wrong.PairDistances(ctx, s.src, s.test)
	assert.Error(t, err, "PairDistances with a feature length mismatch")

	// Negative Workers: of the Trainer, or of the head's BLAS for Fit and
	// PairDistances (whose parallelism is the head's).
	_, err = (&Trainer{Epochs: 1, Workers: -1}).Fit(ctx, h, s.src, s.train, nil)
	assert.ErrorContains(t, err, "Workers is -1")
	for _, bl := range []blas.Float32Level3{BLAS{Workers: -2}, &BLAS{Workers: -2}} {
		neg := newSynthHead(t, s, 3)
		neg.Dense.BLAS = bl
		_, err = (&Trainer{Epochs: 1}).Fit(ctx, neg, s.src, s.train, nil)
		assert.ErrorContains(t, err, "Workers -2", "%T", bl)
		_, err = neg.PairDistances(ctx, s.src, s.test)
		assert.ErrorContains(t, err, "Workers -2", "%T", bl)
	}
}

// TestPairDistancesWorkers: the distances are bit-identical whatever
// the head's BLAS and its Workers (one or several goroutines reading the
// features and in the matrix products).
func TestPairDistancesWorkers(t *testing.T) {
	s := newSynthSet(t, 200)
	h := newSynthHead(t, s, 3)
	want, err := h.PairDistances(context.Background(), s.src, s.test)
	require.NoError(t, err)
	require.Len(t, want, len(s.test))
	for _, bl := range []blas.Float32Level3{BLAS{Workers: 1}, &BLAS{Workers: 2}, BLAS{Workers: 3}} {
		h.Dense.BLAS = bl
		got, err := h.PairDistances(context.Background(), s.src, s.test)
		require.NoError(t, err)
		assert.Equal(t, want, got, "BLAS %+v", bl)
	}
}

// TestPairDistancesMatchEmbed checks the batched pair distances against
// embedding each item alone.
func TestPairDistancesMatchEmbed(t *testing.T) {
	s := newSynthSet(t, 200)
	h := newSynthHead(t, s, 3)
	pairs := s.test[:150] // more than one batch of 128, ragged
	dist, err := h.PairDistances(context.Background(), s.src, pairs)
	require.NoError(t, err)
	buf := make([]float32, s.src.dim)
	for k, p := range pairs {
		a := h.Embed(slices.Clone(s.src.FeatureTo(buf, p.A)))
		b := h.Embed(slices.Clone(s.src.FeatureTo(buf, p.B)))
		// One row or many through the same GEMM: float32 rounding only.
		want := pairDistance(a, b)
		require.InEpsilon(t, want, dist[k], 1e-5, "pair %d: distance vs embedding alone", k)
	}
}

// benchFeatures returns n random feature vectors of the study's size, and
// pairs over them with the study's 5.8% positives.
func benchFeatures(n, pairs int) (*memFeatures, []LabeledPair) {
	rng := rand.New(rand.NewPCG(1, 1))
	src := &memFeatures{dim: defaultHeadIn, data: make([]float32, n*defaultHeadIn)}
	for i := range src.data {
		src.data[i] = rng.Float32()
	}
	ps := make([]LabeledPair, pairs)
	for i := range ps {
		ps[i] = LabeledPair{A: rng.IntN(n), B: rng.IntN(n)}
		if rng.Float64() < 0.058 {
			ps[i].Label = 1
		}
	}
	return src, ps
}

// BenchmarkTrainEpoch runs one epoch of the study's training: 21,000 pairs
// of 25,088-D features, a 128-D head, batches of 128 — about 0.54 TFLOP in
// the forward and weight-gradient matrix products. The features come from
// 2,000 in-memory vectors (200 MB, not counted in B/op). "style" uses the
// package's SGEMM, "gonum" gonum's pure-Go one, the baseline;
// "style-hidden512" trains a head with a hidden layer of 512 (25,088 ->
// 512 -> 128: about 2.2 TFLOP, counting the hidden layer's input gradient).
func BenchmarkTrainEpoch(b *testing.B) {
	src, pairs := benchFeatures(2000, 21000)
	for _, bc := range []struct {
		name   string
		impl   blas.Float32Level3
		hidden []int
	}{{"style", nil, nil}, {"gonum", gonum.Implementation{}, nil}, {"style-hidden512", nil, []int{512}}} {
		b.Run(bc.name, func(b *testing.B) {
			h, err := NewSiameseHead(&HeadConfig{BLAS: bc.impl, Hidden: bc.hidden})
			require.NoError(b, err)
			tr := &Trainer{Epochs: 1}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.Fit(context.Background(), h, src, pairs, nil); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			// Per layer, forward and weight gradient over both items of
			// every pair; every layer but the first also back-propagates
			// to its input.
			var flop float64
			for k, l := range h.layers() {
				f := 2 * 2 * 2 * float64(len(pairs)) * float64(l.In) * float64(l.Out)
				if k > 0 {
					f *= 1.5
				}
				flop += f
			}
			b.ReportMetric(sec, "s/epoch")
			b.ReportMetric(flop/sec/1e9, "GFLOP/s")
		})
	}
}

// TestTrainWithSGD trains through the Optimizer interface with SGD and
// momentum instead of RMSProp: the training loss must fall.
func TestTrainWithSGD(t *testing.T) {
	s := newSynthSet(t, 600)
	tr := &Trainer{Epochs: 10, BatchSize: 32, Seed: 1, Optimizer: &SGD{LearningRate: 0.05, Momentum: 0.9}}
	_, hist := trainSynth(t, s, tr, 3)
	t.Logf("loss %v", hist.Loss)
	assert.Less(t, hist.Loss[len(hist.Loss)-1], 0.7*hist.Loss[0], "SGD training loss: want a clear fall")
}
