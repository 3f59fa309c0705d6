package style

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"sync"

	"github.com/stylespace/style/internal/engine"
	"github.com/stylespace/style/internal/resnet"
	"gonum.org/v1/gonum/blas"
)

// InputSize is the height and width, in pixels, of the images a Network
// takes: every image is resized to 224x224.
const InputSize = 224

// Network is a backbone used as a feature extractor: the convolutional
// part of an architecture (see Arch) with its weights. A 224x224 image
// becomes FeatureLen floats in C,H,W order: for VGG16, C x 7 x 7 (25,088
// for the published weights, C = 512); for ResNet50, C x 1 x 1, the
// global average of each channel of the last 7x7 map (2,048 for the
// published weights).
//
// A *Network is immutable after construction and safe for concurrent use
// by multiple goroutines; each call takes its scratch memory (about 26 MB
// per image in flight for the full VGG16, two activation buffers; 13 MB
// for ResNet50, four smaller ones) from a pool, so concurrent calls do not contend except for the cores, and a
// steady stream of calls does not allocate it again.
type Network struct {
	convs      []*Conv     // VGG16
	res        *resnet.Net // ResNet50
	pre        Preprocess
	filter     ResizeFilter
	matte      color.Color
	workers    int
	backbone   Backbone
	featureLen int
	work       sync.Pool // *networkWork
	inputs     sync.Pool // *[]float32, preprocessed images of FeaturesBatch
}

// NetworkOptions configures a Network. A nil *NetworkOptions means the
// zero value; NewNetwork and LoadNetwork do not retain or modify it.
type NetworkOptions struct {
	// Preprocess overrides the normalisation the weights ask for. Zero
	// value (""): the weights' Preprocess, or PreprocessCaffe (the original
	// Keras weights of the study) if that is empty too.
	Preprocess Preprocess
	// Filter is the resize filter of Features. Zero value: FilterNearest,
	// exactly as Keras' load_img.
	Filter ResizeFilter
	// Matte, if not nil, is the colour that translucent pixels are
	// composited over (for example color.White for product photos). Zero
	// value (nil): alpha is ignored and the stored colour of every pixel
	// is used, as PIL's convert("RGB") and therefore Keras do; a fully
	// transparent pixel keeps whatever colour it stores.
	Matte color.Color
	// BLAS computes the convolutions' matrix products; it must be safe for
	// concurrent use. Zero value (nil): the package default. ResNet50 runs
	// on the package's own kernels and does not use it.
	BLAS blas.Float32Level3
	// Workers is the number of goroutines one call may use. Zero value:
	// runtime.GOMAXPROCS(0); negative is an error.
	Workers int
	// Algorithm selects the algorithm of every convolution. Zero value:
	// ConvAuto, the fastest accurate one for each layer (Winograd
	// F(4x4, 3x3) or F(2x2, 3x3) with the package's BLAS; see
	// ConvAlgorithm for each one's error). For ResNet50 it applies to the
	// 3x3 stride-1 convolutions; ConvAuto picks per layer by its width and
	// the CPU's vector instructions, the others are implicit GEMMs.
	Algorithm ConvAlgorithm
}

// networkWork holds the activations of one forward pass.
type networkWork struct {
	a, b []float32
	conv engine.Workspace // shared by the layers, which run one after another
}

// LoadNetwork reads a weight file of the published, full-width network of
// any architecture (see ReadWeights for the formats; the architecture is
// told by the file) and returns its feature extractor, with the
// preprocessing the file asks for ("torch" for torchvision and timm files)
// unless opts overrides it. Use ReadWeights and NewNetwork for the narrow
// networks of other width divisors.
func LoadNetwork(path string, opts *NetworkOptions) (*Network, error) {
	w, err := ReadWeights(path, "", 1)
	if err != nil {
		return nil, err
	}
	return NewNetwork(w, opts)
}

// NewNetwork returns the feature extractor of w, whose weights are copied.
// It returns an error if w is nil or does not hold the layers of w.Arch
// with every width divided by w.Divisor (as ReadWeights and
// GenerateWeights make them), or if the options are invalid: an unknown
// preprocessing, filter or algorithm, or negative Workers.
//
// The network's Backbone records w.Arch, the preprocessing, w.SHA256,
// w.Seed and w.Divisor: weights read from a file are told apart by the
// file's SHA-256, generated ones by their seed and divisor.
func NewNetwork(w *Weights, opts *NetworkOptions) (*Network, error) {
	var o NetworkOptions
	if opts != nil {
		o = *opts
	}
	if w == nil {
		return nil, fmt.Errorf("style: NewNetwork: nil weights")
	}
	spec, err := lookupArch("NewNetwork", w.Arch)
	if err != nil {
		return nil, err
	}
	if err := spec.checkDivisor("NewNetwork", w.Divisor); err != nil {
		return nil, err
	}
	if err := spec.checkLayers(w.layers, w.Divisor); err != nil {
		return nil, fmt.Errorf("style: NewNetwork: %w", err)
	}
	if o.Workers < 0 {
		return nil, fmt.Errorf("style: NewNetwork: negative Workers %d", o.Workers)
	}
	pre := o.Preprocess
	if pre == "" {
		pre = w.Preprocess
	}
	if pre == "" {
		pre = PreprocessCaffe
	}
	if pre != PreprocessCaffe && pre != PreprocessTorch {
		return nil, fmt.Errorf("style: NewNetwork: unknown preprocessing %q (want %q or %q)", pre, PreprocessCaffe, PreprocessTorch)
	}
	switch o.Filter {
	case FilterNearest, FilterBilinear, FilterLanczos3:
	default:
		return nil, fmt.Errorf("style: NewNetwork: unknown resize filter %v", o.Filter)
	}
	m := &Network{
		pre:     pre,
		filter:  o.Filter,
		matte:   o.Matte,
		workers: o.Workers,
		backbone: Backbone{
			Arch:       spec.arch,
			Preprocess: pre,
			SHA256:     w.SHA256,
			Seed:       w.Seed,
			Divisor:    w.Divisor,
		},
	}
	if spec.arch == ResNet50 {
		if m.res, err = newResNet50(w.layers, w.Divisor, &o); err != nil {
			return nil, fmt.Errorf("style: NewNetwork: %w", err)
		}
		m.featureLen = m.res.Features()
		return m, nil
	}
	m.convs = make([]*Conv, len(w.layers))
	h, wd := InputSize, InputSize
	for i, l := range w.layers {
		c, err := NewConv(l, &ConvOptions{ReLU: true, Pool: spec.layers[i].pool, BLAS: o.BLAS, Workers: o.Workers, Algorithm: o.Algorithm})
		if err != nil {
			return nil, fmt.Errorf("style: NewNetwork: conv layer %d: %w", i+1, err)
		}
		m.convs[i] = c
		h, wd = c.OutputSize(h, wd)
	}
	m.featureLen = m.convs[len(m.convs)-1].e.Out() * h * wd
	return m, nil
}

// FeatureLen returns the length of a feature vector: C x 7 x 7 for VGG16
// and C for ResNet50, where C is the width of the last conv layer (25,088
// and 2,048 at full width).
func (m *Network) FeatureLen() int { return m.featureLen }

// Backbone identifies the network: its architecture, preprocessing, and
// the SHA-256 of the weight file it was read from or the seed it was
// generated with, and its width divisor.
func (m *Network) Backbone() Backbone { return m.backbone }

// Features resizes img to InputSize x InputSize, normalises it as
// Backbone().Preprocess says and returns its FeatureLen features in C,H,W
// order. It returns an error for a nil or empty image, and, naming image
// 0, when a feature is NaN or infinite: weights within ReadWeights' bounds
// can still overflow float32 across many layers. (An overflow can also be
// hidden from the output: a NaN made inside the network, such as Inf - Inf
// in a Winograd transform, becomes 0 at the next ReLU.)
//
// "caffe" normalisation gives channels B, G, R minus the ImageNet mean
// (103.939, 116.779, 123.68); "torch" gives channels R, G, B as
// (v/255 - mean)/std with mean (0.485, 0.456, 0.406) and std
// (0.229, 0.224, 0.225). Values are computed in float64 and rounded once.
//
// Any image.Image works: fast paths exist for *image.YCbCr, *image.RGBA,
// *image.NRGBA, *image.Gray and *image.Paletted; others go through their
// color model. Compared with PIL's convert("RGB") that Keras applies:
// grey is replicated to R, G and B as PIL does; 16-bit samples keep their
// high 8 bits, as PIL does for 16-bit colour PNGs (PIL opens 16-bit grey
// PNGs in mode "I" and clips them to 255, turning them almost white; that
// is not reproduced); CMYK uses Go's color.CMYK model, within one level of
// PIL's; alpha is handled as described at NetworkOptions.Matte (ignored by
// default, as PIL does; Go's premultiplied *image.RGBA is un-premultiplied
// first, which can move a translucent pixel by one level).
func (m *Network) Features(img image.Image) ([]float32, error) {
	out, err := m.FeaturesBatch(context.Background(), []image.Image{img})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// FeaturesBatch is Features for several images, computed together (which
// uses the cores better than one image at a time). The i-th result belongs
// to imgs[i]; the results do not depend on how images are batched. An
// image that cannot be preprocessed, or whose features are not all finite,
// gives an error naming its index.
//
// FeaturesBatch checks ctx before each group of images pushed through the
// network together (a few seconds of work at most) and returns ctx.Err()
// when it is cancelled. ExtractFeatures runs it over a whole data set,
// with progress reports.
func (m *Network) FeaturesBatch(ctx context.Context, imgs []image.Image) ([][]float32, error) {
	const size = 3 * InputSize * InputSize
	out := make([][]float32, len(imgs))
	fl := m.featureLen
	chunk := m.chunk()
	xp, _ := m.inputs.Get().(*[]float32)
	if xp == nil {
		xp = new([]float32)
	}
	defer m.inputs.Put(xp)
	if need := min(chunk, len(imgs)) * size; cap(*xp) < need {
		*xp = make([]float32, need)
	}
	x := (*xp)[:cap(*xp)]
	for start := 0; start < len(imgs); start += chunk {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+chunk, len(imgs))
		for i := start; i < end; i++ {
			if err := preprocessImageTo(x[(i-start)*size:(i-start+1)*size], imgs[i], m.pre, m.filter, m.matte); err != nil {
				return nil, fmt.Errorf("style: features of image %d: %w", i, err)
			}
		}
		n := end - start
		feats := make([]float32, n*fl)
		m.forwardTo(feats, x[:n*size], n, InputSize, InputSize)
		for i := range n {
			f := feats[i*fl : (i+1)*fl : (i+1)*fl]
			if j, v, ok := checkBounded(f, math.MaxFloat32); !ok {
				return nil, fmt.Errorf("style: features of image %d: feature %d of %d is %v: the network overflowed float32", start+i, j, fl, v)
			}
			out[start+i] = f
		}
	}
	return out, nil
}

// ForwardTo runs the network on n preprocessed images stored one after
// another in x, each 3 x InputSize x InputSize floats in C,H,W order and
// normalised as Backbone().Preprocess says, writes their n x FeatureLen
// features into dst and returns dst. Unlike FeaturesBatch it does not
// check that the features are finite. Once its pooled scratch buffers have
// grown, it allocates no memory in proportion to the input.
//
// ForwardTo panics if n is negative, len(x) != n x 3 x 224 x 224 or
// len(dst) != n x FeatureLen.
func (m *Network) ForwardTo(dst, x []float32, n int) []float32 {
	const size = 3 * InputSize * InputSize
	if n < 0 || len(x) != n*size {
		panic(fmt.Sprintf("style: Network.ForwardTo: input has %d values, want %d (%d x 3 x %d x %d)", len(x), max(n, 0)*size, n, InputSize, InputSize))
	}
	fl := m.featureLen
	if len(dst) != n*fl {
		panic(fmt.Sprintf("style: Network.ForwardTo: destination has %d values, want %d (%d x %d)", len(dst), n*fl, n, fl))
	}
	chunk := m.chunk()
	for start := 0; start < n; start += chunk {
		end := min(start+chunk, n)
		m.forwardTo(dst[start*fl:end*fl], x[start*size:end*size], end-start, InputSize, InputSize)
	}
	return dst
}

// chunk is the number of images pushed through the network together: enough
// to keep the workers busy on the small late layers, few enough to bound the
// activation memory (about 13 MB per image for VGG16 and ResNet50). Results do not
// depend on it.
func (m *Network) chunk() int {
	return max(2, min(2*engine.Workers(m.workers), 8))
}

// forwardTo runs the layers on n > 0 images of 3 x h x w and writes the
// final activations into dst. It panics on wrong lengths.
func (m *Network) forwardTo(dst, x []float32, n, h, w int) {
	if m.res != nil {
		m.res.ForwardTo(dst, x, n, h, w, nil)
		return
	}
	// The largest activation is an unpooled layer's output.
	maxAct := 0
	ch, cw := h, w
	for _, c := range m.convs {
		maxAct = max(maxAct, c.e.Out()*ch*cw)
		ch, cw = c.OutputSize(ch, cw)
	}
	last := m.convs[len(m.convs)-1]
	if len(dst) != n*last.e.Out()*ch*cw {
		panic(fmt.Sprintf("style: Network: destination has %d values, want %d", len(dst), n*last.e.Out()*ch*cw))
	}
	wk, _ := m.work.Get().(*networkWork)
	if wk == nil {
		wk = new(networkWork)
	}
	defer m.work.Put(wk)
	if cap(wk.a) < n*maxAct {
		wk.a = make([]float32, n*maxAct)
		wk.b = make([]float32, n*maxAct)
	}
	cur := x
	ch, cw = h, w
	for i, c := range m.convs {
		oh, ow := c.OutputSize(ch, cw)
		var out []float32
		switch {
		case i == len(m.convs)-1:
			out = dst
		case i%2 == 0:
			out = wk.a[:n*c.e.Out()*oh*ow]
		default:
			out = wk.b[:n*c.e.Out()*oh*ow]
		}
		c.e.Forward(out, cur, n, ch, cw, &wk.conv)
		cur, ch, cw = out, oh, ow
	}
}
