package resnet

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style/internal/engine"
)

// relL2 returns ‖got − want‖₂ / ‖want‖₂.
func relL2(got []float32, want []float64) float64 {
	var d, n float64
	for i, w := range want {
		e := float64(got[i]) - w
		d += e * e
		n += w * w
	}
	return math.Sqrt(d / n)
}

// newGenerated returns the generated network of divisor d, folded.
func newGenerated(t testing.TB, d int, opts *Options) (*Net, []ConvBN) {
	t.Helper()
	raw := Generate(0, d)
	convs, err := FoldAll(raw)
	require.NoError(t, err)
	net, err := New(convs, opts)
	require.NoError(t, err)
	return net, raw
}

// forwardNew returns the features of x in a new slice.
func forwardNew(net *Net, x []float32, n, h, w int) []float32 {
	dst := make([]float32, n*net.Features())
	net.ForwardTo(dst, x, n, h, w, nil)
	return dst
}

// algorithms are the 3x3 stride-1 engines a Net can use.
var algorithms = map[string]engine.Algorithm{"auto": engine.Auto, "im2col": engine.Im2col, "winograd": engine.Winograd, "winograd4x4": engine.Winograd4x4}

// TestNetMatchesFloat64 compares the narrow network (divisor 8) with the
// float64 reference on two generated 224x224 images, and on odd sizes
// (the strided layers then see odd inputs, and 5x3 images shrink to one
// pixel by layer 3), on every ISA and 3x3 engine
// (under the race detector, which is here for the concurrency and makes
// the pure-Go kernels very slow, on the best ISA only).
func TestNetMatchesFloat64(t *testing.T) {
	raw := Generate(0, 8)
	convs, err := FoldAll(raw)
	require.NoError(t, err)
	isas := engine.ISAs()
	if engine.RaceEnabled {
		isas = isas[:1]
	}
	for _, size := range [][2]int{{224, 224}, {67, 45}, {5, 3}} {
		h, w := size[0], size[1]
		x := GenerateInput(0, 2, h, w)
		want := refForward(raw, x, 2, h, w)
		for _, isa := range isas {
			restore := engine.ForceISA(isa)
			for name, algo := range algorithms {
				net, err := New(convs, &Options{Algorithm: algo})
				require.NoError(t, err)
				got := forwardNew(net, x, 2, h, w)
				// float32 through 53 layers: the features' relative L2
				// error is ~1e-6 with im2col and a few times that with
				// Winograd F(4x4) (its transforms round more); an
				// indexing or folding error is O(1).
				e := relL2(got, want)
				t.Logf("%dx%d %s %s: relative L2 error %.2e", h, w, isa, name, e)
				assert.Less(t, e, 1e-4, "%dx%d %s %s", h, w, isa, name)
			}
			restore()
		}
	}
}

// TestNetWorkersBitIdentical checks that the features do not depend on
// the number of workers nor on the batch.
func TestNetWorkersBitIdentical(t *testing.T) {
	x := GenerateInput(1, 3, 96, 80)
	var first []float32
	for _, workers := range []int{1, 2, 3} {
		net, _ := newGenerated(t, 8, &Options{Workers: workers})
		got := forwardNew(net, x, 3, 96, 80)
		if first == nil {
			first = got
			continue
		}
		require.Equal(t, first, got, "workers %d", workers)
	}
	net, _ := newGenerated(t, 8, nil)
	per, f := 3*96*80, net.Features()
	for i := range 3 {
		require.Equal(t, first[i*f:(i+1)*f], forwardNew(net, x[i*per:(i+1)*per], 1, 96, 80), "image %d alone", i)
	}
}

// TestNetSteadyStateAllocs checks that a pass with a reused workspace
// allocates no buffers: only the parallel loops' small bookkeeping.
func TestNetSteadyStateAllocs(t *testing.T) {
	if engine.RaceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	net, _ := newGenerated(t, 8, &Options{Workers: 2})
	x := GenerateInput(0, 2, 224, 224)
	dst := make([]float32, 2*net.Features())
	ws := new(Workspace)
	net.ForwardTo(dst, x, 2, 224, 224, ws)
	var bytes uint64
	allocs := testing.AllocsPerRun(5, func() { net.ForwardTo(dst, x, 2, 224, 224, ws) })
	bytes = allocBytes(func() { net.ForwardTo(dst, x, 2, 224, 224, ws) })
	// 55 parallel steps, each a closure and a helper goroutine at most:
	// a few hundred small objects; one activation buffer alone would be
	// 2 x 200,704 floats.
	assert.LessOrEqual(t, allocs, 400.0)
	assert.Less(t, bytes, uint64(64<<10), "bytes allocated per pass")
}

// TestNewErrors checks New's validation.
func TestNewErrors(t *testing.T) {
	good, err := FoldAll(Generate(0, 16))
	require.NoError(t, err)
	_, err = New(good, nil)
	require.NoError(t, err)
	clone := func() []Conv { return append([]Conv(nil), good...) }
	for name, tc := range map[string]struct {
		convs []Conv
		opts  *Options
		want  string
	}{
		"short":            {good[:52], nil, "52 convolutions, want 53"},
		"negative workers": {good, &Options{Workers: -1}, "negative Workers -1"},
		"bad algorithm":    {good, &Options{Algorithm: 7}, "unknown algorithm 7"},
		"renamed": {func() []Conv {
			c := clone()
			c[5].Name = "layer1.1.conv9"
			return c
		}(), nil, "convolution 5 is layer1.1.conv9"},
		"chain": {func() []Conv {
			c := clone()
			c[2].In++
			return c
		}(), nil, "do not chain"},
		"weights": {func() []Conv {
			c := clone()
			c[3].Weight = c[3].Weight[1:]
			return c
		}(), nil, "layer1.0.conv3: weight has"},
		"stem": {func() []Conv {
			c := clone()
			c[0].In = 4
			return c
		}(), nil, "conv1 has 4 input channels"},
	} {
		_, err := New(tc.convs, tc.opts)
		if assert.Error(t, err, name) {
			assert.Contains(t, err.Error(), tc.want, name)
		}
	}
}

// TestForwardToPanics checks ForwardTo's argument checks.
func TestForwardToPanics(t *testing.T) {
	net, _ := newGenerated(t, 16, nil)
	x := make([]float32, 3*40*40)
	dst := make([]float32, net.Features())
	assert.NotPanics(t, func() { net.ForwardTo(dst, x, 1, 40, 40, nil) })
	assert.PanicsWithValue(t, "style: resnet.Net.ForwardTo: input has 4800 values, want 9600 (2 x 3 x 40 x 40)", func() { net.ForwardTo(dst, x, 2, 40, 40, nil) })
	assert.PanicsWithValue(t, fmt.Sprintf("style: resnet.Net.ForwardTo: output has %d values, want %d (1 x %d)", len(dst)-1, len(dst), len(dst)), func() { net.ForwardTo(dst[1:], x, 1, 40, 40, nil) })
	assert.PanicsWithValue(t, "style: resnet.Net.ForwardTo: invalid batch 1 x 0 x 40", func() { net.ForwardTo(dst, x, 1, 0, 40, nil) })
}

// TestAuto3x3 checks the per-kernel choice of the 3x3 stride-1 engine on
// ResNet-50's four widths (56x56, 28x28, 14x14 and 7x7 maps), and that
// New follows the kernel it packs for.
func TestAuto3x3(t *testing.T) {
	widths := []int{64, 128, 256, 512}
	for isa, want := range map[string][]engine.Algorithm{
		"avx512":  {engine.Winograd4x4, engine.Winograd4x4, engine.Winograd, engine.Im2col},
		"generic": {engine.Winograd4x4, engine.Winograd4x4, engine.Winograd, engine.Im2col},
		"avx2":    {engine.Winograd4x4, engine.Winograd4x4, engine.Winograd4x4, engine.Winograd},
	} {
		for i, c := range widths {
			assert.Equal(t, want[i], auto3x3(c, c, isa), "%s, %d channels", isa, c)
		}
	}
	// New follows the kernel: the 512-channel 7x7 layers run on the
	// Winograd engine with the AVX2 kernel only.
	var l Layer
	for _, l = range Layers50(1) {
		if l.In == 512 && l.Kernel == 3 && l.Stride == 1 {
			break
		}
	}
	require.Equal(t, 512, l.In)
	c := Conv{Layer: l, Weight: make([]float32, l.Out*l.In*9), Bias: make([]float32, l.Out)}
	for _, isa := range engine.ISAs() {
		restore := engine.ForceISA(isa)
		conv, err := newConv3x3(c, Options{})
		restore()
		require.NoError(t, err)
		_, winograd := conv.(conv3x3Engine)
		assert.Equal(t, isa == "avx2", winograd, "%s: %s on the Winograd engine", isa, l.Name)
	}
}
