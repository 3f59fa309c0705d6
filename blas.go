package style

import "gonum.org/v1/gonum/blas"

// defaultBLAS returns the single-precision BLAS used by convolution and
// dense layers when the caller configures none: BLAS, whose Sgemm uses
// this package's packed kernels and whose other routines are gonum's.
func defaultBLAS() blas.Float32Level3 { return BLAS{} }
