package style

import (
	"fmt"

	"github.com/stylespace/style/internal/engine"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// BLAS is a single-precision BLAS whose Sgemm is a packed, cache-blocked
// matrix multiplication with a register-tiled micro-kernel in assembly
// (AVX-512 or AVX2+FMA on amd64, chosen once at start-up; pure Go on other
// architectures and under the purego build tag). All other routines are
// gonum's, through the embedded gonum.Implementation.
//
// BLAS satisfies blas.Float32Level3, so it can be passed wherever this
// package accepts a BLAS, and any other gonum BLAS can be used instead.
// The zero value is ready to use. A BLAS value is safe for concurrent use.
type BLAS struct {
	gonum.Implementation

	// Workers is the number of goroutines one large Sgemm call may use.
	// Zero means runtime.GOMAXPROCS(0); negative makes Sgemm panic (and
	// NewConv return an error). Small products are computed serially
	// whatever the value. The result is bit-identical for any number of
	// workers.
	Workers int
}

var _ blas.Float32Level3 = BLAS{}

// Sgemm performs one of the matrix-matrix operations
//
//	C = alpha * A * B + beta * C
//	C = alpha * Aᵀ * B + beta * C
//	C = alpha * A * Bᵀ + beta * C
//	C = alpha * Aᵀ * Bᵀ + beta * C
//
// where A is an m×k or k×m row-major matrix with leading dimension lda, B
// is a k×n or n×k row-major matrix with leading dimension ldb, C is an m×n
// row-major matrix with leading dimension ldc, and alpha and beta are
// scalars. tA and tB specify whether A or B are transposed (ConjTrans is
// Trans). When beta is zero C is not read, so it may hold NaNs; when alpha
// is zero A and B are not read.
//
// Sgemm panics, with the same messages as gonum's Sgemm, on an illegal
// transpose, negative sizes, leading dimensions smaller than the row
// width, or slices too short for the given sizes; and, with a message
// starting "style: ", if impl.Workers is negative.
//
// Products use fused multiply-add on CPUs that have it, so results can
// differ from gonum's in the last bits; they do not depend on Workers.
func (impl BLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if impl.Workers < 0 {
		panic(fmt.Sprintf("style: BLAS.Sgemm: negative Workers %d", impl.Workers))
	}
	engine.Sgemm(engine.IsTrans(tA), engine.IsTrans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, impl.Workers)
}

// defaultBLAS returns the single-precision BLAS used by convolution and
// dense layers when the caller configures none: BLAS, whose Sgemm uses
// this package's packed kernels and whose other routines are gonum's.
func defaultBLAS() blas.Float32Level3 { return BLAS{} }

// blasWorkers returns the Workers setting of b and true if b is this
// package's BLAS, and 0 and false otherwise.
func blasWorkers(b blas.Float32Level3) (int, bool) {
	switch b := b.(type) {
	case BLAS:
		return b.Workers, true
	case *BLAS:
		if b != nil {
			return b.Workers, true
		}
	}
	return 0, false
}
