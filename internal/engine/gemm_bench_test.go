package engine

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

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

// BenchmarkSgemm reports GFLOP/s (2mnk per call) of Sgemm with one worker
// ("style-w1") and with GOMAXPROCS workers ("style"), and of gonum's
// Sgemm as a baseline.
// After each call it runs the FMA-only peak loop for the same number of
// flops on as many goroutines as the call may use, and reports the call's
// speed as a percentage of that ("%peak"; absent without an assembly
// kernel): on a shared machine both see the same load, so %peak times the
// unloaded peak estimates the unloaded speed.
// Run a single shape with e.g. -bench 'Sgemm/conv3_HWxCout'.
func BenchmarkSgemm(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	impls := []struct {
		name    string
		impl    blas.Float32Level3
		workers int
	}{
		{"style-w1", sgemmBLAS{workers: 1}, 1},
		{"style", sgemmBLAS{}, runtime.GOMAXPROCS(0)},
		{"gonum", gonum.Implementation{}, runtime.GOMAXPROCS(0)},
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
				flop1 := 2 * float64(sh.m) * float64(sh.n) * float64(sh.k)
				var tc time.Duration
				var ratios []float64
				for b.Loop() {
					t0 := time.Now()
					im.impl.Sgemm(sh.tA, sh.tB, sh.m, sh.n, sh.k, 1, a, ac, bb, bc, 0, c, sh.n)
					t1 := time.Now()
					gemmPeakOn(im.workers, flop1)
					tc += t1.Sub(t0)
					ratios = append(ratios, time.Since(t1).Seconds()/t1.Sub(t0).Seconds())
				}
				b.ReportMetric(flop1*float64(b.N)/tc.Seconds()/1e9, "GFLOP/s")
				if gemmKernels.active.peak != nil {
					slices.Sort(ratios)
					b.ReportMetric(100*ratios[len(ratios)/2], "%peak")
				}
			})
		}
	}
}

// BenchmarkSgemmKernel measures each micro-kernel alone on packed panels
// of depth kc (the L1/L2-resident inner loop of Sgemm) on one core. On
// amd64 it interleaves the kernel with an FMA-only loop doing the same
// number of flops (sgemmPeakAVX512/AVX2) and reports the kernel's speed
// as a percentage of that peak ("%peak"), a measure that holds even when
// the machine is shared: both see the same load.
func BenchmarkSgemmKernel(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, im := range gemmKernels.available() {
		kn := im.k
		b.Run(im.isa.String(), func(b *testing.B) {
			kc := kn.kc
			a, bb := randSlice(r, kc*kn.mr), randSlice(r, kc*kn.nr)
			c := make([]float32, kn.mr*kn.nr)
			const calls = 8
			flop := 2 * kn.mr * kn.nr * kc * calls
			var tk, tp time.Duration
			var ratios []float64
			for b.Loop() {
				t0 := time.Now()
				for range calls {
					kn.call(kc, a, bb, c, kn.nr, 1, 1)
				}
				t1 := time.Now()
				if kn.peak != nil {
					kn.peak(flop / kn.peakFlops)
				}
				t2 := time.Now()
				tk += t1.Sub(t0)
				tp += t2.Sub(t1)
				ratios = append(ratios, t2.Sub(t1).Seconds()/t1.Sub(t0).Seconds())
			}
			total := float64(flop) * float64(b.N)
			b.ReportMetric(total/tk.Seconds()/1e9, "GFLOP/s")
			if kn.peak != nil {
				// The median of the per-iteration ratios ignores the
				// iterations in which the goroutine was descheduled.
				slices.Sort(ratios)
				b.ReportMetric(total/tp.Seconds()/1e9, "peak-GFLOP/s")
				b.ReportMetric(100*ratios[len(ratios)/2], "%peak")
			}
		})
	}
}

// gemmPeakOn runs the active kernel's FMA-only peak loop for flop flops
// split over workers goroutines, and does nothing if there is none.
func gemmPeakOn(workers int, flop float64) {
	kn := gemmKernels.active
	if kn.peak == nil {
		return
	}
	n := int(flop / float64(kn.peakFlops) / float64(workers))
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(func() { kn.peak(n) })
	}
	kn.peak(n)
	wg.Wait()
}

// sgemmBLAS is Sgemm behind gonum's interface, as the package style's
// BLAS puts it, for the benchmark table.
type sgemmBLAS struct {
	gonum.Implementation
	workers int
}

func (s sgemmBLAS) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Sgemm(IsTrans(tA), IsTrans(tB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, s.workers)
}
