package style

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style/internal/engine"
)

// testWeights returns generated VGG16 weights with every width divided by
// divisor, for fast tests.
func testWeights(t testing.TB, seed uint64, divisor int) *Weights {
	t.Helper()
	w, err := GenerateWeights(VGG16, seed, divisor)
	require.NoError(t, err)
	return w
}

// testNetwork is the network of testWeights(seed, divisor).
func testNetwork(t testing.TB, seed uint64, divisor int, opts *NetworkOptions) *Network {
	t.Helper()
	m, err := NewNetwork(testWeights(t, seed, divisor), opts)
	require.NoError(t, err)
	return m
}

// TestNetworkMatchesNaive checks the whole stack, at 64x64 for speed,
// against the naive convolution and pooling in float64.
func TestNetworkMatchesNaive(t *testing.T) {
	for _, algo := range []ConvAlgorithm{ConvIm2col, ConvWinograd} {
		t.Run(algo.String(), func(t *testing.T) { testNetworkMatchesNaive(t, algo) })
	}
}

func testNetworkMatchesNaive(t *testing.T, algo ConvAlgorithm) {
	weights := testWeights(t, 7, 16)
	m, err := NewNetwork(weights, &NetworkOptions{Workers: 2, Algorithm: algo})
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(8, 8))
	const n, size = 2, 64
	x := randomSlice(r, n*3*size*size)
	got := make([]float32, n*32*2*2)
	m.forwardTo(got, x, n, size, size)
	cur := make([]float32, len(x))
	copy(cur, x)
	h := size
	for i, l := range weights.layers {
		ref := naiveConv3x3(cur, n, l.In, h, h, l, true)
		if vgg16Spec.layers[i].pool {
			ref = naiveMaxPool2x2(ref, n*l.Out, h, h)
			h /= 2
		}
		cur = make([]float32, len(ref))
		for j, v := range ref {
			cur[j] = float32(v)
		}
	}
	assert.Less(t, relL2(got, cur), 1e-5, "relative L2 error against the naive stack")
}

// TestNetworkDeterministic checks bit-identical features for any worker
// count, batch composition and concurrent callers.
func TestNetworkDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	const size = 3 * 224 * 224
	x := randomSlice(r, 3*size)
	m1 := testNetwork(t, 10, 16, &NetworkOptions{Workers: 1})
	ref := m1.ForwardTo(make([]float32, 3*m1.FeatureLen()), x, 3)
	m3 := testNetwork(t, 10, 16, &NetworkOptions{Workers: 3})
	fl := m3.FeatureLen()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i := range 3 {
		wg.Go(func() {
			got := m3.ForwardTo(make([]float32, fl), x[i*size:(i+1)*size], 1)
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(ref[i*fl+j]) {
					errs <- fmt.Errorf("image %d element %d: %v concurrently with 3 workers, %v in a batch with 1", i, j, got[j], ref[i*fl+j])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// testImages returns n grey images of different sizes.
func testImages(n int) []image.Image {
	imgs := make([]image.Image, n)
	for i := range imgs {
		g := image.NewGray(image.Rect(0, 0, 30+i, 20))
		for j := range g.Pix {
			g.Pix[j] = uint8(j * (i + 3))
		}
		imgs[i] = g
	}
	return imgs
}

// TestNetworkFeaturesBatch checks that FeaturesBatch agrees bit for bit
// with Features and with ForwardTo on the preprocessed images, whatever
// the batch (5 images make several groups of 2 workers' chunks), and that
// it stops when its context is cancelled.
func TestNetworkFeaturesBatch(t *testing.T) {
	m := testNetwork(t, 16, 16, &NetworkOptions{Workers: 2})
	imgs := testImages(5)
	got, err := m.FeaturesBatch(context.Background(), imgs)
	require.NoError(t, err)
	require.Len(t, got, 5)
	x := make([]float32, len(imgs)*3*224*224)
	for i, img := range imgs {
		require.NoError(t, preprocessImageTo(x[i*3*224*224:(i+1)*3*224*224], img, PreprocessCaffe, FilterNearest, nil))
	}
	fl := m.FeatureLen()
	all := m.ForwardTo(make([]float32, len(imgs)*fl), x, len(imgs))
	for i, img := range imgs {
		one, err := m.Features(img)
		require.NoError(t, err)
		assert.Zero(t, relL2(got[i], one), "image %d: FeaturesBatch differs from Features", i)
		assert.Zero(t, relL2(got[i], all[i*fl:(i+1)*fl]), "image %d: FeaturesBatch differs from ForwardTo", i)
	}
	none, err := m.FeaturesBatch(context.Background(), nil)
	require.NoError(t, err)
	assert.Empty(t, none)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = m.FeaturesBatch(ctx, imgs)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestNetworkBadInput(t *testing.T) {
	m := testNetwork(t, 11, 16, nil)
	fl := m.FeatureLen()
	const size = 3 * 224 * 224
	for name, f := range map[string]func(){
		"short tensor":         func() { m.ForwardTo(make([]float32, fl), make([]float32, size-1), 1) },
		"n larger than data":   func() { m.ForwardTo(make([]float32, 2*fl), make([]float32, size), 2) },
		"negative n":           func() { m.ForwardTo(nil, nil, -1) },
		"short destination":    func() { m.ForwardTo(make([]float32, 3), make([]float32, size), 1) },
		"too long destination": func() { m.ForwardTo(make([]float32, fl+1), make([]float32, size), 1) },
	} {
		r := catchPanic(f)
		s, ok := r.(string)
		assert.True(t, ok && len(s) > 7 && s[:7] == "style: ", "ForwardTo with a %s: panic %v, want a \"style: \" message", name, r)
	}
	assert.Empty(t, m.ForwardTo(nil, nil, 0), "an empty batch")

	_, err := m.Features(nil)
	assert.ErrorContains(t, err, "image 0: nil image")
	_, err = m.Features(image.NewRGBA(image.Rect(0, 0, 0, 5)))
	assert.ErrorContains(t, err, "empty image of 0x5 pixels")
	_, err = m.FeaturesBatch(context.Background(), []image.Image{image.NewGray(image.Rect(0, 0, 3, 3)), nil})
	assert.ErrorContains(t, err, "image 1: nil image")
	// A 1x1 image is valid: it is resized to 224x224.
	f, err := m.Features(image.NewGray(image.Rect(0, 0, 1, 1)))
	require.NoError(t, err)
	assert.Len(t, f, fl)
}

// TestNetworkNonFinite: weights within ReadWeights' bounds can overflow
// float32 across 13 layers. With every weight at the bound 1e4 and no
// bias, a white image's activations grow by about 1e5 per layer and
// overflow by the 7th; a black one (negative after caffe preprocessing)
// is zero after the first ReLU and stays finite. FeaturesBatch names the
// image whose features are not finite; ForwardTo does not check. The
// network uses im2col, whose sums of positive infinities stay infinite
// (Winograd's transforms subtract them, making NaNs, which the next ReLU
// turns to zeros).
func TestNetworkNonFinite(t *testing.T) {
	w := testWeights(t, 1, 64)
	for _, l := range w.layers {
		for i := range l.Weight {
			l.Weight[i] = maxConvValue
		}
		clear(l.Bias)
	}
	p := filepath.Join(t.TempDir(), "big.safetensors")
	require.NoError(t, w.WriteSafetensors(p), "the weights are within the bounds")
	w, err := ReadWeights(p, VGG16, 64)
	require.NoError(t, err, "the weights are within the bounds")
	m, err := NewNetwork(w, &NetworkOptions{Algorithm: ConvIm2col})
	require.NoError(t, err)
	white := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range white.Pix {
		white.Pix[i] = 255
	}
	black := image.NewGray(image.Rect(0, 0, 8, 8))

	f, err := m.Features(black)
	require.NoError(t, err)
	assert.Len(t, f, m.FeatureLen())
	_, err = m.Features(white)
	assert.ErrorContains(t, err, "features of image 0: feature 0 of 392 is")
	_, err = m.FeaturesBatch(context.Background(), []image.Image{black, white})
	assert.ErrorContains(t, err, "features of image 1:")
	assert.ErrorContains(t, err, "overflowed")

	x := make([]float32, 3*224*224)
	require.NoError(t, preprocessImageTo(x, white, PreprocessCaffe, FilterNearest, nil))
	out := m.ForwardTo(make([]float32, m.FeatureLen()), x, 1)
	assert.False(t, isFinite(out[0]), "ForwardTo returns the overflowed feature %v", out[0])
}

func isFinite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

func TestNewNetworkValidation(t *testing.T) {
	good := func() *Weights { return testWeights(t, 12, 16) }
	_, err := NewNetwork(good(), nil)
	require.NoError(t, err, "valid weights")
	cases := []struct {
		name   string
		mutate func(w *Weights)
		opts   *NetworkOptions
	}{
		{"nil", nil, nil},
		{"12 layers", func(w *Weights) { w.layers = w.layers[:12] }, nil},
		{"chain break", func(w *Weights) { w.layers[5] = randomConvWeights(rand.New(rand.NewPCG(1, 2)), 7, 8) }, nil},
		{"4 input channels", func(w *Weights) { w.layers[0] = randomConvWeights(rand.New(rand.NewPCG(1, 2)), 4, 4) }, nil},
		{"short bias", func(w *Weights) { w.layers[3].Bias = w.layers[3].Bias[:1] }, nil},
		{"bad preprocess", func(w *Weights) { w.Preprocess = "tf" }, nil},
		{"unknown architecture", func(w *Weights) { w.Arch = "vgg19" }, nil},
		{"no architecture", func(w *Weights) { w.Arch = "" }, nil},
		{"other divisor", func(w *Weights) { w.Divisor = 8 }, nil},
		{"bad divisor", func(w *Weights) { w.Divisor = 3 }, nil},
		{"bad option", nil, &NetworkOptions{Workers: -2}},
		{"bad BLAS workers", nil, &NetworkOptions{BLAS: BLAS{Workers: -1}}},
		{"bad filter", nil, &NetworkOptions{Filter: 42}},
		{"bad algorithm", nil, &NetworkOptions{Algorithm: 42}},
	}
	for _, c := range cases {
		var w *Weights
		if c.name != "nil" {
			w = good()
		}
		if c.mutate != nil {
			c.mutate(w)
		}
		_, err := NewNetwork(w, c.opts)
		assert.Error(t, err, c.name)
	}
	// Options are not modified and the preprocessing override wins.
	w := good()
	w.Preprocess = PreprocessTorch
	w.SHA256 = "00ff"
	opts := &NetworkOptions{Preprocess: PreprocessCaffe}
	m, err := NewNetwork(w, opts)
	require.NoError(t, err)
	assert.Equal(t, NetworkOptions{Preprocess: PreprocessCaffe}, *opts, "options modified")
	assert.Equal(t, Backbone{Arch: VGG16, Preprocess: PreprocessCaffe, SHA256: "00ff", Seed: 12, Divisor: 16}, m.Backbone())
	m, err = NewNetwork(w, nil)
	require.NoError(t, err)
	assert.Equal(t, PreprocessTorch, m.Backbone().Preprocess, "the weights' preprocessing")
	var _ FeatureExtractor = m
}

// TestLoadNetwork: LoadNetwork reads the full-width network only, telling
// the architecture from the file, and passes the options on.
func TestLoadNetwork(t *testing.T) {
	p := filepath.Join(t.TempDir(), "narrow.safetensors")
	require.NoError(t, testWeights(t, 1, 16).WriteSafetensors(p))
	_, err := LoadNetwork(p, nil)
	require.ErrorIs(t, err, ErrFormat, "a narrow network")
	assert.ErrorContains(t, err, "features.0.weight has shape [4 3 3 3], want [64 3 3 3]")
	_, err = LoadNetwork(filepath.Join(t.TempDir(), "missing.safetensors"), nil)
	assert.Error(t, err)
}

// TestNetworkSteadyStateAllocs checks that a repeated forward pass reuses
// its activations and scratch: with an allocation-free BLAS only a small,
// constant number of allocations remains (goroutine closures).
func TestNetworkSteadyStateAllocs(t *testing.T) {
	if engine.RaceEnabled {
		// The race detector makes sync.Pool drop items at random, so
		// allocation counts say nothing there; the normal build checks them.
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	m := testNetwork(t, 13, 16, &NetworkOptions{Workers: 2, BLAS: serialBLAS{}})
	r := rand.New(rand.NewPCG(14, 14))
	x := randomSlice(r, 2*3*224*224)
	dst := make([]float32, 2*m.FeatureLen())
	m.ForwardTo(dst, x, 2)
	allocs := testing.AllocsPerRun(3, func() { m.ForwardTo(dst, x, 2) })
	// Per layer: the shared task counter, the worker function and one
	// closure per worker goroutine (about 5), whatever the image size;
	// plus pool refills after a GC. One allocation per band would be
	// several hundred.
	assert.LessOrEqual(t, allocs, float64(13*6), "allocations per forward pass")
	// AllocsPerRun changes GOMAXPROCS, which empties sync.Pools: warm up
	// again before measuring bytes.
	m.ForwardTo(dst, x, 2)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m.ForwardTo(dst, x, 2)
	runtime.ReadMemStats(&after)
	// The activations alone are 2 x 4 x 224 x 224 x 4 bytes = 1.6 MB.
	assert.LessOrEqual(t, after.TotalAlloc-before.TotalAlloc, uint64(256<<10), "bytes allocated by a steady-state forward pass")
}

func ExampleNetwork_Features() {
	// A narrow network (widths / 8) with generated weights; LoadNetwork
	// reads published weight files.
	w, err := GenerateWeights(VGG16, 0, 8)
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := NewNetwork(w, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	img := image.NewGray(image.Rect(0, 0, 300, 400)) // any size: resized to 224x224
	feats, err := m.Features(img)
	if err != nil {
		fmt.Println(err)
		return
	}
	b := m.Backbone()
	fmt.Println(len(feats), m.FeatureLen(), b.Arch, b.Preprocess, b.Seed, b.Divisor)
	// Output: 3136 3136 vgg16 caffe 0 8
}

// A network works on any image.Image; here with a white matte under
// translucent pixels and bilinear resizing.
func ExampleNetworkOptions() {
	w, err := GenerateWeights(VGG16, 1, 16)
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := NewNetwork(w, &NetworkOptions{Matte: color.White, Filter: FilterBilinear, Workers: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	feats, err := m.FeaturesBatch(context.Background(), []image.Image{
		image.NewNRGBA(image.Rect(0, 0, 64, 48)), // transparent: composited over white
		image.NewGray(image.Rect(0, 0, 10, 10)),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(feats), len(feats[0]), m.Backbone())
	// Output: 2 1568 {vgg16 caffe  1 16}
}
