package style_test

import (
	"fmt"

	"github.com/stylespace/style"
	"gonum.org/v1/gonum/blas"
)

// BLAS is used like any gonum BLAS: here C = A·B for a 2×3 A and a 3×2 B,
// all row-major.
func ExampleBLAS() {
	a := []float32{
		1, 2, 3,
		4, 5, 6,
	}
	b := []float32{
		7, 8,
		9, 10,
		11, 12,
	}
	c := make([]float32, 2*2)
	var impl blas.Float32Level3 = style.BLAS{Workers: 1}
	impl.Sgemm(blas.NoTrans, blas.NoTrans, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2)
	fmt.Println(c)
	// Output: [58 64 139 154]
}
