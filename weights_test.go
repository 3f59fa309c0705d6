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

func TestReadWeightsGolden(t *testing.T) {
	ref, err := ReadWeights(sharedFile(t, "vgg16_narrow_tv.safetensors"), VGG16, 8)
	require.NoError(t, err)
	wantWidths := []int{8, 8, 16, 16, 32, 32, 32, 64, 64, 64, 64, 64, 64}
	in := 3
	require.Len(t, ref.layers, 13)
	for i, l := range ref.layers {
		if l.Out != wantWidths[i] || l.In != in || len(l.Weight) != l.Out*l.In*9 || len(l.Bias) != l.Out {
			t.Fatalf("layer %d: %d -> %d with %d weights, %d biases", i, l.In, l.Out, len(l.Weight), len(l.Bias))
		}
		in = l.Out
	}
	assert.Equal(t, PreprocessTorch, ref.Preprocess)
	assert.NotEmpty(t, ref.Metadata["note"], "metadata %v", ref.Metadata)
	assert.Equal(t, VGG16, ref.Arch)
	assert.Equal(t, 8, ref.Divisor)
	assert.Zero(t, ref.Seed)

	var info struct {
		Files map[string]struct {
			SHA256 string `json:"sha256"`
		} `json:"files"`
	}
	raw, err := os.ReadFile(sharedFile(t, "pth/info.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, &info))
	for _, name := range []string{"vgg16_narrow_legacy.pth", "vgg16_narrow_zip.pth", "vgg16_narrow_fp16_zip.pth"} {
		t.Run(name, func(t *testing.T) {
			// The architecture is told from the tensor names.
			w, err := ReadWeights(sharedFile(t, "pth/"+name), "", 8)
			require.NoError(t, err)
			assert.Equal(t, info.Files[name].SHA256, w.SHA256, "SHA256 against info.json")
			assert.Equal(t, PreprocessTorch, w.Preprocess)
			assert.Equal(t, VGG16, w.Arch)
			fp16 := strings.Contains(name, "fp16")
			var worst float64
			require.Len(t, w.layers, len(ref.layers))
			for i, l := range w.layers {
				r := ref.layers[i]
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

// TestWriteSafetensorsRoundTrip converts PyTorch checkpoints (legacy
// float32, zip float16) to safetensors with ReadWeights and
// WriteSafetensors, and reads the result back.
func TestWriteSafetensorsRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name      string
		zip, half bool
	}{{"legacy", false, false}, {"zip_f16", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			specs := vgg16Specs(testDivisor, tc.half, 100)
			src := writeTemp(t, "vgg16-test.pth", (&pthFile{tensors: specs, zip: tc.zip}).bytes(t))
			dst := filepath.Join(t.TempDir(), "vgg16.safetensors")
			orig, err := ReadWeights(src, VGG16, testDivisor)
			require.NoError(t, err)
			require.NoError(t, orig.WriteSafetensors(dst))
			conv, err := ReadWeights(dst, "", testDivisor)
			require.NoError(t, err)
			checkLayersMatchSpecs(t, conv, specs)
			want := map[string]string{
				"arch":          "vgg16",
				"format":        "style-vgg16-conv",
				"preprocess":    "torch",
				"source":        "vgg16-test.pth",
				"source_sha256": orig.SHA256,
			}
			assert.Equal(t, want, conv.Metadata)
			assert.NotEqual(t, orig.SHA256, conv.SHA256, "converted SHA256")
			assert.Equal(t, mustSHA256(t, dst), conv.SHA256, "converted SHA256")
			// The converted file holds the conv layers only.
			ts, _, err := readSafetensors(dst, nil)
			require.NoError(t, err)
			assert.Len(t, ts, 26, "tensors of the converted file")
		})
	}
}

func mustSHA256(t *testing.T, p string) string {
	t.Helper()
	s, err := fileSHA256(p)
	require.NoError(t, err)
	return s
}

func TestReadWeightsPreprocess(t *testing.T) {
	specs := vgg16Specs(testDivisor, false, 0)
	w, err := ReadWeights(writeTemp(t, "w.pth", (&pthFile{tensors: specs}).bytes(t)), VGG16, testDivisor)
	require.NoError(t, err)
	dir := t.TempDir()
	w.Preprocess = PreprocessCaffe
	p := filepath.Join(dir, "caffe.safetensors")
	require.NoError(t, w.WriteSafetensors(p))
	got, err := ReadWeights(p, VGG16, testDivisor)
	require.NoError(t, err, "caffe file")
	assert.Equal(t, PreprocessCaffe, got.Preprocess, "caffe file")

	// Any other value is an error, not a silent default.
	ts := vgg16Spec.tensors(w.layers)
	p = filepath.Join(dir, "bogus.safetensors")
	require.NoError(t, writeSafetensors(p, ts, map[string]string{"preprocess": "tf"}))
	_, err = ReadWeights(p, VGG16, testDivisor)
	require.ErrorIs(t, err, ErrFormat, "preprocess tf")
	assert.ErrorContains(t, err, `"tf"`, "preprocess tf")
	w.Preprocess = "tf"
	assert.Error(t, w.WriteSafetensors(filepath.Join(dir, "x.safetensors")), "WriteSafetensors accepted preprocess tf")
	// No metadata at all: torchvision/timm files mean "torch".
	p = filepath.Join(dir, "plain.safetensors")
	require.NoError(t, writeSafetensors(p, ts, nil))
	got, err = ReadWeights(p, VGG16, testDivisor)
	require.NoError(t, err, "no metadata")
	assert.Equal(t, PreprocessTorch, got.Preprocess, "no metadata")
	assert.Nil(t, got.Metadata, "no metadata")
}

// TestReadWeightsArch: the architecture comes from the metadata "arch" if
// the file has one, otherwise from the tensor names; a file of another or
// an unknown architecture is a *FormatError, an unknown architecture asked
// for is the caller's error.
func TestReadWeightsArch(t *testing.T) {
	dir := t.TempDir()
	ts := vgg16Spec.tensors(testWeights(t, 2, testDivisor).layers)
	write := func(name string, ts []tensor, meta map[string]string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, writeSafetensors(p, ts, meta))
		return p
	}
	for _, arch := range []Arch{"", VGG16} {
		for _, p := range []string{write("meta.safetensors", ts, map[string]string{"arch": "vgg16"}), write("names.safetensors", ts, nil)} {
			w, err := ReadWeights(p, arch, testDivisor)
			require.NoError(t, err, "%s read as %q", p, arch)
			assert.Equal(t, VGG16, w.Arch)
		}
	}
	other := write("other.safetensors", ts, map[string]string{"arch": "resnet18"})
	for _, arch := range []Arch{"", VGG16} {
		_, err := ReadWeights(other, arch, testDivisor)
		require.ErrorIs(t, err, ErrFormat)
		assert.ErrorContains(t, err, `metadata arch "resnet18"`)
	}
	unknown := write("unknown.safetensors", []tensor{{name: "stem.conv.weight", shape: []int{1}, data: []float32{1}}}, nil)
	_, err := ReadWeights(unknown, "", 1)
	require.ErrorIs(t, err, ErrFormat)
	assert.ErrorContains(t, err, "no tensor of a known architecture")
	// conv1.weight is ResNet50's first tensor: the file is taken for one.
	resnetLike := write("resnet.safetensors", []tensor{{name: "conv1.weight", shape: []int{1}, data: []float32{1}}}, nil)
	_, err = ReadWeights(resnetLike, "", 1)
	require.ErrorIs(t, err, ErrFormat)
	assert.ErrorContains(t, err, "tensor conv1.weight has shape [1], want [64 3 7 7]")
	_, err = ReadWeights(unknown, VGG16, 1)
	require.ErrorIs(t, err, ErrFormat)
	assert.ErrorContains(t, err, "features.0.weight (VGG16 conv layer 1) is missing")

	_, err = ReadWeights(unknown, "vgg19", 1)
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrFormat)
	assert.ErrorContains(t, err, `unknown architecture "vgg19"`)
}

func TestReadWeightsBadChain(t *testing.T) {
	good := func() []tensor {
		var layers []ConvWeights
		for i := range vgg16Spec.layers {
			in, out := vgg16Spec.layerShape(i, testDivisor)
			layers = append(layers, ConvWeights{Out: out, In: in, Weight: testValues(i, out*in*9), Bias: testValues(100+i, out)})
		}
		return vgg16Spec.tensors(layers)
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
			require.NoError(t, writeSafetensors(p, tc.mutate(good()), nil))
			_, err := ReadWeights(p, VGG16, testDivisor)
			require.ErrorIs(t, err, ErrFormat)
			assert.ErrorContains(t, err, tc.want)
		})
	}
	// The unmodified chain loads, so the failures above are the mutations'.
	p := filepath.Join(t.TempDir(), "w.safetensors")
	require.NoError(t, writeSafetensors(p, good(), nil))
	_, err := ReadWeights(p, VGG16, testDivisor)
	require.NoError(t, err)
}

func TestReadWeightsUnknownFormat(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":  nil,
		"text":   []byte("hello, this is not a weight file"),
		"gzip":   {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3},
		"pickle": {0x80, 9, '.'},
	} {
		p := writeTemp(t, name+".pth", data)
		_, err := ReadWeights(p, VGG16, testDivisor)
		assert.ErrorIs(t, err, ErrFormat, name)
	}
	_, err := ReadWeights(filepath.Join(t.TempDir(), "missing.pth"), VGG16, testDivisor)
	assert.ErrorIs(t, err, os.ErrNotExist, "missing file")
}

func TestWriteSafetensorsInvalidWeights(t *testing.T) {
	dir := t.TempDir()
	good := func() *Weights { return testWeights(t, 4, testDivisor) }
	for name, mutate := range map[string]func(w *Weights){
		"12 layers":            func(w *Weights) { w.layers = w.layers[:12] },
		"empty layers":         func(w *Weights) { w.layers = make([]ConvWeights, 13) },
		"other divisor":        func(w *Weights) { w.Divisor = 16 },
		"bad divisor":          func(w *Weights) { w.Divisor = 5 },
		"unknown architecture": func(w *Weights) { w.Arch = "vgg19" },
		"no architecture":      func(w *Weights) { w.Arch = "" },
	} {
		w := good()
		mutate(w)
		p := filepath.Join(dir, "w.safetensors")
		assert.Error(t, w.WriteSafetensors(p), name)
		assert.NoFileExists(t, p, name)
	}
	assert.NoError(t, good().WriteSafetensors(filepath.Join(dir, "w.safetensors")))
}

func BenchmarkReadWeights(b *testing.B) {
	// A chain a quarter of VGG16's widths (about 3.7 MB of float32).
	specs := vgg16Specs(4, false, 0)
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
	w, err := ReadWeights(legacy, VGG16, 4)
	require.NoError(b, err)
	require.NoError(b, w.WriteSafetensors(st))
	for _, f := range []struct{ name, path string }{{"safetensors", st}, {"pth_legacy", legacy}, {"pth_zip", zipped}} {
		b.Run(f.name, func(b *testing.B) {
			fi, _ := os.Stat(f.path)
			b.SetBytes(fi.Size())
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ReadWeights(f.path, VGG16, 4); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Fetch torchvision's VGG16 weights once into the user's cache directory,
// convert them, and load the converted file; later runs use the cache
// without any network access.
func ExampleDownloadWeights() {
	path, err := DownloadWeights(context.Background(), VGG16, &DownloadOptions{
		Progress: func(p Progress) {
			fmt.Printf("\r%s: %d / %d bytes", p.Stage, p.Done, p.Total)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	net, err := LoadNetwork(path, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(net.Backbone().Arch, net.Backbone().Preprocess, net.FeatureLen())
}

// TestReadWeightsWidths: a file loads only with the width divisor of the
// network it holds, and a file of any other shape, such as one whose
// first layer is 8,192 channels wide (a 1.2 MB file that would cost
// gigabytes of memory per image), is refused naming the tensor and its
// shape.
func TestReadWeightsWidths(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []int{16, 32, 64} {
		p := filepath.Join(dir, fmt.Sprintf("div%d.safetensors", d))
		require.NoError(t, testWeights(t, uint64(d), d).WriteSafetensors(p))
		w, err := ReadWeights(p, VGG16, d)
		require.NoError(t, err)
		assert.Equal(t, 512/d, w.layers[12].Out)
		assert.Equal(t, d, w.Divisor)
		for _, other := range []int{1, 2, 4, 8, 16, 32, 64} {
			if other == d {
				continue
			}
			_, err := ReadWeights(p, VGG16, other)
			require.ErrorIs(t, err, ErrFormat, "file of divisor %d read with %d", d, other)
			assert.Contains(t, err.Error(), fmt.Sprintf("features.0.weight has shape [%d 3 3 3]", 64/d))
		}
	}

	// An 8,192-wide first layer followed by the layers of divisor 64.
	wide := testWeights(t, 1, 64).layers
	wide[0] = ConvWeights{Out: 8192, In: 3, Weight: make([]float32, 8192*27), Bias: make([]float32, 8192)}
	wide[1] = ConvWeights{Out: 1, In: 8192, Weight: make([]float32, 8192*9), Bias: make([]float32, 1)}
	p := filepath.Join(dir, "wide.safetensors")
	require.NoError(t, writeSafetensors(p, vgg16Spec.tensors(wide), map[string]string{"arch": "vgg16"}))
	for _, d := range []int{1, 2, 4, 8, 16, 32, 64} {
		_, err := ReadWeights(p, VGG16, d)
		var fe *FormatError
		require.ErrorAs(t, err, &fe, "divisor %d", d)
		assert.Equal(t, p, fe.Path)
		assert.Contains(t, err.Error(), "features.0.weight has shape [8192 3 3 3]")
	}

	// Divisors other than the powers of two up to 64 are the caller's
	// mistake, not the file's.
	for _, d := range []int{0, -8, 3, 12, 128} {
		for _, arch := range []Arch{VGG16, ""} {
			_, err := ReadWeights(p, arch, d)
			require.Error(t, err, "divisor %d", d)
			assert.NotErrorIs(t, err, ErrFormat)
			assert.Contains(t, err.Error(), "divisor")
		}
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
func layersBytes(w *Weights) int64 {
	var n int64
	if w != nil {
		for _, l := range w.layers {
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

// TestReadWeightsBombs: files that declare far more data than VGG16
// has are refused before any of it is read, within 64 MB of allocations:
// a 66 KB zip checkpoint whose 26 tensors all view one deflated 68 MB
// storage (3.5 GB if each tensor is inflated and converted), a legacy
// checkpoint doing the same with an 8 MB storage (26 x 16 MB), and a
// sparse safetensors file declaring one 32 GiB tensor (an unrecoverable
// out-of-memory crash if allocated).
func TestReadWeightsBombs(t *testing.T) {
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
			n := allocated(func() { _, err = ReadWeights(p, VGG16, 1) })
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

// TestReadWeightsValues: a weight or bias that is not finite or beyond
// ±1e4 is refused, naming the file, the tensor and the element, in
// safetensors and PyTorch files alike; ±1e4 itself loads. WriteSafetensors
// refuses to write such values.
func TestReadWeightsValues(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, tc := range []struct {
		name   string
		tensor int // index in vgg16Spec.tensors order
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
			ts := vgg16Spec.tensors(testWeights(t, 3, testDivisor).layers)
			ts[tc.tensor].data[tc.elem] = tc.v
			p := filepath.Join(t.TempDir(), "w.safetensors")
			require.NoError(t, writeSafetensors(p, ts, nil))
			_, err := ReadWeights(p, VGG16, testDivisor)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, p, fe.Path)
			assert.Contains(t, err.Error(), fmt.Sprintf("tensor %s: element %d of", ts[tc.tensor].name, tc.elem))
			assert.Contains(t, err.Error(), tc.want)

			w := testWeights(t, 3, testDivisor)
			w.layers[tc.tensor/2].Weight[0] = tc.v
			assert.Error(t, w.WriteSafetensors(filepath.Join(t.TempDir(), "x.safetensors")))
		})
	}
	// Float16 infinity in a PyTorch checkpoint.
	for _, zipped := range []bool{false, true} {
		specs := vgg16Specs(testDivisor, true, 0)
		specs[6].data = slices.Clone(specs[6].data)
		specs[6].data[2] = inf
		f := &pthFile{tensors: specs, zip: zipped}
		b := f.bytes(t)
		p := writeTemp(t, "w.pth", b)
		_, err := ReadWeights(p, VGG16, testDivisor)
		require.ErrorIs(t, err, ErrFormat)
		assert.Contains(t, err.Error(), "tensor "+specs[6].name+": element 2 of")
	}
	// The bound itself is accepted.
	ts := vgg16Spec.tensors(testWeights(t, 3, testDivisor).layers)
	ts[0].data[0], ts[1].data[0] = 1e4, -1e4
	p := filepath.Join(t.TempDir(), "w.safetensors")
	require.NoError(t, writeSafetensors(p, ts, nil))
	w, err := ReadWeights(p, VGG16, testDivisor)
	require.NoError(t, err)
	assert.Equal(t, float32(1e4), w.layers[0].Weight[0])
}
