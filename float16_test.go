package style

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFloat16Exhaustive(t *testing.T) {
	// Every half value converts to float32 and back to itself (NaNs are
	// rejected instead).
	for h := 0; h < 1<<16; h++ {
		f := halfToFloat32(uint16(h))
		back, ok := float32ToHalf(f)
		isNaN := h&0x7c00 == 0x7c00 && h&0x3ff != 0
		isInf := h&0x7fff == 0x7c00
		switch {
		case isNaN || isInf:
			if ok || (isNaN && !math.IsNaN(float64(f))) || (isInf && !math.IsInf(float64(f), 0)) {
				t.Fatalf("%#04x: %v accepted", h, f)
			}
		case !ok || back != uint16(h):
			t.Fatalf("%#04x -> %v -> %#04x (ok %v)", h, f, back, ok)
		}
	}
	for _, c := range []struct {
		f  float32
		ok bool
		h  uint16
	}{
		{65504, true, 0x7bff},
		{65519.996, true, 0x7bff}, // below the midpoint to infinity
		{65520, false, 0},         // the midpoint rounds to infinity
		{-1e6, false, 0},
		{float32(math.NaN()), false, 0},
		{1, true, 0x3c00},
		{1 + 1.0/2048, true, 0x3c00}, // tie: to even
		{1 + 3.0/2048, true, 0x3c02}, // tie: to even (up)
		{0x1p-24, true, 0x0001},      // smallest subnormal
		{0x1p-25, true, 0x0000},      // tie with zero: to even
		{0x1.8p-25, true, 0x0001},    // above the tie
		{0x1p-26, true, 0x0000},
		{-0x1p-14, true, 0x8400},             // smallest normal, negative
		{0x1.ffcp-15, true, 0x0400},          // largest subnormal rounds up to the smallest normal
		{0x1.ff8p-15, true, 0x03ff},          // largest subnormal exactly
		{0x1.ffep-1 + 0x1p-13, true, 0x3c00}, // carries into the exponent
	} {
		h, ok := float32ToHalf(c.f)
		if assert.Equal(t, c.ok, ok, "float32ToHalf(%v)", c.f) && ok {
			assert.Equal(t, c.h, h, "float32ToHalf(%v)", c.f)
		}
	}
	assert.Equal(t, float32(maxFloat16), halfToFloat32(0x7bff))
}

func TestFloat16Rounding(t *testing.T) {
	// Random float32 values over the whole half range: the result is the
	// nearest half (neither neighbour is closer), and the error is within
	// the documented bounds: 2^-11 relative for normal halves (|x| >=
	// 2^-14), 2^-25 absolute below.
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 200000; i++ {
		x := float32(math.Ldexp(rng.Float64()+0.5, rng.IntN(44)-30))
		if rng.IntN(2) == 0 {
			x = -x
		}
		if math.Abs(float64(x)) >= 65520 {
			continue
		}
		h, ok := float32ToHalf(x)
		if !ok {
			t.Fatalf("%v rejected", x)
		}
		got := float64(halfToFloat32(h))
		err := math.Abs(got - float64(x))
		for _, nb := range []uint16{h - 1, h + 1} {
			if nb&0x7c00 == 0x7c00 || (h&0x7fff == 0 && nb == h-1) {
				continue
			}
			if d := math.Abs(float64(halfToFloat32(nb)) - float64(x)); d < err {
				t.Fatalf("%v -> %v, but neighbour %v is closer", x, got, halfToFloat32(nb))
			}
		}
		if math.Abs(float64(x)) >= 0x1p-14 {
			if rel := err / math.Abs(float64(x)); rel > 0x1p-11 {
				t.Fatalf("%v -> %v: relative error %g > 2^-11", x, got, rel)
			}
		} else if err > 0x1p-25 {
			t.Fatalf("%v -> %v: absolute error %g > 2^-25", x, got, err)
		}
	}
}

func TestFloat16Slices(t *testing.T) {
	// The slice conversions agree with the scalar ones, and float32ToHalves
	// reports the largest rounded value and the first bad one.
	src := []float32{0, -1.5, 0x1p-20, 1000.3, -65504, 3}
	buf := make([]byte, 2*len(src))
	mx, bad := float32ToHalves(buf, src)
	require.Equal(t, -1, bad)
	got := make([]float32, len(src))
	halvesToFloat32(got, buf)
	for i, v := range src {
		h, _ := float32ToHalf(v)
		assert.Equal(t, halfToFloat32(h), got[i], "value %d", i)
	}
	assert.Equal(t, halfToFloat32(0x63d1), mx) // 1000.3 rounds to 1000.5
	_, bad = float32ToHalves(buf, []float32{1, 2, 70000, float32(math.NaN())})
	assert.Equal(t, 2, bad)

	// bfloat16 is the upper half of a float32.
	bf := []byte{0x80, 0x3f, 0x49, 0xc0, 0x80, 0x7f, 0x01, 0x00}
	dst := make([]float32, 4)
	bfloat16sToFloat32(dst, bf)
	assert.Equal(t, []float32{1, -3.140625, float32(math.Inf(1)), math.Float32frombits(1 << 16)}, dst)
	assert.Panics(t, func() { halvesToFloat32(make([]float32, 5), make([]byte, 8)) })
}

// TestFloat16HeadPrecision shows that storing features as float16 does not
// matter to a style head: VGG16-like features (non-negative, sparse, up to
// about 850) are MinMax-scaled, run through a random Dense(512 -> 128, ReLU)
// layer, and the distances between pairs of embeddings computed from
// float32 and from float16 features are compared.
func TestFloat16HeadPrecision(t *testing.T) {
	const dim, out, n = 512, 128, 40
	rng := rand.New(rand.NewPCG(2, 3))
	feats := make([][]float32, n)
	rounded := make([][]float32, n)
	var max float32
	for i := range feats {
		feats[i] = make([]float32, dim)
		for k := range feats[i] {
			if rng.Float64() < 0.6 {
				continue // ReLU zeros
			}
			feats[i][k] = float32(rng.ExpFloat64() * 40)
			max = float32(math.Max(float64(max), float64(feats[i][k])))
		}
		buf := make([]byte, 2*dim)
		_, bad := float32ToHalves(buf, feats[i])
		require.Equal(t, -1, bad, "unrepresentable feature")
		rounded[i] = make([]float32, dim)
		halvesToFloat32(rounded[i], buf)
	}
	// Glorot-uniform weights.
	w := make([]float64, dim*out)
	lim := math.Sqrt(6.0 / (dim + out))
	for i := range w {
		w[i] = (2*rng.Float64() - 1) * lim
	}
	embed := func(f []float32, scale float32) []float64 {
		e := make([]float64, out)
		for j := range e {
			var s float64
			for k, v := range f {
				s += float64(v/scale) * w[k*out+j]
			}
			e[j] = math.Max(s, 0)
		}
		return e
	}
	maxIn, maxRel := 0.0, 0.0
	var embs32, embs16 [][]float64
	for i := range feats {
		for k := range feats[i] {
			maxIn = math.Max(maxIn, math.Abs(float64(feats[i][k]/max-rounded[i][k]/max)))
		}
		embs32 = append(embs32, embed(feats[i], max))
		embs16 = append(embs16, embed(rounded[i], max))
	}
	dist := func(a, b []float64) float64 {
		var s float64
		for k := range a {
			s += (a[k] - b[k]) * (a[k] - b[k])
		}
		return math.Sqrt(s)
	}
	for i := 0; i+1 < n; i += 2 {
		d32 := dist(embs32[i], embs32[i+1])
		d16 := dist(embs16[i], embs16[i+1])
		maxRel = math.Max(maxRel, math.Abs(d32-d16)/d32)
	}
	// Scaled inputs move by at most 2^-11 (each value is at most 1), and
	// distances by far less than the 1e-3 that would change a verdict
	// near a cutoff; the observed values are logged.
	t.Logf("max input change after MinMax scaling %.2g, max relative distance change %.2g", maxIn, maxRel)
	assert.LessOrEqual(t, maxIn, 0x1p-11, "scaled input change")
	assert.LessOrEqual(t, maxRel, 1e-3, "relative distance change")
}

// rounded16 returns v rounded to float16, as a FeatureStore keeps it.
func rounded16(v []float32) []float32 {
	buf := make([]byte, 2*len(v))
	float32ToHalves(buf, v)
	out := make([]float32, len(v))
	halvesToFloat32(out, buf)
	return out
}

func BenchmarkFloat16Encode(b *testing.B) {
	v := testVector("bench", benchDim)
	buf := make([]byte, 2*benchDim)
	b.SetBytes(4 * benchDim)
	for b.Loop() {
		float32ToHalves(buf, v)
	}
}
