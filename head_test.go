package style

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewSiameseHead(t *testing.T) {
	h, err := NewSiameseHead(nil)
	require.NoError(t, err)
	assert.Equal(t, 25088, h.Dense.In, "default In")
	assert.Equal(t, 128, h.Dense.Out, "default Out")
	assert.Equal(t, 1.0, h.Margin, "default Margin")
	assert.Equal(t, 1.0, h.Scale, "default Scale")
	assert.Equal(t, 0.5, h.Cutoff, "default Cutoff")
	cfg := &HeadConfig{In: 10, Out: 3, Margin: 2, Scale: 844.34, Seed: 4}
	h2, err := NewSiameseHead(cfg)
	require.NoError(t, err)
	assert.Equal(t, 10, h2.Dense.In, "configured In")
	assert.Equal(t, 3, h2.Dense.Out, "configured Out")
	assert.Equal(t, 1.0, h2.Cutoff, "configured head: cutoff Margin/2")
	assert.Equal(t, 844.34, h2.Scale, "configured Scale")
	assert.Zero(t, cfg.Cutoff, "the config was modified")
	for _, bad := range []HeadConfig{
		{In: -1}, {Out: -3}, {Margin: -1}, {Scale: -2}, {Scale: math.NaN()}, {Margin: math.Inf(1)}, {Cutoff: math.NaN()},
	} {
		_, err := NewSiameseHead(&bad)
		assert.Error(t, err, "config %+v", bad)
	}
}

// TestHeadEmbed checks that the scale divides the features (folded into the
// matrix product: float32 rounding, 1e-5 of the largest value) and that
// Embed of many rows, Embed of one row and Compare agree.
func TestHeadEmbed(t *testing.T) {
	h, err := NewSiameseHead(&HeadConfig{In: 50, Out: 6, Scale: 7.5, Seed: 2})
	require.NoError(t, err)
	for i := range h.Dense.B {
		h.Dense.B[i] = 0.05 * float32(i-2)
	}
	s := newSynthSet(t, 10)
	x := s.src.data[:3*50]
	scaled := make([]float32, len(x))
	for i, v := range x {
		scaled[i] = v / 7.5
	}
	want := h.Dense.ForwardTo(make([]float32, 3*6), scaled)
	got := h.Embed(x)
	checkClose(t, "Embed of 3 rows", got, f64(want), 0, 1e-5)
	for r := 0; r < 3; r++ {
		e := h.Embed(x[r*50 : (r+1)*50])
		require.Len(t, e, 6, "row %d", r)
		checkClose(t, "Embed of one row", e, f64(got[r*6:(r+1)*6]), 0, 1e-6)
	}
	assert.Empty(t, h.Embed(nil), "no rows")
	d, v, err := h.Compare(x[:50], x[50:100])
	require.NoError(t, err)
	assert.InEpsilon(t, pairDistance(h.Embed(x[:50]), h.Embed(x[50:100])), d, 1e-6, "Compare distance")
	assert.Equal(t, h.Verdict(d), v, "Compare verdict")
	assert.Equal(t, 5.0, pairDistance([]float32{0, 0, 0, 3, 4, 0}, []float32{0, 0, 0, 0, 0, 0}), "pairDistance")
	for name, f := range map[string]func(){
		"Embed length":   func() { h.Embed(make([]float32, 49)) },
		"Compare length": func() { h.Compare(make([]float32, 50), make([]float32, 49)) },
	} {
		t.Run(name, func(t *testing.T) { mustPanic(t, "SiameseHead", f) })
	}
}

// TestHeadCompareNonFinite: a NaN or infinite feature, or finite features
// whose distance overflows, give an error naming the problem, not a
// verdict.
func TestHeadCompareNonFinite(t *testing.T) {
	h, err := NewSiameseHead(&HeadConfig{In: 4, Out: 3, Seed: 1})
	require.NoError(t, err)
	h.Dense.B = []float32{1, 1, 1} // every unit active for positive inputs
	for i := range h.Dense.W {
		h.Dense.W[i] = float32(i%3+1) * 0.5
	}
	ok := []float32{1, 2, 3, 4}
	for _, tc := range []struct {
		name string
		a, b []float32
		want string
	}{
		{"NaN in the first", []float32{1, float32(math.NaN()), 3, 4}, ok, "feature 1 of the first item is NaN"},
		{"Inf in the second", ok, []float32{1, 2, 3, float32(math.Inf(-1))}, "feature 3 of the second item is -Inf"},
		{"overflow", ok, []float32{3e38, 3e38, 3e38, 3e38}, "the distance is +Inf"},
	} {
		d, v, err := h.Compare(tc.a, tc.b)
		assert.ErrorContains(t, err, tc.want, tc.name)
		assert.Zero(t, d, tc.name)
		assert.Equal(t, Incompatible, v, tc.name)
	}
	d, v, err := h.Compare(ok, ok)
	require.NoError(t, err)
	assert.Equal(t, math.Sqrt(1e-7), d, "identical items sit on the distance floor")
	assert.Equal(t, Compatible, v)
}

func TestVerdict(t *testing.T) {
	h := &SiameseHead{Cutoff: 0.4}
	assert.Equal(t, Compatible, h.Verdict(0.4), "distance = cutoff")
	assert.Equal(t, Compatible, h.Verdict(0.39), "distance below the cutoff")
	assert.Equal(t, Incompatible, h.Verdict(0.41), "distance above the cutoff")
	assert.Equal(t, "Nice, this looks good together!", Compatible.String())
	assert.Equal(t, "Sorry, these styles do not match.", Incompatible.String())
	assert.Equal(t, "Verdict(7)", Verdict(7).String(), "unknown verdict")
}

var testBackbone = Backbone{Arch: "vgg16", Preprocess: PreprocessCaffe, SHA256: strings.Repeat("ab", 32)}

func TestCheckBackbone(t *testing.T) {
	h, err := NewSiameseHead(&HeadConfig{In: 4, Out: 2, Backbone: testBackbone})
	require.NoError(t, err)
	assert.NoError(t, h.CheckBackbone(testBackbone), "same backbone")
	for _, b := range []Backbone{
		{Arch: "vgg16", Preprocess: PreprocessTorch, SHA256: testBackbone.SHA256},
		{Arch: "vgg16", Preprocess: PreprocessCaffe, SHA256: strings.Repeat("cd", 32)},
		{Arch: "vgg16", Preprocess: PreprocessCaffe},
		{Arch: "resnet50", Preprocess: PreprocessCaffe, SHA256: testBackbone.SHA256},
	} {
		assert.ErrorIs(t, h.CheckBackbone(b), ErrBackboneMismatch, "backbone %+v", b)
	}
}

func TestFeatureScale(t *testing.T) {
	src := &memFeatures{dim: 3, data: []float32{1, 2, 3, 9, 0, 0, 4, 5, 6}}
	ctx := context.Background()
	s, err := FeatureScale(ctx, src, nil)
	require.NoError(t, err, "all entries")
	assert.Equal(t, 9.0, s, "all entries")
	s, err = FeatureScale(ctx, src, []LabeledPair{{A: 0, B: 2}})
	require.NoError(t, err, "entries 0 and 2")
	assert.Equal(t, 6.0, s, "entries 0 and 2")
	_, err = FeatureScale(ctx, src, []LabeledPair{{A: 0, B: 3}})
	assert.Error(t, err, "index out of range")
	_, err = FeatureScale(ctx, src, []LabeledPair{})
	assert.Error(t, err, "no pairs: no maximum")
	zero := &memFeatures{dim: 2, data: []float32{0, 0, -1, 0}}
	_, err = FeatureScale(ctx, zero, nil)
	assert.Error(t, err, "non-positive maximum")
	nan := &memFeatures{dim: 2, data: []float32{1, float32(math.NaN()), 2, 3}}
	_, err = FeatureScale(ctx, nan, nil)
	assert.Error(t, err, "NaN feature")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = FeatureScale(cctx, src, nil)
	assert.ErrorIs(t, err, context.Canceled)
}

// TestFeatureScaleStore: from a FeatureStore the scale comes from the
// per-record maxima of its index, without reading a vector, and equals
// the maximum of the vectors as read back (rounded to float16 when
// stored).
func TestFeatureScaleStore(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenFeatureStore(dir, &StoreOptions{Dim: 3, Backbone: testBackbone})
	require.NoError(t, err)
	defer store.Close()
	vecs := [][]float32{{1.1, 2.2, 3.3}, {9.9, 0, 0}, {4.4, 5.5, 6.6}, {0.1, 0.2, 0.3}}
	for i, v := range vecs {
		_, err := store.Put(fmt.Sprintf("item%d.jpg", i), v)
		require.NoError(t, err)
	}
	counting := &countingSource{FeatureSource: store}
	ctx := context.Background()
	for _, pairs := range [][]LabeledPair{nil, {{A: 0, B: 2}}, {{A: 3, B: 2, Label: 1}, {A: 0, B: 3}}} {
		got, err := FeatureScale(ctx, store, pairs)
		require.NoError(t, err, "pairs %v", pairs)
		// The same computation through the vectors: counting hides the
		// store's maxima.
		want, err := FeatureScale(ctx, counting, pairs)
		require.NoError(t, err, "pairs %v", pairs)
		assert.Equal(t, want, got, "pairs %v", pairs)
	}
	assert.Positive(t, counting.reads.Load(), "the reference read vectors")
	_, err = FeatureScale(ctx, store, []LabeledPair{{A: 0, B: 4}})
	assert.Error(t, err, "index out of range")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = FeatureScale(cctx, store, nil)
	assert.ErrorIs(t, err, context.Canceled)
	empty, err := OpenFeatureStore(t.TempDir(), &StoreOptions{Dim: 3, Backbone: testBackbone})
	require.NoError(t, err)
	defer empty.Close()
	_, err = FeatureScale(ctx, empty, nil)
	assert.Error(t, err, "empty store: no maximum")
}

// countingSource counts the vectors read through it.
type countingSource struct {
	FeatureSource
	reads atomic.Int64
}

func (c *countingSource) FeatureTo(dst []float32, i int) []float32 {
	c.reads.Add(1)
	return c.FeatureSource.FeatureTo(dst, i)
}

// TestHeadSaveLoad round-trips a trained-looking head through a
// safetensors file: weights bit for bit, every metadata field, the same
// embeddings, and the backbone check still guarding the loaded head.
func TestHeadSaveLoad(t *testing.T) {
	h, err := NewSiameseHead(&HeadConfig{In: 40, Out: 5, Margin: 1.5, Scale: 844.34, Cutoff: 0.123456789012345, Seed: 8, Backbone: testBackbone})
	require.NoError(t, err)
	for i := range h.Dense.B {
		h.Dense.B[i] = float32(i) / 3
	}
	path := filepath.Join(t.TempDir(), "head.safetensors")
	require.NoError(t, h.Save(path))
	g, err := LoadHead(path)
	require.NoError(t, err)
	assert.True(t, bitsEqual(g.Dense.W, h.Dense.W) && bitsEqual(g.Dense.B, h.Dense.B), "weights changed in the round trip")
	assert.Equal(t, 40, g.Dense.In, "loaded In")
	assert.Equal(t, 5, g.Dense.Out, "loaded Out")
	assert.Equal(t, h.Scale, g.Scale, "loaded Scale")
	assert.Equal(t, h.Margin, g.Margin, "loaded Margin")
	assert.Equal(t, h.Cutoff, g.Cutoff, "loaded Cutoff")
	assert.Equal(t, h.Backbone, g.Backbone, "loaded Backbone")
	x := make([]float32, 40)
	for i := range x {
		x[i] = float32(i)
	}
	assert.True(t, bitsEqual(g.Embed(x), h.Embed(x)), "loaded head embeds differently")
	assert.ErrorIs(t, g.CheckBackbone(Backbone{Arch: "vgg16", Preprocess: PreprocessTorch}), ErrBackboneMismatch,
		"loaded head accepts another backbone")
	// Saving again over the file replaces it atomically: no temporary
	// files are left behind.
	h.Cutoff = 0.3
	require.NoError(t, h.Save(path))
	entries, _ := os.ReadDir(filepath.Dir(path))
	assert.Len(t, entries, 1, "files in the directory after saving twice")
	g, err = LoadHead(path)
	require.NoError(t, err)
	assert.Equal(t, 0.3, g.Cutoff, "reloaded cutoff")
}

// TestLoadHeadErrors: files that are not valid heads give a *FormatError
// naming the file (or the read error for a missing file), never a panic.
func TestLoadHeadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadHead(filepath.Join(dir, "missing.safetensors"))
	assert.Error(t, err, "missing file")
	junk := filepath.Join(dir, "junk.safetensors")
	require.NoError(t, os.WriteFile(junk, []byte("\x10\x00\x00\x00\x00\x00\x00\x00{not json"), 0o644))
	_, err = LoadHead(junk)
	assert.Error(t, err, "junk file")
	good := map[string]string{
		"format": headFormat, "format_version": headFormatVersion, "in": "4", "out": "2",
		"scale": "1", "margin": "1", "cutoff": "0.5", "backbone": "vgg16", "preprocess": "caffe", "backbone_sha256": "",
	}
	kernel := tensor{name: headKernelName, shape: []int{4, 2}, data: make([]float32, 8)}
	bias := tensor{name: headBiasName, shape: []int{2}, data: make([]float32, 2)}
	with := func(k, v string) map[string]string {
		m := maps.Clone(good)
		m[k] = v
		return m
	}
	cases := []struct {
		name string
		ts   []tensor
		meta map[string]string
	}{
		{"other format", []tensor{kernel, bias}, with("format", "something else")},
		{"future version", []tensor{kernel, bias}, with("format_version", "99")},
		{"bad in", []tensor{kernel, bias}, with("in", "four")},
		{"zero out", []tensor{kernel, bias}, with("out", "0")},
		{"bad scale", []tensor{kernel, bias}, with("scale", "-1")},
		{"NaN margin", []tensor{kernel, bias}, with("margin", "NaN")},
		{"missing cutoff", []tensor{kernel, bias}, with("cutoff", "")},
		{"missing bias", []tensor{kernel}, good},
		{"kernel shape", []tensor{{name: headKernelName, shape: []int{2, 4}, data: make([]float32, 8)}, bias}, good},
		{"size mismatch", []tensor{kernel, bias}, with("in", "5")},
	}
	for _, c := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".safetensors")
		require.NoError(t, writeSafetensors(p, c.ts, c.meta), "%s: writing the test file", c.name)
		_, err := LoadHead(p)
		var fe *FormatError
		if assert.ErrorAs(t, err, &fe, c.name) {
			assert.ErrorIs(t, err, ErrFormat, c.name)
			assert.Equal(t, p, fe.Path, c.name)
		}
	}
}

// BenchmarkEmbedBatch embeds 256 feature vectors of 25,088 floats at a time
// with the study's 128-D head (scale: the study's maximum feature).
func BenchmarkEmbedBatch(b *testing.B) {
	const n = 256
	src, _ := benchFeatures(n, 0)
	h, err := NewSiameseHead(&HeadConfig{Scale: 844.34})
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Embed(src.data)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "embeddings/s")
}

func ExampleSiameseHead_Verdict() {
	h, err := NewSiameseHead(&HeadConfig{In: 4, Out: 2, Cutoff: 0.4})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(h.Verdict(0.25))
	fmt.Println(h.Verdict(0.9))
	// Output:
	// Nice, this looks good together!
	// Sorry, these styles do not match.
}

// TestLoadHeadHuge: a sparse head file declaring 2^33 weights (32 GiB) is
// refused from its metadata, before any weight is read or allocated, as
// is one whose kernel is larger than its metadata says.
func TestLoadHeadHuge(t *testing.T) {
	overflowing := "exceeds the limit" // in x out wraps around in an int64
	if strconv.IntSize == 32 {
		overflowing = "not a positive integer" // in does not fit an int
	}
	for _, tc := range []struct {
		name      string
		in        int64
		out, rows int
		want      string
	}{
		{"huge", 1 << 18, 1 << 15, 1 << 18, "exceeds the limit"},
		{"overflowing", 1 << 62, 4, 1 << 18, overflowing},
		{"kernel_larger_than_metadata", 4, 1 << 15, 1 << 18, "has shape [262144 32768]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kernel := int64(tc.rows) * int64(tc.out) * 4
			hdr := fmt.Sprintf(`{"__metadata__":{"format":%q,"format_version":%q,"in":"%d","out":"%d","scale":"1","margin":"1","cutoff":"0.5"},`+
				`%q:{"dtype":"F32","shape":[%d,%d],"data_offsets":[0,%d]},%q:{"dtype":"F32","shape":[%d],"data_offsets":[%d,%d]}}`,
				headFormat, headFormatVersion, tc.in, tc.out, headKernelName, tc.rows, tc.out, kernel, headBiasName, tc.out, kernel, kernel+4*int64(tc.out))
			p := writeTemp(t, "head.safetensors", rawSafetensors(hdr, nil))
			require.NoError(t, os.Truncate(p, int64(8+len(hdr))+kernel+4*int64(tc.out)))
			var err error
			n := allocated(func() { _, err = LoadHead(p) })
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, p, fe.Path)
			assert.Contains(t, err.Error(), tc.want)
			assert.LessOrEqual(t, n, readBudget(0))
		})
	}
}

// TestHeadValues: heads with a weight or bias that is not finite or beyond
// ±1e6, or a scale, margin or cutoff that is not finite (or a negative
// cutoff), are refused by LoadHead with a *FormatError naming the file
// (and the tensor and element), by Save without writing anything, and by
// NewSiameseHead.
func TestHeadValues(t *testing.T) {
	dir := t.TempDir()
	good := map[string]string{
		"format": headFormat, "format_version": headFormatVersion, "in": "4", "out": "2",
		"scale": "1", "margin": "1", "cutoff": "0.5", "backbone": "vgg16", "preprocess": "caffe", "backbone_sha256": "",
	}
	with := func(k, v string) map[string]string {
		m := maps.Clone(good)
		m[k] = v
		return m
	}
	tensors := func(ki int, kv float32, bi int, bv float32) []tensor {
		k := tensor{name: headKernelName, shape: []int{4, 2}, data: make([]float32, 8)}
		b := tensor{name: headBiasName, shape: []int{2}, data: make([]float32, 2)}
		k.data[ki], b.data[bi] = kv, bv
		return []tensor{k, b}
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		name string
		ts   []tensor
		meta map[string]string
		want string
	}{
		{"nan_weight", tensors(3, nan, 0, 0), good, headKernelName + ": element 3 of 8"},
		{"inf_bias", tensors(0, 0, 1, -inf), good, headBiasName + ": element 1 of 2"},
		{"huge_weight", tensors(7, 2e6, 0, 0), good, "beyond the bound"},
		{"negative_cutoff", tensors(0, 0, 0, 0), with("cutoff", "-0.1"), "cutoff"},
		{"inf_cutoff", tensors(0, 0, 0, 0), with("cutoff", "+Inf"), "cutoff"},
		{"nan_cutoff", tensors(0, 0, 0, 0), with("cutoff", "NaN"), "cutoff"},
		{"inf_scale", tensors(0, 0, 0, 0), with("scale", "Inf"), "scale"},
		{"scale_out_of_range", tensors(0, 0, 0, 0), with("scale", "1e300"), "scale"},
		{"inf_margin", tensors(0, 0, 0, 0), with("margin", "Inf"), "margin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+".safetensors")
			require.NoError(t, writeSafetensors(p, tc.ts, tc.meta))
			_, err := LoadHead(p)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, p, fe.Path)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	// The bound itself loads.
	p := filepath.Join(dir, "bound.safetensors")
	require.NoError(t, writeSafetensors(p, tensors(0, 1e6, 1, -1e6), good))
	h, err := LoadHead(p)
	require.NoError(t, err)
	assert.Equal(t, float32(1e6), h.Dense.W[0])

	// Save refuses what LoadHead would.
	for name, mutate := range map[string]func(h *SiameseHead){
		"nan_weight":      func(h *SiameseHead) { h.Dense.W[5] = nan },
		"inf_bias":        func(h *SiameseHead) { h.Dense.B[0] = inf },
		"huge_weight":     func(h *SiameseHead) { h.Dense.W[0] = -3e6 },
		"negative_cutoff": func(h *SiameseHead) { h.Cutoff = -1 },
		"inf_cutoff":      func(h *SiameseHead) { h.Cutoff = math.Inf(1) },
		"nan_scale":       func(h *SiameseHead) { h.Scale = math.NaN() },
		"inf_margin":      func(h *SiameseHead) { h.Margin = math.Inf(1) },
	} {
		h, err := NewSiameseHead(&HeadConfig{In: 4, Out: 2, Seed: 1})
		require.NoError(t, err)
		mutate(h)
		p := filepath.Join(dir, "save_"+name+".safetensors")
		assert.Error(t, h.Save(p), name)
		assert.NoFileExists(t, p, name)
	}
	_, err = NewSiameseHead(&HeadConfig{In: 4, Out: 2, Cutoff: -0.5})
	assert.Error(t, err, "negative cutoff")
}
