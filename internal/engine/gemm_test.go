package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Tolerance. Every element of C is a dot product of length k accumulated
// in float32 (with or without fused multiply-add, in blocks of kc), scaled
// by alpha and added to beta*C. The classical bound for recursive
// summation is |err| ≤ γ(k+2) · (|alpha|·Σ_p|a_ip·b_pj| + |beta·c_ij|),
// γ(n) ≈ n·u with u = 2⁻²⁴; we allow twice that, (k+2)·2⁻²³ times the
// magnitude sum, plus the smallest normal float32 for underflow. The
// reference is the same product computed in float64.
func gemmTol(k int, mag float64) float64 {
	return float64(k+2)*0x1p-23*mag + 0x1p-126
}

// gemmRef computes C = alpha*op(A)*op(B) + beta*C in float64 and the
// magnitude sum used by gemmTol, for the m×n block of c at stride ldc.
func gemmRef(aTrans, bTrans bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) (want, mag []float64) {
	want = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s, sm float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if aTrans {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if bTrans {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
				sm += math.Abs(float64(av) * float64(bv))
			}
			w := float64(alpha) * s
			mg := math.Abs(float64(alpha)) * sm
			if alpha == 0 {
				w, mg = 0, 0
			}
			if beta != 0 {
				cv := float64(beta) * float64(c[i*ldc+j])
				w += cv
				mg += math.Abs(cv)
			}
			want[i*n+j] = w
			mag[i*n+j] = mg
		}
	}
	return want, mag
}

// gemmGuard is the value filling the padding around and between the rows
// of C; any change to it is an out-of-bounds write.
var gemmGuard = math.Float32frombits(0x7fc0dead) // a NaN with a payload

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// gemmCase is one Sgemm call to check.
type gemmCase struct {
	aTrans, bTrans bool
	m, n, k        int
	alpha, beta    float32
	pad            int // extra leading dimension of A, B and C
	off            int // offset of A, B and C in their slices
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,m=%d,n=%d,k=%d,alpha=%v,beta=%v,pad=%d,off=%d",
		tc.aTrans, tc.bTrans, tc.m, tc.n, tc.k, tc.alpha, tc.beta, tc.pad, tc.off)
}

// checkGemm runs Sgemm with each number of workers on the same random
// data for tc and compares with the float64 reference, checking the guard
// regions of C.
func checkGemm(t *testing.T, r *rand.Rand, tc gemmCase, workers ...int) {
	t.Helper()
	m, n, k := tc.m, tc.n, tc.k
	ar, ac := m, k
	if tc.aTrans {
		ar, ac = k, m
	}
	br, bc := k, n
	if tc.bTrans {
		br, bc = n, k
	}
	lda := max(1, ac) + tc.pad
	ldb := max(1, bc) + tc.pad
	ldc := max(1, n) + tc.pad
	a := randSlice(r, tc.off+ar*lda)
	b := randSlice(r, tc.off+br*ldb)
	const guard = 37
	c0 := make([]float32, tc.off+m*ldc+guard)
	for i := range c0 {
		c0[i] = gemmGuard
	}
	cv := c0[tc.off:]
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			if tc.beta == 0 {
				cv[i*ldc+j] = float32(math.NaN()) // must not be read
			} else {
				cv[i*ldc+j] = float32(r.NormFloat64())
			}
		}
	}
	var want, mag []float64
	if tc.beta != 0 {
		want, mag = gemmRef(tc.aTrans, tc.bTrans, m, n, k, tc.alpha, a[tc.off:], lda, b[tc.off:], ldb, tc.beta, cv, ldc)
	} else {
		want, mag = gemmRef(tc.aTrans, tc.bTrans, m, n, k, tc.alpha, a[tc.off:], lda, b[tc.off:], ldb, 0, nil, ldc)
	}
	for _, w := range workers {
		c := append([]float32(nil), c0...)
		Sgemm(tc.aTrans, tc.bTrans, m, n, k, tc.alpha, a[tc.off:], lda, b[tc.off:], ldb, tc.beta, c[tc.off:], ldc, w)
		compareGemm(t, tc, c, want, mag, ldc)
	}
}

// compareGemm checks c (offset tc.off, stride ldc) against the reference
// and its guard regions.
func compareGemm(t *testing.T, tc gemmCase, c []float32, want, mag []float64, ldc int) {
	t.Helper()
	m, n, k := tc.m, tc.n, tc.k
	bad := 0
	for i := range c {
		ii, jj := (i-tc.off)/ldc, (i-tc.off)%ldc
		inside := i >= tc.off && ii < m && jj < n
		got := c[i]
		if !inside {
			if math.Float32bits(got) != math.Float32bits(gemmGuard) {
				t.Errorf("%v: out-of-bounds write at c[%d] = %v", tc, i, got)
				bad++
			}
		} else {
			w, tol := want[ii*n+jj], gemmTol(k, mag[ii*n+jj])
			if d := math.Abs(float64(got) - w); !(d <= tol) {
				t.Errorf("%v: C[%d][%d] = %v, want %v (|diff| %.3g > tol %.3g)", tc, ii, jj, got, w, d, tol)
				bad++
			}
		}
		if bad > 5 {
			t.FailNow()
		}
	}
}

// forEachGemmKernel runs f with Sgemm forced to each kernel this CPU has.
func forEachGemmKernel(t *testing.T, f func(t *testing.T, kn gemmKernel)) {
	for _, im := range gemmKernels.available() {
		t.Run(im.isa.String(), func(t *testing.T) {
			defer gemmKernels.force(im.isa)()
			f(t, im.k)
		})
	}
}

// TestSgemmEdges sweeps every size from 0 to 2 tiles (plus one) in each of
// M, N and K with the other two fixed, for all transposes, strides wider
// than the rows, non-zero offsets and alpha/beta in {0, 1, other}.
func TestSgemmEdges(t *testing.T) {
	forEachGemmKernel(t, func(t *testing.T, kn gemmKernel) {
		r := rand.New(rand.NewPCG(1, 1))
		ab := [][2]float32{{1, 0}, {1, 1}, {-0.5, 1.5}, {0, 0.25}, {2, 0}}
		var cases []gemmCase
		for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
			add := func(m, n, k int) {
				x := ab[len(cases)%len(ab)]
				cases = append(cases, gemmCase{
					aTrans: tr[0], bTrans: tr[1], m: m, n: n, k: k,
					alpha: x[0], beta: x[1],
					pad: len(cases) % 3, off: len(cases) % 5,
				})
			}
			for m := 0; m <= 2*kn.mr+1; m++ {
				add(m, kn.nr+3, 9)
			}
			for n := 0; n <= 2*kn.nr+1; n++ {
				add(kn.mr+1, n, 7)
			}
			for k := 0; k <= 2*kn.mr+1; k++ {
				add(2*kn.mr-1, 2*kn.nr-3, k)
			}
		}
		for _, tc := range cases {
			checkGemm(t, r, tc, 1)
		}
	})
}

// TestSgemmBlocks covers products larger than one block in every
// dimension (ragged K across several kc blocks, rows across several mc
// blocks, columns across nc blocks) with one and several workers.
func TestSgemmBlocks(t *testing.T) {
	forEachGemmKernel(t, func(t *testing.T, kn gemmKernel) {
		r := rand.New(rand.NewPCG(2, 2))
		cases := []gemmCase{
			{m: kn.mc + 2*kn.mr + 5, n: 2*kn.nr + 1, k: 2*kn.kc + 3, alpha: 1.5, beta: 0.5, pad: 1, off: 3},
			{aTrans: true, m: kn.mc + kn.mr + 1, n: 3*kn.nr - 1, k: kn.kc + 1, alpha: 1, beta: 0},
			{bTrans: true, m: 37, n: kn.nc + kn.nr + 7, k: 19, alpha: -1, beta: 1, pad: 2},
			{aTrans: true, bTrans: true, m: 3, n: 200, k: 3*kn.kc - 1, alpha: 0.5, beta: 0, off: 1},
			{m: 45, n: 128, k: 600, alpha: 1, beta: 0}, // small-M dense-layer shape
		}
		for _, tc := range cases {
			checkGemm(t, r, tc, 1, 2, 3)
		}
	})
}

// TestSgemmWorkersBitIdentical checks that the result has the same bits
// for any number of workers.
func TestSgemmWorkersBitIdentical(t *testing.T) {
	forEachGemmKernel(t, func(t *testing.T, kn gemmKernel) {
		r := rand.New(rand.NewPCG(3, 3))
		for _, sh := range [][3]int{{150, 100, 530}, {29, 700, 300}, {1000, 40, 64}} {
			m, n, k := sh[0], sh[1], sh[2]
			a, b := randSlice(r, m*k), randSlice(r, k*n)
			c0 := randSlice(r, m*n)
			var ref []float32
			for _, w := range []int{1, 2, 3, 4, 7} {
				c := append([]float32(nil), c0...)
				Sgemm(false, true, m, n, k, 1.25, a, k, b, k, 0.75, c, n, w)
				if ref == nil {
					ref = c
					continue
				}
				for i := range c {
					if math.Float32bits(c[i]) != math.Float32bits(ref[i]) {
						t.Fatalf("%dx%dx%d: Workers=%d differs from Workers=1 at %d: %v vs %v", m, n, k, w, i, c[i], ref[i])
					}
				}
			}
		}
	})
}

// TestSgemmKernelsMatchGeneric runs each micro-kernel directly on packed
// panels against sgemmKernelGeneric with the same tile, for depths 0..40
// and a few past the unrolling, with a C stride wider than the tile and
// guard values around it.
func TestSgemmKernelsMatchGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for _, im := range gemmKernels.available() {
		kn, name := im.k, im.isa.String()
		mr, nr := kn.mr, kn.nr
		for _, kc := range append([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 40}, 255, 256, 257) {
			for _, ab := range [][2]float32{{1, 0}, {1, 1}, {0.5, -2}, {0, 1}, {-3, float32(math.Copysign(0, -1))}} {
				alpha, beta := ab[0], ab[1]
				a, b := randSlice(r, kc*mr), randSlice(r, kc*nr)
				ldc := nr + 5
				c := make([]float32, 3+mr*ldc)
				for i := range c {
					c[i] = gemmGuard
				}
				want := append([]float32(nil), c...)
				for i := 0; i < mr; i++ {
					for j := 0; j < nr; j++ {
						v := float32(r.NormFloat64())
						if beta == 0 {
							v = float32(math.Inf(1)) // must not be read
						}
						c[3+i*ldc+j], want[3+i*ldc+j] = v, v
					}
				}
				c0 := append([]float32(nil), c...)
				kn.call(kc, a, b, c[3:], ldc, alpha, beta)
				sgemmKernelGeneric(mr, nr, kc, a, b, want[3:], ldc, alpha, beta)
				for i := range c {
					ii, jj := (i-3)/ldc, (i-3)%ldc
					if i < 3 || jj >= nr {
						if math.Float32bits(c[i]) != math.Float32bits(gemmGuard) {
							t.Fatalf("%s kc=%d: out-of-bounds write at %d", name, kc, i)
						}
						continue
					}
					// Both sides accumulate in float32 in the same order;
					// they differ only by fused multiply-add rounding.
					var mag float64
					for p := 0; p < kc; p++ {
						mag += math.Abs(float64(a[p*mr+ii]) * float64(b[p*nr+jj]))
					}
					mag = mag * math.Abs(float64(alpha))
					if beta != 0 {
						mag += math.Abs(float64(beta) * float64(c0[i]))
					}
					if d := math.Abs(float64(c[i]) - float64(want[i])); !(d <= gemmTol(kc, mag)) {
						t.Fatalf("%s kc=%d alpha=%v beta=%v: C[%d][%d] = %v, generic %v", name, kc, alpha, beta, ii, jj, c[i], want[i])
					}
				}
			}
		}
	}
}

// TestSgemmIndKernels runs each indirect micro-kernel (B rows read in
// place at b[off[p]:]) against the same kernel on a packed panel gathered
// from those rows, followed by the bias and ReLU in Go: they must agree
// bit for bit (the same fused multiply-adds in the same order, alpha = 1
// being exact, then one float32 addition and a max). Each is also
// checked against a float64 sum with the tolerance of
// TestSgemmKernelsMatchGeneric. The offsets are random, include the first
// and the last valid row start, and C is surrounded by guard values.
func TestSgemmIndKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, im := range gemmKernels.available() {
		kn, name := im.k, im.isa.String()
		mr, nr := kn.mr, kn.nr
		for _, kc := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 17, 27, 40, 255, 576} {
			for _, mode := range []struct {
				beta       float32
				bias, relu bool
			}{{0, false, false}, {1, false, false}, {0, true, false}, {1, true, true}, {0, false, true}} {
				beta := mode.beta
				var bias []float32
				if mode.bias {
					bias = randSlice(r, mr)
				}
				src := randSlice(r, 3*nr+kc)
				off := make([]int32, kc)
				maxOff := 0
				for p := range off {
					off[p] = int32(r.IntN(len(src) - nr + 1))
					switch p {
					case 0:
						off[p] = 0
					case 1:
						off[p] = int32(len(src) - nr)
					}
					maxOff = max(maxOff, int(off[p]))
				}
				a := randSlice(r, kc*mr)
				packed := make([]float32, kc*nr)
				for p, o := range off {
					copy(packed[p*nr:(p+1)*nr], src[o:int(o)+nr])
				}
				ldc := nr + 3
				c := make([]float32, 2+mr*ldc)
				for i := range c {
					c[i] = gemmGuard
				}
				c0 := make([]float32, len(c))
				for i := 0; i < mr; i++ {
					for j := 0; j < nr; j++ {
						v := float32(r.NormFloat64())
						if beta == 0 {
							v = float32(math.NaN()) // must not be read
						}
						c[2+i*ldc+j] = v
					}
				}
				copy(c0, c)
				want := append([]float32(nil), c...)
				kn.callInd(kc, a, src, off, maxOff, c[2:], ldc, beta, bias, mode.relu)
				kn.call(kc, a, packed, want[2:], ldc, 1, beta)
				for i := 0; i < mr; i++ {
					for j := 0; j < nr; j++ {
						v := want[2+i*ldc+j]
						if bias != nil {
							v += bias[i]
						}
						if mode.relu {
							v = max(v, 0)
						}
						want[2+i*ldc+j] = v
					}
				}
				for i := range c {
					ii, jj := (i-2)/ldc, (i-2)%ldc
					if i < 2 || jj >= nr {
						if math.Float32bits(c[i]) != math.Float32bits(gemmGuard) {
							t.Fatalf("%s kc=%d: out-of-bounds write at %d", name, kc, i)
						}
						continue
					}
					if math.Float32bits(c[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s kc=%d %+v: C[%d][%d] = %v indirect, %v packed", name, kc, mode, ii, jj, c[i], want[i])
					}
					var sum, mag float64
					for p, o := range off {
						v := float64(a[p*mr+ii]) * float64(src[int(o)+jj])
						sum += v
						mag += math.Abs(v)
					}
					if beta != 0 {
						sum += float64(c0[i])
						mag += math.Abs(float64(c0[i]))
					}
					if bias != nil {
						sum += float64(bias[ii])
						mag += math.Abs(float64(bias[ii]))
					}
					if mode.relu {
						sum = max(sum, 0)
					}
					if d := math.Abs(float64(c[i]) - sum); !(d <= gemmTol(kc, mag)) {
						t.Fatalf("%s kc=%d %+v: C[%d][%d] = %v, float64 sum %v", name, kc, mode, ii, jj, c[i], sum)
					}
				}
			}
		}
		// A too-short B is caught before the assembly runs.
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: callInd with maxOff past the end of b did not panic", name)
				}
			}()
			kn.callInd(1, make([]float32, mr), make([]float32, nr), []int32{1}, 1, make([]float32, mr*nr), nr, 0, nil, false)
		}()
	}
}

// TestSgemmSpecialScalars checks the BLAS conventions: alpha = 0 does not
// read A or B, beta = 0 does not read C, k = 0 scales C.
func TestSgemmSpecialScalars(t *testing.T) {
	nan := float32(math.NaN())
	a := []float32{nan, nan, nan, nan}
	b := []float32{nan, nan, nan, nan}
	c := []float32{1, 2, 3, 4}
	Sgemm(false, false, 2, 2, 2, 0, a, 2, b, 2, 2, c, 2, 0)
	if c[0] != 2 || c[1] != 4 || c[2] != 6 || c[3] != 8 {
		t.Errorf("alpha=0: got %v, want [2 4 6 8]", c)
	}
	c = []float32{nan, nan, nan, nan}
	Sgemm(false, false, 2, 2, 0, 1, make([]float32, 2), 1, nil, 2, 0, c, 2, 0)
	for _, v := range c {
		if v != 0 {
			t.Errorf("k=0, beta=0: got %v, want zeros", c)
			break
		}
	}
	a = []float32{1, 2, 3, 4}
	b = []float32{5, 6, 7, 8}
	c = []float32{nan, nan, nan, nan}
	Sgemm(false, false, 2, 2, 2, 1, a, 2, b, 2, 0, c, 2, 0)
	if c[0] != 19 || c[1] != 22 || c[2] != 43 || c[3] != 50 {
		t.Errorf("beta=0 with NaN C: got %v, want [19 22 43 50]", c)
	}
}

// TestSgemmAllocs checks that packing buffers are reused: a steady-state
// call makes a small, size-independent number of allocations (the
// per-call worker team and its closures), not one per block or task.
func TestSgemmAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, sh := range [][3]int{{200, 100, 300}, {128, 64, 3000}} {
		m, n, k := sh[0], sh[1], sh[2]
		a, b, c := randSlice(r, m*k), randSlice(r, k*n), make([]float32, m*n)
		for _, w := range []int{1, 2} {
			allocs := testing.AllocsPerRun(20, func() {
				Sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n, w)
			})
			if allocs > 16 {
				t.Errorf("%dx%dx%d, Workers=%d: %v allocations per call, want at most 16", m, n, k, w, allocs)
			}
		}
	}
}
