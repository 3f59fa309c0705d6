package style

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/blas"
)

// Dense is a fully connected layer with a ReLU activation:
//
//	y = max(0, x·W + b)
//
// for a batch of row vectors x. The kernel W has In rows and Out columns,
// stored row-major as Keras stores a Dense kernel: W[i*Out+j] connects input
// i to output j. B holds the Out biases.
//
// The batched forward and backward passes are matrix products through the
// BLAS field, so a faster SGEMM speeds up training and embedding directly.
// A Dense is safe for concurrent use by ForwardTo calls as long as nothing
// modifies W or B.
type Dense struct {
	In, Out int
	W       []float32          // kernel, In x Out row-major
	B       []float32          // bias, Out entries
	BLAS    blas.Float32Level3 // matrix products; nil means the package default
}

// NewDense returns a Dense layer with Glorot-uniform weights, drawn from
// U(-l, l) with l = sqrt(6/(in+out)) by a PCG generator seeded with seed,
// and zero biases, as Keras initialises a Dense layer. The same seed gives
// the same weights on every platform.
//
// NewDense panics if in or out is not positive.
func NewDense(in, out int, seed uint64) *Dense {
	if in <= 0 || out <= 0 {
		panic(fmt.Sprintf("style: NewDense: invalid size %d x %d", in, out))
	}
	d := &Dense{In: in, Out: out, W: make([]float32, in*out), B: make([]float32, out)}
	rng := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc908))
	limit := math.Sqrt(6 / float64(in+out))
	for i := range d.W {
		d.W[i] = float32(limit * (2*rng.Float64() - 1))
	}
	return d
}

func (d *Dense) blas() blas.Float32Level3 {
	if d.BLAS != nil {
		return d.BLAS
	}
	return defaultBLAS()
}

func (d *Dense) checkShape(fn string) {
	if d.In <= 0 || d.Out <= 0 || len(d.W) != d.In*d.Out || len(d.B) != d.Out {
		panic(fmt.Sprintf("style: Dense.%s: inconsistent layer: In %d, Out %d, len(W) %d, len(B) %d",
			fn, d.In, d.Out, len(d.W), len(d.B)))
	}
}

// batchOf returns the number of rows of a batch x of input vectors.
func (d *Dense) batchOf(fn string, x []float32) int {
	if len(x)%d.In != 0 {
		panic(fmt.Sprintf("style: Dense.%s: len(x) = %d is not a multiple of In = %d", fn, len(x), d.In))
	}
	return len(x) / d.In
}

// ForwardTo computes the layer's output for the batch x, n = len(x)/In
// row vectors of In floats, into dst (n x Out, row-major) and returns dst.
//
// ForwardTo panics if len(x) is not a multiple of In, if len(dst) is not
// n*Out, or if the layer's W and B do not have In*Out and Out values.
func (d *Dense) ForwardTo(dst, x []float32) []float32 {
	d.checkShape("ForwardTo")
	n := d.batchOf("ForwardTo", x)
	if len(dst) != n*d.Out {
		panic(fmt.Sprintf("style: Dense.ForwardTo: len(dst) = %d, want %d", len(dst), n*d.Out))
	}
	d.forward(d.blas(), dst, x, n, 1)
	return dst
}

// forward computes dst = ReLU(alpha·x·W + b) for n rows, with the matrix
// product on bl. alpha scales the input inside the matrix product
// (alpha = 1/scale for scaled features).
func (d *Dense) forward(bl blas.Float32Level3, dst, x []float32, n int, alpha float32) {
	if n == 0 {
		return
	}
	bl.Sgemm(blas.NoTrans, blas.NoTrans, n, d.Out, d.In, alpha, x, d.In, d.W, d.Out, 0, dst, d.Out)
	for r := 0; r < n; r++ {
		row := dst[r*d.Out : (r+1)*d.Out]
		for j, b := range d.B {
			v := row[j] + b
			if v < 0 {
				v = 0
			}
			row[j] = v
		}
	}
}

// BackwardTo computes the gradients of a loss through the layer for the
// batch x whose output y was computed by ForwardTo, given dy, the gradient
// of the loss with respect to y. It writes the kernel gradient x^T·dz into
// gradW (In x Out), the bias gradient (the column sums of dz) into gradB
// and, if gradX is not nil, the input gradient dz·W^T into gradX (n x In),
// where dz is dy masked by the ReLU (zero where y is 0). dy is overwritten
// with dz.
//
// BackwardTo panics if the lengths of the slices do not match the layer
// and the batch: gradW In*Out, gradB Out, gradX (unless nil) n*In, y and
// dy n*Out, with n = len(x)/In.
func (d *Dense) BackwardTo(gradW, gradB, gradX, x, y, dy []float32) {
	d.checkShape("BackwardTo")
	n := d.batchOf("BackwardTo", x)
	if len(y) != n*d.Out || len(dy) != n*d.Out || len(gradW) != d.In*d.Out || len(gradB) != d.Out ||
		(gradX != nil && len(gradX) != n*d.In) {
		panic("style: Dense.BackwardTo: slice lengths do not match the layer and the batch")
	}
	d.backward(d.blas(), gradW, gradB, gradX, x, y, dy, n, 1, 1)
}

// backward is BackwardTo for n rows whose input was scaled by alpha in the
// forward pass, with the matrix products on bl: gradW = alpha·x^T·dz and
// gradX = alpha·dz·W^T. The bias
// gradient is summed within each of strands equal blocks of rows and the
// block sums are then added, as autodiff accumulates the gradients of a
// layer applied to each strand of a siamese network: when the strands'
// gradients are exact negatives the sum is exactly zero.
func (d *Dense) backward(bl blas.Float32Level3, gradW, gradB, gradX, x, y, dy []float32, n, strands int, alpha float32) {
	for i := range dy[:n*d.Out] {
		if y[i] <= 0 {
			dy[i] = 0
		}
	}
	denseBiasGrad(gradB, dy, n, strands, d.Out)
	if n == 0 {
		clear(gradW)
		if gradX != nil {
			clear(gradX)
		}
		return
	}
	bl.Sgemm(blas.Trans, blas.NoTrans, d.In, d.Out, n, alpha, x, d.In, dy, d.Out, 0, gradW, d.Out)
	if gradX != nil {
		bl.Sgemm(blas.NoTrans, blas.Trans, n, d.In, d.Out, alpha, dy, d.Out, d.W, d.Out, 0, gradX, d.In)
	}
}

// learnFloat is the element type of the generic reference arithmetic: the
// float64 path that the float32 training path is checked against.
type learnFloat interface{ ~float32 | ~float64 }

// denseForwardRef is the reference loop for Dense.forward with alpha = 1:
// y = ReLU(x·w + b) for n rows, accumulated in T.
func denseForwardRef[T learnFloat](y, x, w, b []T, n, in, out int) {
	for r := 0; r < n; r++ {
		for j := 0; j < out; j++ {
			var s T
			for i := 0; i < in; i++ {
				s += x[r*in+i] * w[i*out+j]
			}
			s += b[j]
			if s < 0 {
				s = 0
			}
			y[r*out+j] = s
		}
	}
}

// denseBackwardRef is the reference loop for Dense.backward with alpha = 1.
// dy is overwritten with the ReLU-masked gradient; gx may be nil.
func denseBackwardRef[T learnFloat](gw, gb, gx, x, y, dy, w []T, n, strands, in, out int) {
	for i := range dy[:n*out] {
		if y[i] <= 0 {
			dy[i] = 0
		}
	}
	denseBiasGrad(gb, dy, n, strands, out)
	for i := 0; i < in; i++ {
		for j := 0; j < out; j++ {
			var s T
			for r := 0; r < n; r++ {
				s += x[r*in+i] * dy[r*out+j]
			}
			gw[i*out+j] = s
		}
	}
	if gx != nil {
		for r := 0; r < n; r++ {
			for i := 0; i < in; i++ {
				var s T
				for j := 0; j < out; j++ {
					s += dy[r*out+j] * w[i*out+j]
				}
				gx[r*in+i] = s
			}
		}
	}
}

// denseBiasGrad sets gb to the column sums of the n x out matrix dz, summed
// within each of strands equal blocks of rows, then over the blocks.
func denseBiasGrad[T learnFloat](gb, dz []T, n, strands, out int) {
	if strands < 1 || n%strands != 0 {
		panic("style: Dense: rows do not split into strands")
	}
	clear(gb)
	rows := n / strands
	for s := 0; s < strands; s++ {
		for j := range gb {
			var sum T
			for r := s * rows; r < (s+1)*rows; r++ {
				sum += dz[r*out+j]
			}
			gb[j] += sum
		}
	}
}
