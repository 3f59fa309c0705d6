//go:build !purego

package style

import "golang.org/x/sys/cpu"

// The assembly kernels, generated into gemm_amd64.s by _gen. Blocking,
// tuned on a 2-core Xeon (48 KiB L1d, 2 MiB L2 per core): mc×kc of packed
// A (672 KiB for AVX-512) stays in L2, the kc×nr micro-panel of B is
// swept through L1 and L2 and the kernel prefetches its C tile. kc = 512
// measured at least as fast as 256 and 384 (fewer passes over C) on a
// noisy shared machine; retune with BenchmarkSgemm. nc×kc of packed B is
// shared by the cores.
var (
	gemmAVX512 = gemmKernel{
		name: "avx512", mr: 14, nr: 32, kc: 512, mc: 14 * 24, nc: 32 * 96,
		asm: true, fn: sgemmKernelAVX512, ind: sgemmKernelIndAVX512,
		peak: sgemmPeakAVX512, peakFlops: 24 * 32,
	}
	gemmAVX2 = gemmKernel{
		name: "avx2", mr: 6, nr: 16, kc: 384, mc: 6 * 48, nc: 16 * 192,
		asm: true, fn: sgemmKernelAVX2, ind: sgemmKernelIndAVX2,
		peak: sgemmPeakAVX2, peakFlops: 12 * 16,
	}
)

// init selects the kernels once. x/sys/cpu honours GODEBUG settings such
// as cpu.avx512f=off, which is how the AVX2 path is tested on AVX-512
// machines. The AVX-512 kernel uses only AVX-512F instructions.
func init() {
	if cpu.X86.HasAVX512F {
		gemmKernels = append(gemmKernels, gemmAVX512)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		gemmKernels = append(gemmKernels, gemmAVX2)
	}
	gemmKernels = append(gemmKernels, gemmGeneric)
	gemmActive = gemmKernels[0]
}
