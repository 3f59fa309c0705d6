package style

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// defaultBLAS returns the single-precision BLAS used by convolution and
// dense layers when the caller configures none.
func defaultBLAS() blas.Float32Level3 { return gonum.Implementation{} }
