//go:build !purego

package style

import "golang.org/x/sys/cpu"

// The assembly kernels, generated into gemm_amd64.s by _gen. Blocking:
// kc*nr floats of packed B (32 KiB for AVX-512) stay in the 48 KiB L1
// while mc×kc of packed A stays in L2; nc×kc of B is shared by the cores.
var (
	gemmAVX512 = gemmKernel{
		name: "avx512", mr: 14, nr: 32, kc: 256, mc: 14 * 24, nc: 32 * 96,
		asm: true, fn: sgemmKernelAVX512,
	}
	gemmAVX2 = gemmKernel{
		name: "avx2", mr: 6, nr: 16, kc: 256, mc: 6 * 32, nc: 16 * 192,
		asm: true, fn: sgemmKernelAVX2,
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
