package style

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sharedGolden = "../shared/golden"

// sharedFile returns a file of the shared reference data, skipping the test
// when the reference data is not checked out next to the repository.
func sharedFile(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(sharedGolden, rel)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference data %s not available (it lives in ../shared): %v", p, err)
	}
	return p
}

func TestReadVGG16WeightsGolden(t *testing.T) {
	ref, err := ReadVGG16Weights(sharedFile(t, "vgg16_narrow_tv.safetensors"), 8)
	if err != nil {
		t.Fatal(err)
	}
	wantWidths := []int{8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64}
	in := 3
	for i, l := range ref.Layers {
		if l.Out != wantWidths[i] || l.In != in || len(l.Weight) != l.Out*l.In*9 || len(l.Bias) != l.Out {
			t.Fatalf("layer %d: %d -> %d with %d weights, %d biases", i, l.In, l.Out, len(l.Weight), len(l.Bias))
		}
		in = l.Out
	}
	if ref.Preprocess != PreprocessTorch || ref.Metadata["note"] == "" {
		t.Errorf("Preprocess %q, metadata %v", ref.Preprocess, ref.Metadata)
	}

	var info struct {
		Files map[string]struct {
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	raw, err := os.ReadFile(sharedFile(t, "pth/info.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vgg16_narrow_legacy.pth", "vgg16_narrow_zip.pth", "vgg16_narrow_fp16_zip.pth"} {
		t.Run(name, func(t *testing.T) {
			w, err := ReadVGG16Weights(sharedFile(t, "pth/"+name), 8)
			if err != nil {
				t.Fatal(err)
			}
			if w.SHA256 != info.Files[name].SHA256 {
				t.Errorf("SHA256 %s, info.json says %s", w.SHA256, info.Files[name].SHA256)
			}
			if w.Preprocess != PreprocessTorch {
				t.Errorf("Preprocess %q", w.Preprocess)
			}
			fp16 := strings.Contains(name, "fp16")
			var worst float64
			for i, l := range w.Layers {
				r := ref.Layers[i]
				if l.Out != r.Out || l.In != r.In {
					t.Fatalf("layer %d: %d -> %d, want %d -> %d", i, l.In, l.Out, r.In, r.Out)
				}
				for _, pair := range [][2][]float32{{l.Weight, r.Weight}, {l.Bias, r.Bias}} {
					got, want := pair[0], pair[1]
					if len(got) != len(want) {
						t.Fatalf("layer %d: %d values, want %d", i, len(got), len(want))
					}
					for j := range got {
						if !fp16 {
							if got[j] != want[j] {
								t.Fatalf("layer %d value %d: %v, want %v (float32 must be exact)", i, j, got[j], want[j])
							}
							continue
						}
						// Rounding float32 to float16 (ties to even) errs by
						// at most half a unit in the last place: 2^-11
						// relative for normal values, 2^-25 absolute in the
						// subnormal range below 2^-14.
						d := math.Abs(float64(got[j]) - float64(want[j]))
						tol := math.Max(math.Abs(float64(want[j]))*math.Ldexp(1, -11), math.Ldexp(1, -25))
						if d > tol {
							t.Fatalf("layer %d value %d: %v, want %v within %g", i, j, got[j], want[j], tol)
						}
						worst = math.Max(worst, d/math.Max(math.Abs(float64(want[j])), math.Ldexp(1, -14)))
					}
				}
			}
			if fp16 {
				t.Logf("largest relative float16 error: %.3g (bound 2^-11 = %.3g)", worst, math.Ldexp(1, -11))
			}
		})
	}
}

func TestConvertVGG16RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		zip, half bool
	}{{"legacy", false, false}, {"zip_f16", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			specs := vgg16Specs(narrowWidths, tc.half, 100)
			src := writeTemp(t, "vgg16-test.pth", (&pthFile{tensors: specs, zip: tc.zip}).bytes(t))
			dst := filepath.Join(t.TempDir(), "vgg16.safetensors")
			if err := convertVGG16(dst, src, testDivisor); err != nil {
				t.Fatal(err)
			}
			orig, err := ReadVGG16Weights(src, testDivisor)
			if err != nil {
				t.Fatal(err)
			}
			conv, err := ReadVGG16Weights(dst, testDivisor)
			if err != nil {
				t.Fatal(err)
			}
			checkLayersMatchSpecs(t, conv, specs)
			want := map[string]string{
				"format":        VGG16FormatName,
				"preprocess":    "torch",
				"source":        "vgg16-test.pth",
				"source_sha256": orig.SHA256,
			}
			for k, v := range want {
				if conv.Metadata[k] != v {
					t.Errorf("metadata %q = %q, want %q", k, conv.Metadata[k], v)
				}
			}
			if conv.SHA256 == orig.SHA256 || conv.SHA256 != mustSHA256(t, dst) {
				t.Errorf("converted SHA256 %s", conv.SHA256)
			}
			// The converted file holds the conv layers only.
			ts, _, err := readSafetensors(dst, nil)
			if err != nil || len(ts) != 26 {
				t.Errorf("converted file has %d tensors (%v), want 26", len(ts), err)
			}
		})
	}
}

func mustSHA256(t *testing.T, p string) string {
	t.Helper()
	s, err := fileSHA256(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadVGG16WeightsPreprocess(t *testing.T) {
	specs := vgg16Specs(narrowWidths, false, 0)
	w, err := ReadVGG16Weights(writeTemp(t, "w.pth", (&pthFile{tensors: specs}).bytes(t)), testDivisor)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w.Preprocess = PreprocessCaffe
	p := filepath.Join(dir, "caffe.safetensors")
	if err := w.WriteSafetensors(p); err != nil {
		t.Fatal(err)
	}
	got, err := ReadVGG16Weights(p, testDivisor)
	if err != nil || got.Preprocess != PreprocessCaffe {
		t.Fatalf("caffe file: Preprocess %v, error %v", got, err)
	}

	// Any other value is an error, not a silent default.
	ts := layersToTensors(w.Layers)
	p = filepath.Join(dir, "bogus.safetensors")
	if err := writeSafetensors(p, ts, map[string]string{"preprocess": "tf"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadVGG16Weights(p, testDivisor); err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), `"tf"`) {
		t.Errorf("preprocess tf: error %v", err)
	}
	w.Preprocess = "tf"
	if err := w.WriteSafetensors(filepath.Join(dir, "x.safetensors")); err == nil {
		t.Error("WriteSafetensors accepted preprocess tf")
	}
	// No metadata at all: torchvision/timm files mean "torch".
	p = filepath.Join(dir, "plain.safetensors")
	if err := writeSafetensors(p, ts, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := ReadVGG16Weights(p, testDivisor); err != nil || got.Preprocess != PreprocessTorch || got.Metadata != nil {
		t.Errorf("no metadata: %+v, %v", got, err)
	}
}

func layersToTensors(layers []ConvWeights) []tensor {
	var ts []tensor
	for i, l := range layers {
		n := strconv.Itoa(vgg16ConvIndices[i])
		ts = append(ts,
			tensor{name: "features." + n + ".weight", shape: []int{l.Out, l.In, 3, 3}, data: l.Weight},
			tensor{name: "features." + n + ".bias", shape: []int{l.Out}, data: l.Bias})
	}
	return ts
}

func TestReadVGG16WeightsBadChain(t *testing.T) {
	good := func() []tensor {
		var layers []ConvWeights
		in := 3
		for i, out := range narrowWidths {
			layers = append(layers, ConvWeights{Out: out, In: in, Weight: testValues(i, out*in*9), Bias: testValues(100+i, out)})
			in = out
		}
		return layersToTensors(layers)
	}
	find := func(ts []tensor, name string) int {
		for i, t := range ts {
			if t.name == name {
				return i
			}
		}
		panic(name)
	}
	cases := []struct {
		name   string
		mutate func([]tensor) []tensor
		want   string
	}{
		{"missing_bias", func(ts []tensor) []tensor {
			i := find(ts, "features.14.bias")
			return append(ts[:i], ts[i+1:]...)
		}, "features.14.bias"},
		{"missing_layer", func(ts []tensor) []tensor {
			i := find(ts, "features.28.weight")
			return append(ts[:i], ts[i+2:]...)
		}, "features.28.weight"},
		{"kernel_5x5", func(ts []tensor) []tensor {
			i := find(ts, "features.5.weight")
			ts[i].shape = []int{3, 2, 5, 5}
			ts[i].data = make([]float32, 3*2*25)
			return ts
		}, "features.5.weight"},
		{"first_in_1", func(ts []tensor) []tensor {
			ts[0].shape = []int{2, 1, 3, 3}
			ts[0].data = ts[0].data[:18]
			return ts
		}, "3 input channels"},
		{"chain_break", func(ts []tensor) []tensor {
			i := find(ts, "features.12.weight")
			ts[i].shape = []int{4, 3, 3, 3}
			ts[i].data = ts[i].data[:4*3*9]
			return ts
		}, "features.12.weight"},
		{"bias_length", func(ts []tensor) []tensor {
			i := find(ts, "features.7.bias")
			ts[i].shape = []int{2}
			ts[i].data = ts[i].data[:2]
			return ts
		}, "features.7.bias"},
		{"weight_rank", func(ts []tensor) []tensor {
			i := find(ts, "features.0.weight")
			ts[i].shape = []int{2, 27}
			return ts
		}, "features.0.weight"},
		{"zero_width", func(ts []tensor) []tensor {
			i := find(ts, "features.26.weight")
			ts[i].shape = []int{0, 5, 3, 3}
			ts[i].data = nil
			return ts
		}, "features.26.weight"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "w.safetensors")
			if err := writeSafetensors(p, tc.mutate(good()), nil); err != nil {
				t.Fatal(err)
			}
			_, err := ReadVGG16Weights(p, testDivisor)
			if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrFormat naming %s", err, tc.want)
			}
		})
	}
	// The unmodified chain loads, so the failures above are the mutations'.
	p := filepath.Join(t.TempDir(), "w.safetensors")
	if err := writeSafetensors(p, good(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadVGG16Weights(p, testDivisor); err != nil {
		t.Fatal(err)
	}
}

func TestReadVGG16WeightsUnknownFormat(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":  nil,
		"text":   []byte("hello, this is not a weight file"),
		"gzip":   {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3},
		"pickle": {0x80, 9, '.'},
	} {
		p := writeTemp(t, name+".pth", data)
		if _, err := ReadVGG16Weights(p, testDivisor); err == nil || !errors.Is(err, ErrFormat) {
			t.Errorf("%s: error %v, want ErrFormat", name, err)
		}
	}
	if _, err := ReadVGG16Weights(filepath.Join(t.TempDir(), "missing.pth"), testDivisor); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: error %v, want os.ErrNotExist", err)
	}
}

func TestWriteSafetensorsInvalidWeights(t *testing.T) {
	dir := t.TempDir()
	w := &VGG16Weights{Layers: make([]ConvWeights, 12)}
	if err := w.WriteSafetensors(filepath.Join(dir, "a")); err == nil {
		t.Error("12 layers accepted")
	}
	w.Layers = make([]ConvWeights, 13)
	if err := w.WriteSafetensors(filepath.Join(dir, "b")); err == nil {
		t.Error("empty layers accepted")
	}
}

func BenchmarkReadVGG16Weights(b *testing.B) {
	// A chain a quarter of VGG16's widths (about 3.7 MB of float32).
	specs := vgg16Specs(vgg16Widths(4), false, 0)
	dir := b.TempDir()
	legacy := filepath.Join(dir, "w.pth")
	if err := os.WriteFile(legacy, (&pthFile{tensors: specs}).bytes(b), 0o644); err != nil {
		b.Fatal(err)
	}
	zipped := filepath.Join(dir, "w_zip.pth")
	if err := os.WriteFile(zipped, (&pthFile{tensors: specs, zip: true}).bytes(b), 0o644); err != nil {
		b.Fatal(err)
	}
	st := filepath.Join(dir, "w.safetensors")
	if err := convertVGG16(st, legacy, 4); err != nil {
		b.Fatal(err)
	}
	for _, f := range []struct{ name, path string }{{"safetensors", st}, {"pth_legacy", legacy}, {"pth_zip", zipped}} {
		b.Run(f.name, func(b *testing.B) {
			fi, _ := os.Stat(f.path)
			b.SetBytes(fi.Size())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ReadVGG16Weights(f.path, 4); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Fetch torchvision's VGG16 weights once into the user's cache directory,
// convert them, and read the converted file; later runs use the cache
// without any network access.
func ExampleDownloadVGG16() {
	path, err := DownloadVGG16(context.Background(), &DownloadOptions{
		Progress: func(p Progress) {
			fmt.Printf("\r%s: %d / %d bytes", p.Stage, p.Done, p.Total)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	w, err := ReadVGG16Weights(path, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(w.Layers), w.Preprocess, w.Metadata["source"])
}

// loadVGG16 is LoadVGG16 for the network with widths divided by divisor.
func loadVGG16(path string, divisor int) (*VGG16, error) {
	w, err := ReadVGG16Weights(path, divisor)
	if err != nil {
		return nil, err
	}
	return NewVGG16(w, nil)
}

// TestReadVGG16WeightsWidths: a file loads only with the width divisor of
// the network it holds, and a file of any other shape, such as one whose
// first layer is 8,192 channels wide (a 1.2 MB file that would cost
// gigabytes of memory per image), is refused naming the tensor and its
// shape.
func TestReadVGG16WeightsWidths(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []int{16, 32, 64} {
		p := filepath.Join(dir, fmt.Sprintf("div%d.safetensors", d))
		require.NoError(t, GenerateVGG16Weights(uint64(d), d).WriteSafetensors(p))
		w, err := ReadVGG16Weights(p, d)
		require.NoError(t, err)
		assert.Equal(t, vgg16Widths(d)[12], w.Layers[12].Out)
		for _, other := range []int{1, 2, 4, 8, 16, 32, 64} {
			if other == d {
				continue
			}
			_, err := ReadVGG16Weights(p, other)
			require.ErrorIs(t, err, ErrFormat, "file of divisor %d read with %d", d, other)
			assert.Contains(t, err.Error(), fmt.Sprintf("features.0.weight has shape [%d 3 3 3]", 64/d))
		}
	}

	// An 8,192-wide first layer followed by the layers of divisor 64.
	wide := GenerateVGG16Weights(1, 64)
	wide.Layers[0] = ConvWeights{Out: 8192, In: 3, Weight: make([]float32, 8192*27), Bias: make([]float32, 8192)}
	wide.Layers[1] = ConvWeights{Out: 1, In: 8192, Weight: make([]float32, 8192*9), Bias: make([]float32, 1)}
	p := filepath.Join(dir, "wide.safetensors")
	require.NoError(t, wide.WriteSafetensors(p))
	for _, d := range []int{1, 2, 4, 8, 16, 32, 64} {
		_, err := ReadVGG16Weights(p, d)
		var fe *FormatError
		require.ErrorAs(t, err, &fe, "divisor %d", d)
		assert.Equal(t, p, fe.Path)
		assert.Contains(t, err.Error(), "features.0.weight has shape [8192 3 3 3]")
	}

	// Divisors other than the powers of two up to 64 are the caller's
	// mistake, not the file's.
	for _, d := range []int{0, -8, 3, 12, 128} {
		_, err := ReadVGG16Weights(p, d)
		require.Error(t, err, "divisor %d", d)
		assert.NotErrorIs(t, err, ErrFormat)
		assert.Contains(t, err.Error(), "divisor")
	}
}

// allocated returns the bytes the process allocates while f runs
// (runtime.MemStats.TotalAlloc, an upper bound of the peak).
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// readBudget is the most a weight reader may allocate: twice the bytes of
// the tensors it returns (kept) plus 64 MB for parsing, whatever the file.
func readBudget(kept int64) uint64 { return 2*uint64(kept) + 64<<20 }

// tensorsBytes returns the bytes of the values of ts.
func tensorsBytes(ts map[string]tensor) int64 {
	var n int64
	for _, t := range ts {
		n += 4 * int64(len(t.data))
	}
	return n
}

// layersBytes returns the bytes of the weights and biases of w (0 for nil).
func layersBytes(w *VGG16Weights) int64 {
	var n int64
	if w != nil {
		for _, l := range w.Layers {
			n += 4 * int64(len(l.Weight)+len(l.Bias))
		}
	}
	return n
}

// sparseSafetensors writes a safetensors file declaring features.0.weight
// as one F32 tensor of the given bytes, all zero and sparse on disk.
func sparseSafetensors(t *testing.T, bytes int64) string {
	hdr := fmt.Sprintf(`{"features.0.weight":{"dtype":"F32","shape":[%d],"data_offsets":[0,%d]}}`, bytes/4, bytes)
	p := writeTemp(t, "sparse.safetensors", rawSafetensors(hdr, nil))
	require.NoError(t, os.Truncate(p, int64(8+len(hdr))+bytes))
	return p
}

// TestReadVGG16WeightsBombs: files that declare far more data than VGG16
// has are refused before any of it is read, within 64 MB of allocations:
// a 66 KB zip checkpoint whose 26 tensors all view one deflated 68 MB
// storage (3.5 GB if each tensor is inflated and converted), a legacy
// checkpoint doing the same with an 8 MB storage (26 x 16 MB), and a
// sparse safetensors file declaring one 32 GiB tensor (an unrecoverable
// out-of-memory crash if allocated).
func TestReadVGG16WeightsBombs(t *testing.T) {
	zipBomb := vgg16Bomb(t, 34<<20, true)
	require.Less(t, len(zipBomb), 80<<10, "the zip bomb should be small")
	files := map[string]string{
		"zip_shared_storage":    writeTemp(t, "bomb.pth", zipBomb),
		"legacy_shared_storage": writeTemp(t, "bomb_legacy.pth", vgg16Bomb(t, 4<<20, false)),
		"sparse_safetensors":    sparseSafetensors(t, 32<<30),
	}
	for name, p := range files {
		t.Run(name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = ReadVGG16Weights(p, 1) })
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, p, fe.Path)
			assert.LessOrEqual(t, n, readBudget(0), "allocated %d bytes", n)
		})
	}
	// Without a shape to check, the readers' own byte budget refuses the
	// bomb as well, still before reading it.
	var err error
	n := allocated(func() { _, err = readPTHZip(bytes.NewReader(zipBomb), int64(len(zipBomb)), "bomb.pth", nil) })
	require.ErrorIs(t, err, ErrFormat)
	assert.Contains(t, err.Error(), "more than")
	assert.LessOrEqual(t, n, readBudget(0))
}

// checkReadCost fails t unless err is nil or a *FormatError, and a read
// that returned kept bytes of tensors (0 on error) allocated at most
// readBudget(kept).
func checkReadCost(t *testing.T, what string, err error, allocated uint64, kept int64) {
	t.Helper()
	if err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("%s: error %v is not a *FormatError", what, err)
		}
		kept = 0
	}
	if allocated > readBudget(kept) {
		t.Fatalf("%s: allocated %d bytes to read %d bytes of tensors (error %v); the budget is %d", what, allocated, kept, err, readBudget(kept))
	}
}

// TestReadVGG16WeightsValues: a weight or bias that is not finite or beyond
// ±1e4 is refused, naming the file, the tensor and the element, in
// safetensors and PyTorch files alike; ±1e4 itself loads. WriteSafetensors
// refuses to write such values.
func TestReadVGG16WeightsValues(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		name   string
		tensor int // index in layersToTensors order
		elem   int
		v      float32
		want   string
	}{
		{"nan_weight", 0, 5, nan, "not a finite number"},
		{"inf_bias", 25, 0, inf, "not a finite number"},
		{"minus_inf_weight", 14, 3, -inf, "not a finite number"},
		{"huge_weight", 8, 1, 2e4, "beyond the bound"},
		{"huge_negative_bias", 3, 1, -1e7, "beyond the bound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := layersToTensors(GenerateVGG16Weights(3, testDivisor).Layers)
			ts[tc.tensor].data[tc.elem] = tc.v
			p := filepath.Join(t.TempDir(), "w.safetensors")
			require.NoError(t, writeSafetensors(p, ts, nil))
			_, err := ReadVGG16Weights(p, testDivisor)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, p, fe.Path)
			assert.Contains(t, err.Error(), fmt.Sprintf("tensor %s: element %d of", ts[tc.tensor].name, tc.elem))
			assert.Contains(t, err.Error(), tc.want)

			w := GenerateVGG16Weights(3, testDivisor)
			w.Layers[tc.tensor/2].Weight[0] = tc.v
			assert.Error(t, w.WriteSafetensors(filepath.Join(t.TempDir(), "x.safetensors")))
		})
	}
	// Float16 infinity in a PyTorch checkpoint.
	for _, zipped := range []bool{false, true} {
		specs := vgg16Specs(narrowWidths, true, 0)
		specs[6].data = slices.Clone(specs[6].data)
		specs[6].data[2] = inf
		f := &pthFile{tensors: specs, zip: zipped}
		b := f.bytes(t)
		p := writeTemp(t, "w.pth", b)
		_, err := ReadVGG16Weights(p, testDivisor)
		require.ErrorIs(t, err, ErrFormat)
		assert.Contains(t, err.Error(), "tensor "+specs[6].name+": element 2 of")
	}
	// The bound itself is accepted.
	ts := layersToTensors(GenerateVGG16Weights(3, testDivisor).Layers)
	ts[0].data[0], ts[1].data[0] = 1e4, -1e4
	p := filepath.Join(t.TempDir(), "w.safetensors")
	require.NoError(t, writeSafetensors(p, ts, nil))
	w, err := ReadVGG16Weights(p, testDivisor)
	require.NoError(t, err)
	assert.Equal(t, float32(1e4), w.Layers[0].Weight[0])
}
