package style

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewSiameseHead(t *testing.T) {
	h, err := NewSiameseHead(nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.In() != 25088 || h.Out() != 128 || h.Margin != 1 || h.Scale != 1 || h.Cutoff != 0.5 {
		t.Errorf("defaults: In %d Out %d Margin %v Scale %v Cutoff %v", h.In(), h.Out(), h.Margin, h.Scale, h.Cutoff)
	}
	cfg := &HeadConfig{In: 10, Out: 3, Margin: 2, Scale: 844.34, Seed: 4}
	h2, err := NewSiameseHead(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if h2.In() != 10 || h2.Out() != 3 || h2.Cutoff != 1 || h2.Scale != 844.34 || cfg.Cutoff != 0 {
		t.Errorf("configured head: %+v (config %+v)", h2, cfg)
	}
	for _, bad := range []HeadConfig{
		{In: -1}, {Out: -3}, {Margin: -1}, {Scale: -2}, {Scale: math.NaN()}, {Margin: math.Inf(1)}, {Cutoff: math.NaN()},
	} {
		if _, err := NewSiameseHead(&bad); err == nil {
			t.Errorf("config %+v: no error", bad)
		}
	}
}

// TestHeadEmbed checks that the scale divides the features (folded into the
// matrix product: float32 rounding, 1e-5 of the largest value) and that
// Embed, EmbedTo, EmbedBatch and Compare agree.
func TestHeadEmbed(t *testing.T) {
	h, err := NewSiameseHead(&HeadConfig{In: 50, Out: 6, Scale: 7.5, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range h.Dense.B {
		h.Dense.B[i] = 0.05 * float32(i-2)
	}
	s := newSynthSet(t, 10)
	x := s.src.data[:3*50]
	scaled := make([]float32, len(x))
	for i, v := range x {
		scaled[i] = v / 7.5
	}
	want := h.Dense.Forward(nil, scaled)
	got := h.EmbedBatch(nil, x)
	checkClose(t, "EmbedBatch", got, f64(want), 0, 1e-5)
	for r := 0; r < 3; r++ {
		e := h.Embed(x[r*50 : (r+1)*50])
		dst := make([]float32, 6)
		if h.EmbedTo(dst, x[r*50:(r+1)*50]); !bitsEqual(e, dst) {
			t.Errorf("row %d: EmbedTo differs from Embed", r)
		}
		checkClose(t, "Embed", e, f64(got[r*6:(r+1)*6]), 0, 1e-6)
	}
	d, v := h.Compare(x[:50], x[50:100])
	if want := h.Distance(h.Embed(x[:50]), h.Embed(x[50:100])); math.Abs(d-want) > 1e-6*want {
		t.Errorf("Compare distance %v, want %v", d, want)
	}
	if v != h.Verdict(d) {
		t.Errorf("Compare verdict %v, want %v", v, h.Verdict(d))
	}
	if d := h.Distance([]float32{0, 0, 0, 3, 4, 0}, []float32{0, 0, 0, 0, 0, 0}); d != 5 {
		t.Errorf("Distance = %v, want 5", d)
	}
	for name, f := range map[string]func(){
		"Embed length":    func() { h.Embed(make([]float32, 49)) },
		"EmbedBatch dst":  func() { h.EmbedBatch(make([]float32, 5), make([]float32, 50)) },
		"Distance length": func() { h.Distance(make([]float32, 5), make([]float32, 6)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func TestVerdict(t *testing.T) {
	h := &SiameseHead{Cutoff: 0.4}
	if h.Verdict(0.4) != Compatible || h.Verdict(0.39) != Compatible || h.Verdict(0.41) != Incompatible {
		t.Error("distance <= cutoff must be compatible, above it incompatible")
	}
	if Compatible.String() != "Nice, this looks good together!" || Incompatible.String() != "Sorry, these styles do not match." {
		t.Errorf("verdict strings %q, %q", Compatible, Incompatible)
	}
	if Verdict(7).String() != "Verdict(7)" {
		t.Errorf("unknown verdict string %q", Verdict(7))
	}
}

var testBackbone = Backbone{Arch: "vgg16", Preprocess: PreprocessCaffe, SHA256: strings.Repeat("ab", 32)}

func TestCheckBackbone(t *testing.T) {
	h, err := NewSiameseHead(&HeadConfig{In: 4, Out: 2, Backbone: testBackbone})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.CheckBackbone(testBackbone); err != nil {
		t.Errorf("same backbone: %v", err)
	}
	for _, b := range []Backbone{
		{Arch: "vgg16", Preprocess: PreprocessTorch, SHA256: testBackbone.SHA256},
		{Arch: "vgg16", Preprocess: PreprocessCaffe, SHA256: strings.Repeat("cd", 32)},
		{Arch: "vgg16", Preprocess: PreprocessCaffe},
		{Arch: "resnet50", Preprocess: PreprocessCaffe, SHA256: testBackbone.SHA256},
	} {
		if err := h.CheckBackbone(b); !errors.Is(err, ErrBackboneMismatch) {
			t.Errorf("backbone %+v: err = %v, want ErrBackboneMismatch", b, err)
		}
	}
}

func TestFeatureScale(t *testing.T) {
	src := &memFeatures{dim: 3, data: []float32{1, 2, 3, 9, 0, 0, 4, 5, 6}}
	ctx := context.Background()
	if s, err := FeatureScale(ctx, src, nil); err != nil || s != 9 {
		t.Errorf("all entries: %v, %v; want 9", s, err)
	}
	if s, err := FeatureScale(ctx, src, []LabeledPair{{A: 0, B: 2}}); err != nil || s != 6 {
		t.Errorf("entries 0 and 2: %v, %v; want 6", s, err)
	}
	if _, err := FeatureScale(ctx, src, []LabeledPair{{A: 0, B: 3}}); err == nil {
		t.Error("index out of range: no error")
	}
	zero := &memFeatures{dim: 2, data: []float32{0, 0, -1, 0}}
	if _, err := FeatureScale(ctx, zero, nil); err == nil {
		t.Error("non-positive maximum: no error")
	}
	nan := &memFeatures{dim: 2, data: []float32{1, float32(math.NaN()), 2, 3}}
	if _, err := FeatureScale(ctx, nan, nil); err == nil {
		t.Error("NaN feature: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := FeatureScale(cctx, src, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

// TestHeadSaveLoad round-trips a trained-looking head through a
// safetensors file: weights bit for bit, every metadata field, the same
// embeddings, and the backbone check still guarding the loaded head.
func TestHeadSaveLoad(t *testing.T) {
	h, err := NewSiameseHead(&HeadConfig{In: 40, Out: 5, Margin: 1.5, Scale: 844.34, Cutoff: 0.123456789012345, Seed: 8, Backbone: testBackbone})
	if err != nil {
		t.Fatal(err)
	}
	for i := range h.Dense.B {
		h.Dense.B[i] = float32(i) / 3
	}
	path := filepath.Join(t.TempDir(), "head.safetensors")
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	g, err := LoadHead(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bitsEqual(g.Dense.W, h.Dense.W) || !bitsEqual(g.Dense.B, h.Dense.B) {
		t.Error("weights changed in the round trip")
	}
	if g.In() != 40 || g.Out() != 5 || g.Scale != h.Scale || g.Margin != h.Margin || g.Cutoff != h.Cutoff || g.Backbone != h.Backbone {
		t.Errorf("loaded %+v, saved %+v", g, h)
	}
	x := make([]float32, 40)
	for i := range x {
		x[i] = float32(i)
	}
	if !bitsEqual(g.Embed(x), h.Embed(x)) {
		t.Error("loaded head embeds differently")
	}
	if err := g.CheckBackbone(Backbone{Arch: "vgg16", Preprocess: PreprocessTorch}); !errors.Is(err, ErrBackboneMismatch) {
		t.Errorf("loaded head accepts another backbone: %v", err)
	}
	// Saving again over the file replaces it atomically: no temporary
	// files are left behind.
	h.Cutoff = 0.3
	if err := h.Save(path); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files in the directory after saving twice, want 1", len(entries))
	}
	if g, err := LoadHead(path); err != nil || g.Cutoff != 0.3 {
		t.Errorf("reloaded cutoff %v, err %v", g.Cutoff, err)
	}
}

// TestLoadHeadErrors: files that are not valid heads give a *FormatError
// naming the file (or the read error for a missing file), never a panic.
func TestLoadHeadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadHead(filepath.Join(dir, "missing.safetensors")); err == nil {
		t.Error("missing file: no error")
	}
	junk := filepath.Join(dir, "junk.safetensors")
	os.WriteFile(junk, []byte("\x10\x00\x00\x00\x00\x00\x00\x00{not json"), 0o644)
	if _, err := LoadHead(junk); err == nil {
		t.Error("junk file: no error")
	}
	good := map[string]string{
		"format": headFormat, "format_version": headFormatVersion, "in": "4", "out": "2",
		"scale": "1", "margin": "1", "cutoff": "0.5", "backbone": "vgg16", "preprocess": "caffe", "backbone_sha256": "",
	}
	kernel := tensor{name: headKernelName, shape: []int{4, 2}, data: make([]float32, 8)}
	bias := tensor{name: headBiasName, shape: []int{2}, data: make([]float32, 2)}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range good {
			m[a] = b
		}
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
		if err := writeSafetensors(p, c.ts, c.meta); err != nil {
			t.Fatalf("%s: writing the test file: %v", c.name, err)
		}
		_, err := LoadHead(p)
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) || fe.Path != p {
			t.Errorf("%s: err = %v, want a *FormatError naming %s", c.name, err, p)
		}
	}
}

// BenchmarkEmbedBatch embeds 256 feature vectors of 25,088 floats at a time
// with the study's 128-D head.
func BenchmarkEmbedBatch(b *testing.B) {
	const n = 256
	src, _ := benchFeatures(n, 0)
	h, err := NewSiameseHead(&HeadConfig{Scale: StudyFeatureScale})
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]float32, n*h.Out())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.EmbedBatch(dst, src.data)
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
