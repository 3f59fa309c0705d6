package style

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// sgemmBenchShapes are the products of the VGG16 convolutions (im2col,
// out[Cout × HW] = W[Cout × Cin·9] · col[Cin·9 × HW], and the HW × Cout
// form) and of the 25,088 → 128 dense layer (forward, weight gradient).
var sgemmBenchShapes = []struct {
	name    string
	tA, tB  blas.Transpose
	m, n, k int
}{
	{"conv3_HWxCout", blas.NoTrans, blas.NoTrans, 3136, 256, 2304},
	{"conv4_HWxCout", blas.NoTrans, blas.NoTrans, 784, 512, 4608},
	{"conv2_HWxCout", blas.NoTrans, blas.NoTrans, 12544, 128, 1152},
	{"conv1_HWxCout", blas.NoTrans, blas.NoTrans, 50176, 64, 27},
	{"conv3_CoutxHW", blas.NoTrans, blas.NoTrans, 256, 3136, 2304},
	{"conv4_CoutxHW", blas.NoTrans, blas.NoTrans, 512, 784, 4608},
	{"conv2_CoutxHW", blas.NoTrans, blas.NoTrans, 128, 12544, 1152},
	{"conv1_CoutxHW", blas.NoTrans, blas.NoTrans, 64, 50176, 27},
	{"dense_fwd", blas.NoTrans, blas.NoTrans, 128, 128, 25088},
	{"dense_fwd_WT", blas.NoTrans, blas.Trans, 128, 128, 25088},
	{"dense_dW", blas.Trans, blas.NoTrans, 25088, 128, 128},
	{"dense_dX", blas.NoTrans, blas.Trans, 128, 25088, 128},
}

// BenchmarkSgemm reports GFLOP/s (2mnk per call) of BLAS.Sgemm with one
// worker and with GOMAXPROCS workers, and of gonum's Sgemm as a baseline.
// GFLOP/cpu-s divides by the CPU time the process used instead of wall
// time: on a shared, oversubscribed machine it shows the efficiency of
// the code per core (it includes the benchmark's own overhead, and time
// spent waiting at barriers does not count).
// Run a single shape with e.g. -bench 'Sgemm/conv3_HWxCout'.
func BenchmarkSgemm(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	impls := []struct {
		name string
		impl blas.Float32Level3
	}{
		{"style-w1", BLAS{Workers: 1}},
		{"style", BLAS{}},
		{"gonum", gonum.Implementation{}},
	}
	for _, sh := range sgemmBenchShapes {
		ar, ac := sh.m, sh.k
		if sh.tA == blas.Trans {
			ar, ac = ac, ar
		}
		br, bc := sh.k, sh.n
		if sh.tB == blas.Trans {
			br, bc = bc, br
		}
		a, bb := randSlice(r, ar*ac), randSlice(r, br*bc)
		c := make([]float32, sh.m*sh.n)
		for _, im := range impls {
			b.Run(fmt.Sprintf("%s/%s", sh.name, im.name), func(b *testing.B) {
				b.ReportAllocs()
				cpu0 := processCPUSeconds()
				for b.Loop() {
					im.impl.Sgemm(sh.tA, sh.tB, sh.m, sh.n, sh.k, 1, a, ac, bb, bc, 0, c, sh.n)
				}
				flop := 2 * float64(sh.m) * float64(sh.n) * float64(sh.k) * float64(b.N)
				b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				if cpu := processCPUSeconds() - cpu0; cpu > 0 {
					b.ReportMetric(flop/cpu/1e9, "GFLOP/cpu-s")
				}
			})
		}
	}
}

// BenchmarkSgemmKernel measures each micro-kernel alone on packed panels
// that stay in L1 (kc = 256), the ceiling for the blocked Sgemm on one
// core. Compare with the FMA peak: cores × GHz × 2 FMA units × 16 lanes ×
// 2 flops for AVX-512.
func BenchmarkSgemmKernel(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, kn := range gemmKernels {
		b.Run(kn.name, func(b *testing.B) {
			const kc = 256
			a, bb := randSlice(r, kc*kn.mr), randSlice(r, kc*kn.nr)
			c := make([]float32, kn.mr*kn.nr)
			cpu0 := processCPUSeconds()
			for b.Loop() {
				kn.call(kc, a, bb, c, kn.nr, 1, 1)
			}
			flop := 2 * float64(kn.mr*kn.nr*kc) * float64(b.N)
			b.ReportMetric(flop/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			if cpu := processCPUSeconds() - cpu0; cpu > 0 {
				b.ReportMetric(flop/cpu/1e9, "GFLOP/cpu-s")
			}
		})
	}
}
