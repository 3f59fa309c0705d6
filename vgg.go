package style

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"sync"
	"time"

	"github.com/stylespace/style/internal/engine"
	"gonum.org/v1/gonum/blas"
)

// vgg16Pools lists, for each of the 13 conv layers, whether a 2x2 max-pool
// follows it (after conv layers 2, 4, 7, 10 and 13).
var vgg16Pools = [13]bool{1: true, 3: true, 6: true, 9: true, 12: true}

// VGG16 is the convolutional part of VGG16 (13 conv 3x3 + ReLU layers and 5
// max-pools) used as a feature extractor: a 224x224 image becomes C x 7 x 7
// floats in C,H,W order (25,088 for the published weights, C = 512).
//
// A *VGG16 is immutable after construction and safe for concurrent use by
// multiple goroutines; each call takes its scratch memory (about 26 MB per
// image in flight for the full network: two activation buffers) from a
// pool, so concurrent calls do not contend except for the cores, and a
// steady stream of calls does not allocate it again.
type VGG16 struct {
	convs    [13]*Conv
	pre      Preprocess
	popts    PreprocessOptions
	workers  int
	backbone Backbone
	work     sync.Pool // *vggWork
	inputs   sync.Pool // *[]float32, preprocessed images of FeaturesBatch
}

// VGG16Options configures a VGG16. A nil *VGG16Options means the zero
// value; NewVGG16 does not retain or modify it.
type VGG16Options struct {
	// Preprocess overrides the normalisation the weights ask for. Zero
	// value (""): the weights' Preprocess, or PreprocessCaffe (the original
	// Keras weights of the study) if that is empty too.
	Preprocess Preprocess
	// Filter is the resize filter of Features. Zero value: FilterNearest,
	// exactly as Keras' load_img.
	Filter ResizeFilter
	// Matte, if not nil, is the colour translucent pixels are composited
	// over. Zero value (nil): alpha is ignored, as Keras does.
	Matte color.Color
	// BLAS computes the convolutions' matrix products; it must be safe for
	// concurrent use. Zero value (nil): the package default.
	BLAS blas.Float32Level3
	// Workers is the number of goroutines one call may use. Zero value:
	// runtime.GOMAXPROCS(0).
	Workers int
	// Algorithm selects the convolution algorithm of all 13 layers. Zero
	// value: ConvAuto, the fastest accurate one for each layer (Winograd
	// F(4x4, 3x3) or F(2x2, 3x3) with the package's BLAS; see
	// ConvAlgorithm for each one's error).
	Algorithm ConvAlgorithm
}

// vggWork holds the activations of one forward pass.
type vggWork struct {
	a, b []float32
	conv engine.Workspace // shared by the layers, which run one after another
}

// LoadVGG16 reads a VGG16 weight file (see ReadVGG16Weights for the
// formats) and returns the feature extractor with default options and the
// preprocessing the file asks for ("torch" for torchvision and timm files).
// Use ReadVGG16Weights and NewVGG16 to set options.
func LoadVGG16(path string) (*VGG16, error) {
	w, err := ReadVGG16Weights(path, 1)
	if err != nil {
		return nil, err
	}
	return NewVGG16(w, nil)
}

// NewVGG16 returns a feature extractor with the given weights, which are
// copied. It returns an error if the weights are not a VGG16-shaped chain
// (13 conv layers, 3 input channels, each layer's input channels equal to
// the previous layer's output channels, weights and biases of the right
// lengths) or if the options are invalid. The channel widths are taken from
// the weights, so narrower networks of the same shape work too.
func NewVGG16(w *VGG16Weights, opts *VGG16Options) (*VGG16, error) {
	var o VGG16Options
	if opts != nil {
		o = *opts
	}
	if w == nil {
		return nil, fmt.Errorf("style: NewVGG16: nil weights")
	}
	if len(w.Layers) != 13 {
		return nil, fmt.Errorf("style: NewVGG16: %d conv layers, want 13", len(w.Layers))
	}
	if o.Workers < 0 {
		return nil, fmt.Errorf("style: NewVGG16: negative Workers %d", o.Workers)
	}
	pre := o.Preprocess
	if pre == "" {
		pre = w.Preprocess
	}
	if pre == "" {
		pre = PreprocessCaffe
	}
	if pre != PreprocessCaffe && pre != PreprocessTorch {
		return nil, fmt.Errorf("style: NewVGG16: unknown preprocessing %q (want %q or %q)", pre, PreprocessCaffe, PreprocessTorch)
	}
	switch o.Filter {
	case FilterNearest, FilterBilinear, FilterLanczos3:
	default:
		return nil, fmt.Errorf("style: NewVGG16: unknown resize filter %v", o.Filter)
	}
	m := &VGG16{
		pre:     pre,
		popts:   PreprocessOptions{Filter: o.Filter, Matte: o.Matte},
		workers: o.Workers,
		backbone: Backbone{
			Name:       "vgg16",
			Preprocess: pre,
			SHA256:     w.SHA256,
		},
	}
	in := 3
	for i, l := range w.Layers {
		if l.In != in {
			return nil, fmt.Errorf("style: NewVGG16: conv layer %d has %d input channels, want %d", i+1, l.In, in)
		}
		c, err := NewConv(l, &ConvOptions{ReLU: true, Pool: vgg16Pools[i], BLAS: o.BLAS, Workers: o.Workers, Algorithm: o.Algorithm})
		if err != nil {
			return nil, fmt.Errorf("style: NewVGG16: conv layer %d: %w", i+1, err)
		}
		m.convs[i] = c
		in = l.Out
	}
	return m, nil
}

// FeatureLen returns the length of a feature vector: C x 7 x 7 where C is
// the width of the last conv layer (25,088 for VGG16).
func (m *VGG16) FeatureLen() int { return m.convs[12].e.Out() * 7 * 7 }

// Backbone identifies the network: name "vgg16", its preprocessing and the
// SHA-256 of the weight file it was loaded from.
func (m *VGG16) Backbone() Backbone { return m.backbone }

// Preprocess returns the normalisation applied by Features.
func (m *VGG16) Preprocess() Preprocess { return m.pre }

// Features resizes img to 224x224, normalises it (see PreprocessImageTo)
// and returns its FeatureLen features in C,H,W order. A nil or empty image
// gives an error wrapping ErrEmptyImage.
func (m *VGG16) Features(img image.Image) ([]float32, error) {
	out, err := m.FeaturesBatch([]image.Image{img})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// FeaturesBatch is Features for several images, computed together (which
// uses the cores better than one image at a time). The i-th result belongs
// to imgs[i]; the results do not depend on how images are batched.
func (m *VGG16) FeaturesBatch(imgs []image.Image) ([][]float32, error) {
	return m.FeaturesContext(context.Background(), imgs, nil)
}

// FeaturesContext is FeaturesBatch for long lists of images: it checks ctx
// before each group of images pushed through the network together (a few
// seconds of work at most) and returns ctx.Err() when it is cancelled, and
// it calls progress, if not nil, after each group with Stage "features"
// and Done/Total counted in images. progress runs on the calling goroutine.
func (m *VGG16) FeaturesContext(ctx context.Context, imgs []image.Image, progress func(Progress)) ([][]float32, error) {
	const size = 3 * VGG16InputSize * VGG16InputSize
	begin := time.Now()
	out := make([][]float32, len(imgs))
	fl := m.FeatureLen()
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
			if _, err := PreprocessImageTo(x[(i-start)*size:(i-start+1)*size], imgs[i], m.pre, &m.popts); err != nil {
				return nil, fmt.Errorf("style: VGG16 features of image %d: %w", i, err)
			}
		}
		n := end - start
		feats := make([]float32, n*fl)
		m.forwardTo(feats, x[:n*size], n, VGG16InputSize, VGG16InputSize)
		for i := range n {
			out[start+i] = feats[i*fl : (i+1)*fl : (i+1)*fl]
		}
		if progress != nil {
			progress(Progress{Stage: "features", Done: int64(end), Total: int64(len(imgs)), Elapsed: time.Since(begin)})
		}
	}
	return out, nil
}

// Forward runs the conv stack on one preprocessed 3 x 224 x 224 tensor in
// C,H,W order and returns its FeatureLen features. A tensor of the wrong
// length gives an error.
func (m *VGG16) Forward(x []float32) ([]float32, error) {
	return m.ForwardBatch(x, 1)
}

// ForwardBatch runs the conv stack on n preprocessed 3 x 224 x 224 tensors
// stored one after another in x and returns n x FeatureLen features. A
// non-positive n or a tensor of the wrong length gives an error.
func (m *VGG16) ForwardBatch(x []float32, n int) ([]float32, error) {
	dst := make([]float32, max(n, 0)*m.FeatureLen())
	if err := m.ForwardBatchTo(dst, x, n); err != nil {
		return nil, err
	}
	return dst, nil
}

// ForwardBatchTo is ForwardBatch writing into dst, which must have length
// n x FeatureLen. It allocates no memory in proportion to the input once
// its pooled scratch buffers have grown. Wrong lengths give an error.
func (m *VGG16) ForwardBatchTo(dst, x []float32, n int) error {
	const size = 3 * VGG16InputSize * VGG16InputSize
	if n <= 0 {
		return fmt.Errorf("style: VGG16.Forward: batch of %d images", n)
	}
	if len(x) != n*size {
		return fmt.Errorf("style: VGG16.Forward: input has %d values, want %d (%d x 3 x 224 x 224)", len(x), n*size, n)
	}
	if len(dst) != n*m.FeatureLen() {
		return fmt.Errorf("style: VGG16.Forward: destination has %d values, want %d", len(dst), n*m.FeatureLen())
	}
	chunk := m.chunk()
	fl := m.FeatureLen()
	for start := 0; start < n; start += chunk {
		end := min(start+chunk, n)
		m.forwardTo(dst[start*fl:end*fl], x[start*size:end*size], end-start, VGG16InputSize, VGG16InputSize)
	}
	return nil
}

// chunk is the number of images pushed through the network together: enough
// to keep the workers busy on the small late layers, few enough to bound the
// activation memory (about 13 MB per image). Results do not depend on it.
func (m *VGG16) chunk() int {
	return max(2, min(2*engine.Workers(m.workers), 8))
}

// forwardTo runs the stack on n images of 3 x h x w and writes the final
// activations (n x C x h/32 x w/32) into dst. It panics on wrong lengths.
func (m *VGG16) forwardTo(dst, x []float32, n, h, w int) {
	// The largest activation is an unpooled layer's output.
	maxAct := 0
	ch, cw := h, w
	for _, c := range m.convs {
		maxAct = max(maxAct, c.e.Out()*ch*cw)
		ch, cw = c.OutputSize(ch, cw)
	}
	if len(dst) != n*m.convs[12].e.Out()*ch*cw {
		panic(fmt.Sprintf("style: VGG16: destination has %d values, want %d", len(dst), n*m.convs[12].e.Out()*ch*cw))
	}
	wk, _ := m.work.Get().(*vggWork)
	if wk == nil {
		wk = new(vggWork)
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
