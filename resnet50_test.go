package style

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style/internal/resnet"
)

// resnet50TestDivisor makes the ResNet-50 of the reader tests small: stem
// 4, last block 128 channels.
const resnet50TestDivisor = 16

// resnet50PTHSpecs returns the tensors of a torchvision ResNet-50 state
// dict holding the generated network of resnet.Generate(seed, divisor),
// its batch norms unfolded, in torchvision's order, with what such files
// hold beyond the layers: a num_batches_tracked counter per batch norm if
// counters (PyTorch 0.4.1 and later write them) and the classifier fc.
func resnet50PTHSpecs(seed uint64, divisor int, counters bool) []pthSpec {
	var specs []pthSpec
	for _, c := range resnet.Generate(seed, divisor) {
		specs = append(specs, pthSpec{name: c.Name + ".weight", shape: []int{c.Out, c.In, c.Kernel, c.Kernel}, data: c.Weight})
		for i, v := range [][]float32{c.Norm.Gamma, c.Norm.Beta, c.Norm.Mean, c.Norm.Var} {
			specs = append(specs, pthSpec{name: c.BN + normSuffixes[i], shape: []int{c.Out}, data: v})
		}
		if counters {
			specs = append(specs, pthSpec{name: c.BN + ".num_batches_tracked", shape: []int{}, data: []float32{12345}, long: true})
		}
	}
	feats := 2048 / divisor
	return append(specs,
		pthSpec{name: "fc.weight", shape: []int{10, feats}, data: testValues(1, 10*feats)},
		pthSpec{name: "fc.bias", shape: []int{10}, data: testValues(2, 10)})
}

// resnet50Tensors is resnet50PTHSpecs as tensors for writeSafetensors,
// without the counters.
func resnet50Tensors(seed uint64, divisor int) []tensor {
	var ts []tensor
	for _, s := range resnet50PTHSpecs(seed, divisor, false) {
		ts = append(ts, tensor{name: s.name, shape: s.shape, data: s.data})
	}
	return ts
}

// requireResNet50Layers checks that w holds exactly the layers of
// GenerateWeights(ResNet50, seed, divisor): folding at read time and at
// generation are the same computation, so bit for bit.
func requireResNet50Layers(t *testing.T, w *Weights, seed uint64, divisor int) {
	t.Helper()
	want, err := GenerateWeights(ResNet50, seed, divisor)
	require.NoError(t, err)
	assert.Equal(t, ResNet50, w.Arch)
	assert.Equal(t, divisor, w.Divisor)
	require.Len(t, w.layers, resnet.NumLayers50)
	for i, l := range w.layers {
		r := want.layers[i]
		require.Equal(t, [2]int{r.Out, r.In}, [2]int{l.Out, l.In}, "layer %d", i)
		require.True(t, equalFloats(l.Weight, r.Weight), "layer %d (%s): weights differ", i, resnet50Spec.layers[i].weight)
		require.True(t, equalFloats(l.Bias, r.Bias), "layer %d (%s): biases differ", i, resnet50Spec.layers[i].bias)
	}
}

// TestResNet50MatchesORT runs the generated ResNet-50 through the public
// API (GenerateWeights folds the batch norms, NewNetwork builds the
// network) on the two generated images of internal/resnet's ONNX Runtime
// reference, and compares the features with ONNX Runtime's, computed on
// an ONNX model with explicit batch norms
// (internal/resnet/testdata/ort/README.md says how to regenerate them;
// testdata/resnet50 holds copies). The narrow network always runs; the
// full-size one without -short.
func TestResNet50MatchesORT(t *testing.T) {
	for _, d := range []int{8, 1} {
		t.Run(fmt.Sprintf("divisor%d", d), func(t *testing.T) {
			if d == 1 && testing.Short() {
				t.Skip("full-size ResNet-50 skipped in -short mode; the narrow one ran")
			}
			w, err := GenerateWeights(ResNet50, 0, d)
			require.NoError(t, err)
			m, err := NewNetwork(w, nil)
			require.NoError(t, err)
			require.Equal(t, 2048/d, m.FeatureLen())
			want := readF32(t, filepath.Join("testdata", "resnet50", fmt.Sprintf("generated_d%d.ort.f32", d)))
			require.Len(t, want, 2*m.FeatureLen())
			x := resnet.GenerateInput(0, 2, InputSize, InputSize)
			got := m.ForwardTo(make([]float32, len(want)), x, 2)
			fl := m.FeatureLen()
			for i := range 2 {
				// ONNX Runtime and the engine sum in different orders
				// (and Winograd transforms on this side): the task's
				// bound on the relative L2 error is 1e-4.
				e := relL2(got[i*fl:(i+1)*fl], want[i*fl:(i+1)*fl])
				assert.Less(t, e, 1e-4, "image %d: relative L2 error", i)
				t.Logf("image %d: relative L2 error %.2g", i, e)
			}
		})
	}
}

// TestResNet50ReadTorchvision reads torchvision-layout files of every
// format (batch norms folded when read, counters and classifier skipped)
// and the folded files WriteSafetensors writes back.
func TestResNet50ReadTorchvision(t *testing.T) {
	const seed, d = 7, resnet50TestDivisor
	dir := t.TempDir()
	st := filepath.Join(dir, "resnet50.safetensors")
	require.NoError(t, writeSafetensors(st, resnet50Tensors(seed, d), nil))
	files := map[string]string{
		"safetensors": st,
		"pth_zip":     writeTemp(t, "zip.pth", (&pthFile{tensors: resnet50PTHSpecs(seed, d, true), zip: true}).bytes(t)),
		"pth_deflate": writeTemp(t, "deflate.pth", (&pthFile{tensors: resnet50PTHSpecs(seed, d, true), zip: true, deflate: true}).bytes(t)),
		"pth_legacy":  writeTemp(t, "legacy.pth", (&pthFile{tensors: resnet50PTHSpecs(seed, d, true)}).bytes(t)),
	}
	for name, p := range files {
		t.Run(name, func(t *testing.T) {
			for _, arch := range []Arch{"", ResNet50} {
				var w *Weights
				var err error
				got := allocated(func() { w, err = ReadWeights(p, arch, d) })
				require.NoError(t, err, "arch %q", arch)
				var kept int64
				for _, l := range w.layers {
					kept += 4 * int64(len(l.Weight)+len(l.Bias))
				}
				checkReadCost(t, name, err, got, kept)
				requireResNet50Layers(t, w, seed, d)
				assert.Equal(t, PreprocessTorch, w.Preprocess)
				assert.Equal(t, mustSHA256(t, p), w.SHA256)
				assert.Zero(t, w.Seed)
			}
			_, err := ReadWeights(p, VGG16, d)
			require.ErrorIs(t, err, ErrFormat)
			assert.ErrorContains(t, err, "features.0.weight (VGG16 conv layer 1) is missing")
			_, err = ReadWeights(p, "", 8)
			require.ErrorIs(t, err, ErrFormat)
			assert.ErrorContains(t, err, "tensor conv1.weight has shape [4 3 7 7], want [8 3 7 7] (conv layer 1; widths ResNet-50's divided by 8)")
		})
	}

	w, err := ReadWeights(files["pth_zip"], "", d)
	require.NoError(t, err)
	out := filepath.Join(dir, "folded.safetensors")
	require.NoError(t, w.WriteSafetensors(out))
	back, err := ReadWeights(out, "", d)
	require.NoError(t, err)
	requireResNet50Layers(t, back, seed, d)
	assert.Equal(t, "resnet50", back.Metadata["arch"])
	assert.Equal(t, "style-resnet50-conv", back.Metadata["format"])
	assert.Equal(t, "zip.pth", back.Metadata["source"])
	h, err := parseSafetensorsHeaderFile(t, out)
	require.NoError(t, err)
	var names []string
	for _, e := range h.entries {
		names = append(names, e.name)
	}
	assert.Contains(t, names, "layer2.0.downsample.0.bias", "folded files hold biases")
	assert.NotContains(t, names, "layer2.0.downsample.1.running_var", "folded files hold no batch norms")
	assert.Len(t, names, 2*resnet.NumLayers50)
}

// parseSafetensorsHeaderFile parses the header of the safetensors file p.
func parseSafetensorsHeaderFile(t *testing.T, p string) (*stHeader, error) {
	t.Helper()
	f, size, err := openSized(p)
	require.NoError(t, err)
	defer f.Close()
	return parseSafetensorsHeader(f, size, p)
}

// TestResNet50ReadHostile checks that broken torchvision-layout files are
// refused with a *FormatError naming the file and the tensor.
func TestResNet50ReadHostile(t *testing.T) {
	const d = resnet50TestDivisor
	find := func(specs []pthSpec, name string) *pthSpec {
		i := slices.IndexFunc(specs, func(s pthSpec) bool { return s.name == name })
		require.GreaterOrEqual(t, i, 0, name)
		specs[i].data = slices.Clone(specs[i].data)
		return &specs[i]
	}
	for _, tc := range []struct {
		name   string
		mutate func(specs []pthSpec) []pthSpec
		want   string
	}{
		{"missing batch norm", func(s []pthSpec) []pthSpec {
			return slices.DeleteFunc(s, func(s pthSpec) bool { return s.name == "layer3.2.bn2.running_mean" })
		}, "tensor layer3.2.bn2.running_mean (ResNet-50 conv layer 33) is missing"},
		{"missing convolution", func(s []pthSpec) []pthSpec {
			return slices.DeleteFunc(s, func(s pthSpec) bool { return s.name == "layer4.0.downsample.0.weight" })
		}, "tensor layer4.0.downsample.0.weight (ResNet-50 conv layer 47) is missing"},
		{"wrong kernel", func(s []pthSpec) []pthSpec {
			p := find(s, "layer2.0.downsample.0.weight")
			p.shape = []int{p.shape[0], p.shape[1] / 9, 3, 3}
			return s
		}, "tensor layer2.0.downsample.0.weight has shape [32 1 3 3], want [32 16 1 1] (conv layer 15; widths ResNet-50's divided by 16)"},
		{"short batch norm", func(s []pthSpec) []pthSpec {
			p := find(s, "layer1.1.bn3.weight")
			p.shape, p.data = []int{3}, p.data[:3]
			return s
		}, "tensor layer1.1.bn3.weight has shape [3], want [16]"},
		{"negative variance", func(s []pthSpec) []pthSpec {
			find(s, "layer2.1.bn1.running_var").data[5] = -0.25
			return s
		}, "tensor layer2.1.bn1.running_var: element 5 of 8 is -0.25, a negative variance"},
		{"NaN mean", func(s []pthSpec) []pthSpec {
			find(s, "bn1.running_mean").data[1] = float32(math.NaN())
			return s
		}, "tensor bn1.running_mean: element 1 of 4 is NaN, not a finite number"},
		{"huge gamma", func(s []pthSpec) []pthSpec {
			find(s, "layer1.0.bn1.weight").data[0] = 2e4
			return s
		}, "tensor layer1.0.bn1.weight: element 0 of 4 is 20000, beyond the bound of ±10000"},
		{"folding overflows", func(s []pthSpec) []pthSpec {
			// γ/sqrt(var+eps) = 9000/sqrt(1e-5) scales the weights by
			// 2.8e6: every value is within bounds, the folded layer is not.
			find(s, "layer4.2.bn3.weight").data[0] = 9000
			find(s, "layer4.2.bn3.running_var").data[0] = 0
			return s
		}, "tensor layer4.2.conv3.weight with batch norm layer4.2.bn3 folded in: weight element 0 is"},
		{"integer variance", func(s []pthSpec) []pthSpec {
			find(s, "layer1.0.bn2.running_var").long = true
			return s
		}, `tensor "layer1.0.bn2.running_var": torch.LongStorage is not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, zip := range []bool{false, true} {
				specs := tc.mutate(resnet50PTHSpecs(3, d, true))
				p := writeTemp(t, "hostile.pth", (&pthFile{tensors: specs, zip: zip}).bytes(t))
				_, err := ReadWeights(p, "", d)
				require.ErrorIs(t, err, ErrFormat, "zip %v", zip)
				assert.ErrorContains(t, err, tc.want, "zip %v", zip)
				assert.ErrorContains(t, err, p, "zip %v", zip)
			}
		})
	}
}

// TestResNet50ReadBomb reads a checkpoint whose 265 ResNet-50 tensors
// (convolutions and batch norms) all view the whole of one float16
// storage of 34 Mi zeros, deflated to a small file: converting every
// tensor would take 265 x 136 MB. The shapes are refused before any
// tensor is allocated, and the reader stays within its budget.
func TestResNet50ReadBomb(t *testing.T) {
	const n = 34 << 20
	var specs []pthSpec
	for _, l := range resnet50Spec.layers {
		specs = append(specs, pthSpec{name: l.weight, shape: []int{n}, half: true})
		for _, suf := range normSuffixes {
			specs = append(specs, pthSpec{name: l.norm + suf, shape: []int{n}, half: true})
		}
	}
	b := (&pthFile{tensors: specs, zip: true, deflate: true, shared: n}).bytes(t)
	require.Less(t, len(b), 200<<10, "the zip bomb should be small")
	p := writeTemp(t, "bomb.pth", b)
	for _, arch := range []Arch{"", ResNet50} {
		var err error
		got := allocated(func() { _, err = ReadWeights(p, arch, 1) })
		var fe *FormatError
		require.ErrorAs(t, err, &fe, "arch %q", arch)
		assert.Equal(t, p, fe.Path)
		assert.ErrorContains(t, err, "tensor conv1.weight has shape [35651584], want [64 3 7 7]")
		assert.LessOrEqual(t, got, readBudget(0), "arch %q: allocated %d bytes", arch, got)
	}
}

// TestResNet50Network checks the network of generated weights through
// the image API: its identity, batch independence, worker independence
// and option checks.
func TestResNet50Network(t *testing.T) {
	w, err := GenerateWeights(ResNet50, 3, resnet50TestDivisor)
	require.NoError(t, err)
	assert.Equal(t, PreprocessTorch, w.Preprocess)
	m, err := NewNetwork(w, &NetworkOptions{Workers: 2})
	require.NoError(t, err)
	assert.Equal(t, Backbone{Arch: ResNet50, Preprocess: PreprocessTorch, Seed: 3, Divisor: resnet50TestDivisor}, m.Backbone())
	require.Equal(t, 128, m.FeatureLen())

	r := rand.New(rand.NewPCG(4, 4))
	imgs := make([]image.Image, 3)
	for i := range imgs {
		img := image.NewRGBA(image.Rect(0, 0, 180+20*i, 240))
		for j := range img.Pix {
			img.Pix[j] = uint8(r.IntN(256))
		}
		imgs[i] = img
	}
	batch, err := m.FeaturesBatch(context.Background(), imgs)
	require.NoError(t, err)
	one, err := NewNetwork(w, &NetworkOptions{Workers: 1})
	require.NoError(t, err)
	for i, img := range imgs {
		f, err := one.Features(img)
		require.NoError(t, err)
		assert.Equal(t, batch[i], f, "image %d: one image on one worker differs from the batch on two", i)
		assert.Len(t, f, 128)
		assert.Positive(t, slices.Max(f), "image %d: features after a ReLU and an average", i)
	}
	assert.NotEqual(t, batch[0], batch[1])

	for _, algo := range []ConvAlgorithm{ConvIm2col, ConvWinograd, ConvWinograd4x4} {
		a, err := NewNetwork(w, &NetworkOptions{Algorithm: algo})
		require.NoError(t, err, "%v", algo)
		f, err := a.Features(imgs[0])
		require.NoError(t, err)
		// Winograd transforms round differently from the implicit GEMM.
		assert.Less(t, relL2(f, batch[0]), 1e-5, "%v", algo)
	}
	_, err = NewNetwork(w, &NetworkOptions{Algorithm: ConvAlgorithm(9)})
	assert.ErrorContains(t, err, "unknown algorithm")
	_, err = NewNetwork(w, &NetworkOptions{Workers: -1})
	assert.ErrorContains(t, err, "negative Workers")
	bad := *w
	bad.layers = slices.Clone(w.layers)
	bad.layers[20].Bias = bad.layers[20].Bias[:1]
	_, err = NewNetwork(&bad, nil)
	assert.ErrorContains(t, err, "conv layer 21")
	_, err = GenerateWeights(ResNet50, 0, 128)
	assert.ErrorContains(t, err, "width divisor 128 is not 1, 2, 4, 8, 16, 32 or 64, the divisors of ResNet-50's widths")
}

// TestDownloadResNet50 downloads and converts a narrow torchvision-layout
// checkpoint from a test server, and checks that the published files'
// hashes and sizes are the defaults: the V1 file without a URL, the V2
// file's own when its URL is given.
func TestDownloadResNet50(t *testing.T) {
	const seed, d = 5, resnet50TestDivisor
	content := (&pthFile{tensors: resnet50PTHSpecs(seed, d, true), zip: true}).bytes(t)
	h := sha256.Sum256(content)
	sum := hex.EncodeToString(h[:])
	s := &weightServer{content: content}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	dir := t.TempDir()
	p, err := DownloadWeights(ctx, ResNet50, &DownloadOptions{URL: srv.URL + "/models/resnet50-test.pth", SHA256Prefix: sum[:8], CacheDir: dir, divisor: d})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "resnet50-test.safetensors"), p)
	w, err := ReadWeights(p, "", d)
	require.NoError(t, err)
	requireResNet50Layers(t, w, seed, d)
	assert.Equal(t, sum, w.Metadata["source_sha256"])
	assert.NoFileExists(t, filepath.Join(dir, "resnet50-test.pth.part"))

	// Every request goes to the test server, whatever its URL; the small
	// file is refused on its size, which names the expected one.
	client := &http.Client{Transport: rewriteHost{srv.URL}}
	for _, tc := range []struct {
		url  string
		size int64
	}{{"", 102530333}, {"https://download.pytorch.org/models/resnet50-11ad3fa6.pth", 102540417}} {
		_, err := DownloadWeights(ctx, ResNet50, &DownloadOptions{URL: tc.url, CacheDir: t.TempDir(), Client: client})
		assert.ErrorContains(t, err, fmt.Sprintf("%d bytes, expected %d", len(content), tc.size), "URL %q", tc.url)
	}
	// Given the size, the V2 file is refused on its hash prefix.
	_, err = DownloadWeights(ctx, ResNet50, &DownloadOptions{URL: "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
		Size: int64(len(content)), CacheDir: t.TempDir(), Client: client, divisor: d})
	assert.ErrorContains(t, err, "does not start with 11ad3fa6")
	_, err = DownloadWeights(ctx, ResNet50, &DownloadOptions{URL: srv.URL + "/other.pth", CacheDir: t.TempDir()})
	assert.ErrorContains(t, err, "SHA256Prefix must be set")
}

// BenchmarkResNet50Features measures full-size ResNet-50 feature
// extraction (generated weights) from 224x224 images, at batch 1 and 8,
// with the default options. ONNX Runtime's numbers for the same network
// come from internal/resnet/testdata/ort/bench.mjs.
func BenchmarkResNet50Features(b *testing.B) {
	w, err := GenerateWeights(ResNet50, 0, 1)
	require.NoError(b, err)
	m, err := NewNetwork(w, nil)
	require.NoError(b, err)
	img := image.NewRGBA(image.Rect(0, 0, InputSize, InputSize))
	r := rand.New(rand.NewPCG(15, 15))
	for i := range img.Pix {
		img.Pix[i] = uint8(r.IntN(256))
	}
	for _, batch := range []int{1, 8} {
		imgs := make([]image.Image, batch)
		for i := range imgs {
			imgs[i] = img
		}
		b.Run(fmt.Sprintf("batch%d", batch), func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPUSeconds()
			for b.Loop() {
				if _, err := m.FeaturesBatch(context.Background(), imgs); err != nil {
					b.Fatal(err)
				}
			}
			n := float64(b.N * batch)
			b.ReportMetric(n/b.Elapsed().Seconds(), "img/s")
			b.ReportMetric(b.Elapsed().Seconds()/n, "s/image")
			b.ReportMetric((processCPUSeconds()-cpu0)/n, "cpu-s/image")
		})
	}
}
