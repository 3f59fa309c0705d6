package engine

import (
	"math"
	"math/rand/v2"
	"testing"
)

// FuzzSgemm compares Sgemm on the kernel this CPU uses (assembly on
// amd64) with the pure-Go kernel, for fuzzed sizes, transposes, strides,
// offsets, scalars and worker counts, and checks the guard regions of C.
// The two results may differ only by rounding: each is within gemmTol of
// the exact product, so they must agree within twice that.
func FuzzSgemm(f *testing.F) {
	f.Add(uint8(14), uint8(32), uint16(256), uint8(0), float32(1), float32(0), uint64(1))
	f.Add(uint8(15), uint8(33), uint16(257), uint8(3), float32(-0.5), float32(2), uint64(2))
	f.Fuzz(func(t *testing.T, m8, n8 uint8, k16 uint16, flags uint8, alpha, beta float32, seed uint64) {
		m, n, k := int(m8)%64, int(n8)%80, int(k16)%600
		aTrans, bTrans := flags&1 != 0, flags&2 != 0
		workers := 1 + int(flags>>2)%4
		pad := int(flags>>4) % 3
		off := int(flags>>6) % 4
		// Keep the scalars finite and moderate: with infinities the two
		// kernels may legitimately disagree on signs of zero products.
		fix := func(x float32) float32 {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) || math.Abs(float64(x)) > 1e3 {
				return 1
			}
			return x
		}
		alpha, beta = fix(alpha), fix(beta)

		r := rand.New(rand.NewPCG(seed, 7))
		ar, ac := m, k
		if aTrans {
			ar, ac = k, m
		}
		br, bc := k, n
		if bTrans {
			br, bc = n, k
		}
		lda, ldb, ldc := max(1, ac)+pad, max(1, bc)+pad, max(1, n)+pad
		a := randSlice(r, off+ar*lda)
		b := randSlice(r, off+br*ldb)
		c0 := make([]float32, off+m*ldc+11)
		for i := range c0 {
			c0[i] = gemmGuard
		}
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				c0[off+i*ldc+j] = float32(r.NormFloat64())
			}
		}
		run := func() []float32 {
			c := append([]float32(nil), c0...)
			Sgemm(aTrans, bTrans, m, n, k, alpha, a[off:], lda, b[off:], ldb, beta, c[off:], ldc, workers)
			return c
		}
		got := run()
		restore := gemmKernels.force(isaGeneric)
		want := run()
		restore()
		_, mag := gemmRef(aTrans, bTrans, m, n, k, alpha, a[off:], lda, b[off:], ldb, beta, c0[off:], ldc)
		for i := range got {
			ii, jj := (i-off)/ldc, (i-off)%ldc
			if i < off || ii >= m || jj >= n {
				if math.Float32bits(got[i]) != math.Float32bits(gemmGuard) {
					t.Fatalf("out-of-bounds write at c[%d] = %v", i, got[i])
				}
				continue
			}
			tol := 2 * gemmTol(k, mag[ii*n+jj])
			if d := math.Abs(float64(got[i]) - float64(want[i])); !(d <= tol) {
				t.Fatalf("%s C[%d][%d] = %v, generic %v (tol %.3g)", gemmKernels.activeISA, ii, jj, got[i], want[i], tol)
			}
		}
	})
}
