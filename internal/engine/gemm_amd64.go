//go:build !purego

package engine

// The assembly kernels, generated into gemm_amd64.s by _gen. Blocking,
// tuned on a 2-core Xeon (48 KiB L1d, 2 MiB L2 per core): mc×kc of packed
// A (672 KiB for AVX-512) stays in L2, the kc×nr micro-panel of B is
// swept through L1 and L2 and the kernel prefetches its C tile. kc = 512
// measured at least as fast as 256 and 384 (fewer passes over C) on a
// noisy shared machine; retune with BenchmarkSgemm. nc×kc of packed B is
// shared by the cores.
var (
	gemmAVX512 = gemmKernel{
		mr: 14, nr: 32, kc: 512, mc: 14 * 24, nc: 32 * 96,
		asm: true, fn: sgemmKernelAVX512, ind: sgemmKernelIndAVX512,
		peak: sgemmPeakAVX512, peakFlops: 24 * 32,
	}
	gemmAVX2 = gemmKernel{
		mr: 6, nr: 16, kc: 384, mc: 6 * 48, nc: 16 * 192,
		asm: true, fn: sgemmKernelAVX2, ind: sgemmKernelIndAVX2,
		peak: sgemmPeakAVX2, peakFlops: 12 * 16,
	}
)

// gemmAsm lists the assembly kernels in order of preference. The
// AVX-512 kernel uses only AVX-512F instructions.
func gemmAsm() []impl[gemmKernel] {
	return []impl[gemmKernel]{
		{isa: isaAVX512, ok: hasAVX512F, k: gemmAVX512},
		{isa: isaAVX2, ok: hasAVX2 && hasFMA, k: gemmAVX2},
	}
}
