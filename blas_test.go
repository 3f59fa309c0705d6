package style

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// TestSgemmPanics checks that bad arguments panic with gonum's messages.
func TestSgemmPanics(t *testing.T) {
	s := make([]float32, 100)
	cases := []struct {
		name string
		f    func(impl blas.Float32Level3)
	}{
		{"transpose", func(i blas.Float32Level3) { i.Sgemm('X', blas.NoTrans, 2, 2, 2, 1, s, 2, s, 2, 0, s, 2) }},
		{"m<0", func(i blas.Float32Level3) { i.Sgemm(blas.NoTrans, blas.NoTrans, -1, 2, 2, 1, s, 2, s, 2, 0, s, 2) }},
		{"n<0", func(i blas.Float32Level3) { i.Sgemm(blas.NoTrans, blas.NoTrans, 2, -1, 2, 1, s, 2, s, 2, 0, s, 2) }},
		{"k<0", func(i blas.Float32Level3) { i.Sgemm(blas.NoTrans, blas.NoTrans, 2, 2, -1, 1, s, 2, s, 2, 0, s, 2) }},
		{"lda", func(i blas.Float32Level3) { i.Sgemm(blas.NoTrans, blas.NoTrans, 2, 2, 3, 1, s, 2, s, 2, 0, s, 2) }},
		{"ldaT", func(i blas.Float32Level3) { i.Sgemm(blas.Trans, blas.NoTrans, 3, 2, 2, 1, s, 2, s, 2, 0, s, 2) }},
		{"ldb", func(i blas.Float32Level3) { i.Sgemm(blas.NoTrans, blas.NoTrans, 2, 3, 2, 1, s, 2, s, 2, 0, s, 3) }},
		{"ldc", func(i blas.Float32Level3) { i.Sgemm(blas.NoTrans, blas.NoTrans, 2, 3, 2, 1, s, 2, s, 3, 0, s, 2) }},
		{"shortA", func(i blas.Float32Level3) { i.Sgemm(blas.NoTrans, blas.NoTrans, 20, 2, 10, 1, s, 10, s, 2, 0, s, 2) }},
		{"shortB", func(i blas.Float32Level3) { i.Sgemm(blas.NoTrans, blas.Trans, 2, 20, 10, 1, s, 10, s, 10, 0, s, 20) }},
		{"shortC", func(i blas.Float32Level3) { i.Sgemm(blas.NoTrans, blas.NoTrans, 11, 10, 2, 1, s, 2, s, 10, 0, s, 10) }},
	}
	catch := func(f func()) (msg any) {
		defer func() { msg = recover() }()
		f()
		return nil
	}
	for _, tc := range cases {
		got := catch(func() { tc.f(BLAS{}) })
		want := catch(func() { tc.f(gonum.Implementation{}) })
		assert.NotNil(t, got, tc.name)
		assert.Equal(t, want, got, tc.name)
	}
	// Negative Workers is a programmer error, even for a valid product.
	assert.PanicsWithValue(t, "style: BLAS.Sgemm: negative Workers -1", func() {
		BLAS{Workers: -1}.Sgemm(blas.NoTrans, blas.NoTrans, 2, 2, 2, 1, s, 2, s, 2, 0, s, 2)
	})
}

// TestDefaultBLASIsFast checks that the library's default BLAS is BLAS.
func TestDefaultBLASIsFast(t *testing.T) {
	assert.IsType(t, BLAS{}, defaultBLAS())
}
