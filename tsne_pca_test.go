package style

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/mat"
)

// TestPrincipalComponentsSubspace checks the subspace iteration used above
// pcaExactMaxDim against a full eigendecomposition of the covariance.
func TestPrincipalComponentsSubspace(t *testing.T) {
	const n, d = 300, 400
	rng := rand.New(rand.NewPCG(3, 4))
	// Data with decaying variances along random directions, centred.
	xc := mat.NewDense(n, d, nil)
	for c := range 6 {
		dir := make([]float64, d)
		for j := range dir {
			dir[j] = rng.NormFloat64()
		}
		scale := 10 / float64(c+1)
		for i := range n {
			a := scale * rng.NormFloat64()
			for j := range d {
				xc.Set(i, j, xc.At(i, j)+a*dir[j])
			}
		}
	}
	for i := range n {
		for j := range d {
			xc.Set(i, j, xc.At(i, j)+0.1*rng.NormFloat64())
		}
	}
	for j := range d {
		m := 0.0
		for i := range n {
			m += xc.At(i, j)
		}
		for i := range n {
			xc.Set(i, j, xc.At(i, j)-m/n)
		}
	}
	got := principalComponents(xc, 2)

	var cov mat.SymDense
	cov.SymOuterK(1, xc.T())
	var eig mat.EigenSym
	require.True(t, eig.Factorize(&cov, true), "reference eigendecomposition failed")
	var vecs mat.Dense
	eig.VectorsTo(&vecs)
	for a := range 2 {
		want := mat.Col(nil, d-1-a, &vecs)
		dot := 0.0
		for j := range d {
			dot += got[a][j] * want[j]
		}
		// Axes are defined up to sign; the leading variances are well
		// separated, so twelve steps give them to about 1e-9.
		assert.InDelta(t, 1, math.Abs(dot), 1e-8, "component %d: |cos|", a)
	}
}
