package style

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHeadOneLayerFileUnchanged: a one-layer head is written byte for byte
// as before heads could have hidden layers. The digest was taken from the
// file this test's head gave at that time; weights come from NewDense's
// PCG generator, so the file is the same on every platform.
func TestHeadOneLayerFileUnchanged(t *testing.T) {
	h, err := NewSiameseHead(&HeadConfig{In: 40, Out: 5, Margin: 1.5, Scale: 844.34, Cutoff: 0.25, Seed: 8, Backbone: testBackbone})
	require.NoError(t, err)
	for i := range h.Dense.B {
		h.Dense.B[i] = float32(i) / 3
	}
	path := filepath.Join(t.TempDir(), "head.safetensors")
	require.NoError(t, h.Save(path))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	sum := sha256.Sum256(b)
	assert.Equal(t, "0557a926c0cd7ea4ce48d3ab0dcbca3c50d5e41bad75586786e829be9cf286cf", hex.EncodeToString(sum[:]))
	_, meta, err := readSafetensors(path, nil)
	require.NoError(t, err)
	assert.Equal(t, headFormatVersion, meta["format_version"])
	assert.NotContains(t, meta, "hidden")
}

// TestDeepHeadInit: every layer is Glorot-uniform with its own seed and a
// zero bias, the embedding layer keeps the head's seed, and the same
// configuration gives the same head.
func TestDeepHeadInit(t *testing.T) {
	cfg := &HeadConfig{In: 30, Hidden: []int{20, 10}, Out: 4, Seed: 5}
	h, err := NewSiameseHead(cfg)
	require.NoError(t, err)
	require.Len(t, h.Hidden, 2)
	ls := h.layers()
	sizes := [][2]int{{30, 20}, {20, 10}, {10, 4}}
	for k, l := range ls {
		assert.Equal(t, sizes[k], [2]int{l.In, l.Out}, "layer %d size", k)
		limit := math.Sqrt(6 / float64(l.In+l.Out))
		for _, w := range l.W {
			require.LessOrEqual(t, math.Abs(float64(w)), limit, "layer %d weight beyond the Glorot limit", k)
		}
		assert.Equal(t, make([]float32, l.Out), l.B, "layer %d bias", k)
	}
	assert.Equal(t, NewDense(10, 4, 5).W, h.Dense.W, "the embedding layer is seeded with Seed")
	assert.Equal(t, NewDense(30, 20, hiddenSeed(5, 0)).W, h.Hidden[0].W)
	assert.NotEqual(t, NewDense(20, 10, 5).W, h.Hidden[1].W, "hidden layer 1 has its own seed")
	assert.NotEqual(t, hiddenSeed(5, 0), hiddenSeed(5, 1))
	// Pinned: saved heads do not depend on it, but a head made from a
	// configuration must stay the same head.
	assert.Equal(t, uint64(0x16b1cba95fc60262), hiddenSeed(5, 0))
	assert.Equal(t, uint64(0xc097314d939736f8), hiddenSeed(5, 1))
	g, err := NewSiameseHead(cfg)
	require.NoError(t, err)
	for k := range ls {
		assert.True(t, bitsEqual(ls[k].W, g.layers()[k].W), "layer %d differs between two heads of the same config", k)
	}
	_, err = NewSiameseHead(&HeadConfig{In: 30, Hidden: []int{20, 0}, Out: 4})
	assert.ErrorContains(t, err, "hidden layer 1 has width 0")
	x := randSlice32(rand.New(rand.NewPCG(1, 2)), 3*30)
	assert.Len(t, h.Embed(x), 3*4, "embeddings of three vectors")
	assert.PanicsWithValue(t, "style: SiameseHead.Embed: 31 features are not rows of 30", func() { h.Embed(x[:31]) })
	h.Hidden[1].In = 11
	assert.Panics(t, func() { h.Embed(x) }, "inconsistent layers")
}

func randSlice32(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.Float64())
	}
	return v
}

// refLayer is a layer of the float64 reference head.
type refLayer struct {
	w, b    []float64
	in, out int
}

// refHeadLoss runs the reference head (every layer Dense+ReLU) on the 2n
// rows of x (first items, then second items; already scaled) and returns
// the contrastive loss plus the L2 penalty on every kernel; if grads is
// not nil it gets the gradients of each layer's kernel and bias, in the
// order of Trainer's Optimizer parameters.
func refHeadLoss(ls []refLayer, x []float64, labels []int, margin, l2 float64, grads [][]float64) float64 {
	n := len(labels)
	acts := [][]float64{x}
	for _, l := range ls {
		y := make([]float64, 2*n*l.out)
		denseForwardRef(y, acts[len(acts)-1], l.w, l.b, 2*n, l.in, l.out)
		acts = append(acts, y)
	}
	h := acts[len(ls)]
	out := ls[len(ls)-1].out
	var dy []float64
	if grads != nil {
		dy = make([]float64, 2*n*out)
	}
	var g1, g2 []float64
	if dy != nil {
		g1, g2 = dy[:n*out], dy[n*out:]
	}
	loss := contrastiveEval(margin, g1, g2, h[:n*out], h[n*out:], labels, nil)
	for k := len(ls) - 1; k >= 0; k-- {
		l := ls[k]
		var gx []float64
		if grads != nil {
			if k > 0 {
				gx = make([]float64, 2*n*l.in)
			}
			denseBackwardRef(grads[2*k], grads[2*k+1], gx, acts[k], acts[k+1], dy, l.w, 2*n, 2, l.in, l.out)
			dy = gx
		}
	}
	for k, l := range ls {
		g := make([]float64, len(l.w))
		if grads != nil {
			g = grads[2*k]
		}
		loss += l2PenaltyRef(g, l.w, l2)
	}
	return loss
}

// deepGradCase builds a tiny head with the given hidden widths, a batch of
// n pairs whose pre-activations and distances are all at least 1e-3 away
// from the kinks of ReLU and the margin hinge (so finite differences see a
// smooth function), and the float64 reference of both.
func deepGradCase(t *testing.T, hidden []int) (h *SiameseHead, ref []refLayer, x32 []float32, x64 []float64, labels []int) {
	const n, in, out, scale, margin = 5, 7, 3, 2, 1.0
	labels = []int{1, 0, 0, 1, 0}
	rng := rand.New(rand.NewPCG(3, uint64(len(hidden))))
	var err error
	for try := 0; ; try++ {
		require.Less(t, try, 10000, "no smooth draw")
		h, err = NewSiameseHead(&HeadConfig{In: in, Hidden: hidden, Out: out, Scale: scale, Margin: margin, Seed: uint64(try)})
		require.NoError(t, err)
		ref = ref[:0]
		for _, l := range h.layers() {
			for j := range l.B {
				l.B[j] = float32(0.2 * (2*rng.Float64() - 1))
			}
			ref = append(ref, refLayer{w: float64s(l.W), b: float64s(l.B), in: l.In, out: l.Out})
		}
		x32 = make([]float32, 2*n*in)
		for i := range x32 {
			x32[i] = float32(2 * rng.Float64())
		}
		x64 = make([]float64, len(x32))
		for i, v := range x32 {
			x64[i] = float64(v) / scale
		}
		if smoothAt(ref, x64, n, margin) {
			return h, ref, x32, x64, labels
		}
	}
}

// smoothAt reports whether every pre-activation of the reference head and
// every pair distance's gap to the margin is at least 1e-3 in magnitude,
// and every layer has a live unit.
func smoothAt(ls []refLayer, x []float64, n int, margin float64) bool {
	a := x
	for _, l := range ls {
		y := make([]float64, 2*n*l.out)
		live := false
		for r := 0; r < 2*n; r++ {
			for j := 0; j < l.out; j++ {
				s := l.b[j]
				for i := 0; i < l.in; i++ {
					s += a[r*l.in+i] * l.w[i*l.out+j]
				}
				if math.Abs(s) < 1e-3 {
					return false
				}
				y[r*l.out+j] = max(s, 0)
				live = live || s > 0
			}
		}
		if !live {
			return false
		}
		a = y
	}
	out := ls[len(ls)-1].out
	for p := 0; p < n; p++ {
		var s float64
		for j := 0; j < out; j++ {
			d := a[p*out+j] - a[(n+p)*out+j]
			s += d * d
		}
		if math.Abs(math.Sqrt(s)-margin) < 1e-3 || s < 1e-6 {
			return false
		}
	}
	return true
}

// TestDeepHeadGradients checks the training step of heads with 0, 1 and 2
// hidden layers three ways on a tiny head:
//
//   - the float64 reference's gradients against central finite differences
//     of its loss, in float64 with step 1e-6: the truncation error is
//     O(step²) ≈ 1e-12 (times the third derivative) and the rounding error about
//     1e-16·|loss|/step ≈ 1e-10, so a relative error of 1e-6 (plus 1e-9
//     absolute for gradients that are zero) leaves a wide margin while
//     catching any wrong term;
//   - the float32 training step's loss and gradients against the
//     reference, to 1e-5 relative for the loss and 1e-4 of each tensor's
//     largest gradient (float32 rounding through up to three layers of
//     products of short sums; the inputs are rounded to float32 too);
//   - the weights after one SGD step (lr 0.1) against the reference's, to
//     1e-5 absolute: lr times the gradient tolerance.
func TestDeepHeadGradients(t *testing.T) {
	const margin, l2, lr = 1.0, 0.01, 0.1
	for _, hidden := range [][]int{nil, {6}, {6, 5}} {
		t.Run(fmt.Sprintf("hidden%v", hidden), func(t *testing.T) {
			h, ref, x32, x64, labels := deepGradCase(t, hidden)
			n := len(labels)
			grads := make([][]float64, 0, 2*len(ref))
			for _, l := range ref {
				grads = append(grads, make([]float64, len(l.w)), make([]float64, len(l.b)))
			}
			loss64 := refHeadLoss(ref, x64, labels, margin, l2, grads)

			const step = 1e-6
			for k := range ref {
				for pi, p := range [][]float64{ref[k].w, ref[k].b} {
					g := grads[2*k+pi]
					for i := range p {
						old := p[i]
						p[i] = old + step
						up := refHeadLoss(ref, x64, labels, margin, l2, nil)
						p[i] = old - step
						down := refHeadLoss(ref, x64, labels, margin, l2, nil)
						p[i] = old
						num := (up - down) / (2 * step)
						require.InDelta(t, num, g[i], 1e-6*math.Abs(num)+1e-9,
							"layer %d %s[%d]: analytic vs finite difference", k, [2]string{"W", "b"}[pi], i)
					}
				}
			}

			src := &memFeatures{dim: 7, data: x32}
			ws := newHeadWorkspace(h, n, true, 1)
			for p := range n {
				ws.pairs = append(ws.pairs, LabeledPair{A: p, B: n + p, Label: labels[p]})
			}
			ws.gather(src, ws.pairs)
			loss32 := ws.step(h, l2, &SGD{LearningRate: lr})
			assert.InEpsilon(t, loss64, loss32, 1e-5, "loss")
			got := append(slices.Clip(ws.gHid), ws.gW, ws.gB)
			require.Len(t, got, len(grads))
			for k, l := range h.layers() {
				for pi := range 2 {
					g, want := got[2*k+pi], grads[2*k+pi]
					tol := 1e-4 * maxAbs64(want)
					for i := range want {
						require.InDelta(t, want[i], float64(g[i]), tol, "layer %d grad %d[%d]", k, pi, i)
					}
					p, p0 := [2][]float32{l.W, l.B}[pi], [2][]float64{ref[k].w, ref[k].b}[pi]
					for i := range p0 {
						require.InDelta(t, p0[i]-lr*want[i], float64(p[i]), 1e-5, "layer %d param %d[%d] after SGD", k, pi, i)
					}
				}
			}
		})
	}
}

func maxAbs64(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}

// TestDeepHeadSaveLoad: a head with hidden layers round-trips through a
// file of format version 2 recording the widths, and embeds the same.
func TestDeepHeadSaveLoad(t *testing.T) {
	h, err := NewSiameseHead(&HeadConfig{In: 12, Hidden: []int{9, 6}, Out: 4, Scale: 3, Seed: 2, Backbone: testBackbone})
	require.NoError(t, err)
	for _, l := range h.layers() {
		for j := range l.B {
			l.B[j] = float32(j) / 7
		}
	}
	path := filepath.Join(t.TempDir(), "deep.safetensors")
	require.NoError(t, h.Save(path))
	_, meta, err := readSafetensors(path, nil)
	require.NoError(t, err)
	assert.Equal(t, headDeepVersion, meta["format_version"])
	assert.Equal(t, "9,6", meta["hidden"])
	assert.Equal(t, "12", meta["in"])
	g, err := LoadHead(path)
	require.NoError(t, err)
	require.Len(t, g.Hidden, 2)
	for k, l := range h.layers() {
		gl := g.layers()[k]
		assert.Equal(t, [2]int{l.In, l.Out}, [2]int{gl.In, gl.Out}, "layer %d size", k)
		assert.True(t, bitsEqual(l.W, gl.W) && bitsEqual(l.B, gl.B), "layer %d weights changed", k)
	}
	x := randSlice32(rand.New(rand.NewPCG(4, 4)), 2*12)
	assert.True(t, bitsEqual(h.Embed(x), g.Embed(x)), "loaded head embeds differently")
	assert.Equal(t, headFingerprint(h), headFingerprint(g))
	one, err := NewSiameseHead(&HeadConfig{In: 6, Out: 4, Scale: 3})
	require.NoError(t, err)
	one.Dense = h.Dense
	assert.NotEqual(t, headFingerprint(one), headFingerprint(h), "hidden layers enter the fingerprint")
}

// TestLoadDeepHeadErrors: bad shapes and widths of a version-2 file give a
// *FormatError naming the file, checked before any weight is read.
func TestLoadDeepHeadErrors(t *testing.T) {
	dir := t.TempDir()
	meta := func(version, hidden string) map[string]string {
		m := map[string]string{
			"format": headFormat, "format_version": version, "in": "4", "out": "2",
			"scale": "1", "margin": "1", "cutoff": "0.5",
		}
		if hidden != "-" {
			m["hidden"] = hidden
		}
		return m
	}
	ten := func(name string, shape ...int) tensor {
		n := 1
		for _, s := range shape {
			n *= s
		}
		return tensor{name: name, shape: shape, data: make([]float32, n)}
	}
	good := []tensor{ten("hidden.0.kernel", 4, 3), ten("hidden.0.bias", 3), ten(headKernelName, 3, 2), ten(headBiasName, 2)}
	path := filepath.Join(dir, "ok.safetensors")
	require.NoError(t, writeSafetensors(path, good, meta(headDeepVersion, "3")))
	h, err := LoadHead(path)
	require.NoError(t, err)
	assert.Len(t, h.Hidden, 1)
	for _, tc := range []struct {
		name string
		ts   []tensor
		meta map[string]string
		want string
	}{
		{"v2 without hidden", good, meta(headDeepVersion, "-"), `metadata "hidden" is missing`},
		{"v1 with hidden", good, meta(headFormatVersion, "3"), `metadata "hidden" in a head of format version "1"`},
		{"zero width", good, meta(headDeepVersion, "0"), "width 0"},
		{"not a number", good, meta(headDeepVersion, "3,x"), `width 1 ("x")`},
		{"too many", good, meta(headDeepVersion, "1"+strings.Repeat(",1", maxHeadLayers)), "more than the limit of 64"},
		{"huge", good, meta(headDeepVersion, "100000000,2"), "exceeds the limit of 134217728 weights"},
		{"shape", good, meta(headDeepVersion, "5"), `tensor "hidden.0.kernel" has shape [4 3], want [4 5]`},
		{"missing", good[2:], meta(headDeepVersion, "3"), `missing tensor "hidden.0.kernel"`},
		{"extra", append(slices.Clone(good), ten("hidden.1.kernel", 3, 3)), meta(headDeepVersion, "3"), `tensor "hidden.1.kernel" is not a layer`},
		{"nan", []tensor{{name: "hidden.0.kernel", shape: []int{4, 3}, data: []float32{0, 0, float32(math.NaN()), 0, 0, 0, 0, 0, 0, 0, 0, 0}}, good[1], good[2], good[3]},
			meta(headDeepVersion, "3"), "hidden.0.kernel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".safetensors")
			require.NoError(t, writeSafetensors(p, tc.ts, tc.meta))
			_, err := LoadHead(p)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.ErrorContains(t, err, p)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// TestDeepHeadTrains: a head with a hidden layer learns the synthetic
// hidden style (where the one-layer head of TestTrainLearnsStyle reaches a
// held-out AUC of about 0.87, the nuisance being linearly entangled with
// the style, a hidden layer reaches about 1), deterministically for any
// Workers, with early stopping restoring every layer, and PairDistances
// matches Compare.
func TestDeepHeadTrains(t *testing.T) {
	s := newSynthSet(t, 4000)
	ctx := context.Background()
	scale, err := FeatureScale(ctx, s.src, s.train)
	require.NoError(t, err)
	run := func(workers int) (*SiameseHead, *History) {
		h, err := NewSiameseHead(&HeadConfig{In: s.src.dim, Hidden: []int{32}, Out: 8, Seed: 5, Scale: scale})
		require.NoError(t, err)
		tr := &Trainer{Epochs: 30, BatchSize: 32, Seed: 9, Workers: workers, Patience: 5, Optimizer: &RMSProp{LearningRate: 3e-3}}
		hist, err := tr.Fit(ctx, h, s.src, s.train, s.val)
		require.NoError(t, err)
		return h, hist
	}
	h1, hist1 := run(1)
	h2, hist2 := run(2)
	for k, l := range h1.layers() {
		assert.True(t, bitsEqual(l.W, h2.layers()[k].W) && bitsEqual(l.B, h2.layers()[k].B), "layer %d: Workers 1 and 2 differ", k)
	}
	assert.Equal(t, hist1.Loss, hist2.Loss)
	auc := headROC(t, h1, s.src, s.test).AUC()
	t.Logf("2-layer head test AUC %.4f, loss %.4f -> %.4f", auc, hist1.Loss[0], hist1.Loss[len(hist1.Loss)-1])
	assert.Greater(t, auc, 0.95, "held-out AUC of the trained 2-layer head")
	if hist1.BestEpoch != len(hist1.Loss)-1 {
		vl, _, err := h1.evalPairs(ctx, s.src, s.val, newHeadWorkspace(h1, 32, false, 1), defaultL2, true)
		require.NoError(t, err)
		assert.InDelta(t, hist1.ValLoss[hist1.BestEpoch], vl, 1e-9, "early stopping restores the best epoch's layers")
	}
	t.Logf("best epoch %d of %d, stopped %v", hist1.BestEpoch, len(hist1.Loss), hist1.Stopped)
	assert.Less(t, hist1.Loss[len(hist1.Loss)-1], hist1.Loss[0], "training loss falls")

	pairs := s.test[:10]
	dist, err := h1.PairDistances(ctx, s.src, pairs)
	require.NoError(t, err)
	for k, p := range pairs {
		d, _, err := h1.Compare(s.src.FeatureTo(make([]float32, s.src.dim), p.A), s.src.FeatureTo(make([]float32, s.src.dim), p.B))
		require.NoError(t, err)
		assert.InDelta(t, d, dist[k], 1e-5*d+1e-6, "pair %d: PairDistances vs Compare", k)
	}
}
