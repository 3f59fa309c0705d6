package style

import (
	"fmt"

	"github.com/stylespace/style/internal/engine"
	"gonum.org/v1/gonum/blas"
)

// Conv is a 3x3 convolution layer with stride 1 and zero padding 1 (the
// output has the input's height and width), a bias per output channel, and
// optionally a fused ReLU and a fused 2x2 max-pool with stride 2.
//
// Tensors are float32 in N,C,H,W order (row-major: x is the fastest index).
// ConvIm2col computes im2col followed by one single-precision GEMM per
// band of output rows; ConvWinograd and ConvWinograd4x4 replace it by 16
// or 36 GEMMs with K = In per band of output tiles (see ConvAlgorithm;
// the default, ConvAuto, is the fastest). With this package's BLAS the
// GEMM micro-kernel is driven directly on weights packed once by NewConv
// (an implicit GEMM: the im2col matrix is never written); with another
// BLAS its Sgemm is called.
// The work is split into tasks (bands of output rows or tiles, and
// chunks of output channels when an image has few bands) that depend only
// on the layer and the shapes, never on the number of workers, and
// each output value is written by exactly one task, so results are
// bit-identical for any Workers setting and any batch composition.
//
// A Conv is immutable after NewConv and safe for concurrent use by multiple
// goroutines, provided its BLAS implementation is (gonum's is). Scratch
// buffers are pooled and reused across calls.
type Conv struct {
	e *engine.Conv
}

// ConvOptions configures a Conv. A nil *ConvOptions means the zero value:
// no ReLU, no pooling, the default BLAS, GOMAXPROCS workers.
type ConvOptions struct {
	// ReLU applies max(0, x) to the output. Zero value: no activation.
	ReLU bool
	// Pool applies a 2x2 max-pool with stride 2 after the activation,
	// flooring odd sizes as PyTorch and Keras do. Zero value: no pooling.
	Pool bool
	// BLAS computes the matrix products. It must be safe for concurrent
	// use. Zero value (nil): the package default (gonum's pure-Go BLAS,
	// or a faster one when the package provides it).
	BLAS blas.Float32Level3
	// Workers is the number of goroutines a forward pass may use.
	// Zero value: runtime.GOMAXPROCS(0); negative is an error. Small
	// inputs run serially.
	Workers int
	// Algorithm selects the convolution algorithm. Zero value: ConvAuto,
	// the fastest accurate one (see ConvAuto).
	Algorithm ConvAlgorithm
}

// NewConv returns a convolution layer with the given weights, which are
// copied. It returns an error if the weights are inconsistent (In or Out
// not positive, or Weight and Bias of the wrong length) or the options
// invalid (negative Workers, in the options or in a BLAS given as BLAS,
// or an unknown algorithm); the options are not retained.
func NewConv(w ConvWeights, opts *ConvOptions) (*Conv, error) {
	var o ConvOptions
	if opts != nil {
		o = *opts
	}
	if o.Algorithm < ConvAuto || o.Algorithm > ConvWinograd4x4 {
		return nil, fmt.Errorf("style: NewConv: unknown algorithm %v", o.Algorithm)
	}
	if w, _ := blasWorkers(o.BLAS); w < 0 {
		return nil, fmt.Errorf("style: NewConv: negative BLAS.Workers %d", w)
	}
	impl := o.BLAS
	if impl == nil || isPackageBLAS(impl) {
		impl = nil // the engine drives the package's kernels itself
	}
	e, err := engine.NewConv(engine.ConvSpec{
		In: w.In, Out: w.Out, Weight: w.Weight, Bias: w.Bias,
		ReLU: o.ReLU, Pool: o.Pool,
		BLAS: impl, Workers: o.Workers,
		Algorithm: engineAlgorithms[o.Algorithm],
	})
	if err != nil {
		return nil, fmt.Errorf("style: NewConv: %w", err)
	}
	return &Conv{e: e}, nil
}

// engineAlgorithms maps each ConvAlgorithm to the engine's.
var engineAlgorithms = [...]engine.Algorithm{
	ConvAuto:        engine.Auto,
	ConvIm2col:      engine.Im2col,
	ConvWinograd:    engine.Winograd,
	ConvWinograd4x4: engine.Winograd4x4,
}

// OutputSize returns the height and width of the output for an input of
// h x w pixels: h x w, or h/2 x w/2 (rounded down) with pooling.
func (c *Conv) OutputSize(h, w int) (oh, ow int) { return c.e.OutputSize(h, w) }

// ForwardTo applies the layer to a batch of n images of In x h x w floats
// (In being the weights' input channels) stored one after another in x,
// writes the n x Out x oh x ow result (see OutputSize) into dst and
// returns dst. dst must not overlap x.
//
// ForwardTo panics if n, h or w is not positive, len(x) != n*In*h*w or
// len(dst) != n*Out*oh*ow, and on the im2col path with this package's
// BLAS if a band of rows is beyond its 32-bit offsets (In x 3 x (w+2)
// floats of 2^31 or more: rows millions of pixels wide).
func (c *Conv) ForwardTo(dst, x []float32, n, h, w int) []float32 {
	if n <= 0 || h <= 0 || w <= 0 {
		panic(fmt.Sprintf("style: Conv.ForwardTo: invalid batch shape n=%d h=%d w=%d", n, h, w))
	}
	in, out := c.e.In(), c.e.Out()
	if len(x) != n*in*h*w {
		panic(fmt.Sprintf("style: Conv.ForwardTo: input has %d values, want %d (n %d x in %d x %d x %d)", len(x), n*in*h*w, n, in, h, w))
	}
	oh, ow := c.OutputSize(h, w)
	if len(dst) != n*out*oh*ow {
		panic(fmt.Sprintf("style: Conv.ForwardTo: destination has %d values, want %d", len(dst), n*out*oh*ow))
	}
	c.e.Forward(dst, x, n, h, w, nil)
	return dst
}

// isPackageBLAS reports whether impl is this package's BLAS, whose
// kernels the convolution engines drive directly.
func isPackageBLAS(impl blas.Float32Level3) bool {
	switch impl.(type) {
	case BLAS, *BLAS:
		return true
	}
	return false
}

// ConvAlgorithm selects how a Conv computes the 3x3 convolution.
type ConvAlgorithm int

const (
	// ConvAuto, the zero value, picks per layer the fastest algorithm
	// whose error stays at float32 rounding level. With this package's
	// BLAS that is ConvWinograd4x4, or ConvWinograd for layers whose
	// F(4x4) weights would exceed 16 MiB (In x Out > 116,508, such as
	// VGG16's 512-channel layers, whose weights the products would stream
	// from memory once per band), and im2col for layers with fewer than 8
	// input channels (VGG16's first); with any other BLAS it is
	// ConvIm2col.
	ConvAuto ConvAlgorithm = iota
	// ConvIm2col lowers the convolution to one GEMM with K = 9 x In + 1
	// (the bias) per band of output rows. It is the reference: float32
	// accumulation over 9 x In products. On the VGG16 formula golden the
	// relative L2 error of the features against float64 PyTorch is about
	// 9e-7 with this package's BLAS (fused multiply-adds).
	ConvIm2col
	// ConvWinograd uses Winograd's minimal filtering F(2x2, 3x3) (Lavin and
	// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
	// each 2x2 output tile costs 16 products per input channel instead of
	// 36, as 16 GEMMs with K = In, 2.25x fewer multiply-adds than im2col.
	// The transforms only add, subtract and halve, and each GEMM sums
	// In products instead of 9 x In, so the error stays at im2col's level:
	// on the VGG16 formula golden the relative L2 error is about 8e-7.
	ConvWinograd
	// ConvWinograd4x4 uses Winograd's F(4x4, 3x3): each 4x4 output tile
	// costs 36 products per input channel instead of 144, 4x fewer
	// multiply-adds than im2col. Its transforms multiply by constants up
	// to 8 (and the weight transform divides by 24), so it rounds a little
	// more than F(2x2, 3x3): on the VGG16 formula golden the relative L2
	// error is 1.6e-6 to 1.9e-6 (tolerance 1e-4). It needs this package's
	// BLAS, whose kernel it drives directly; with another BLAS it computes
	// as ConvWinograd.
	ConvWinograd4x4
)

// String returns the algorithm's name.
func (a ConvAlgorithm) String() string {
	switch a {
	case ConvAuto:
		return "auto"
	case ConvIm2col:
		return "im2col"
	case ConvWinograd:
		return "winograd"
	case ConvWinograd4x4:
		return "winograd4x4"
	}
	return fmt.Sprintf("ConvAlgorithm(%d)", int(a))
}
