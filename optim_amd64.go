//go:build !purego

package style

import "golang.org/x/sys/cpu"

// init selects the optimizer's element-wise assembly once: AVX-512F, else
// AVX2 with FMA (the L2 pass accumulates its float64 squares with fused
// multiply-adds; the RMSProp step uses no FMA). x/sys/cpu honours GODEBUG
// settings such as cpu.avx512f=off.
func init() {
	switch {
	case cpu.X86.HasAVX512F:
		optimAsm = optimKernels{name: "avx512", block: 32, rmsprop: rmspropAVX512, l2: l2GradAVX512}
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		optimAsm = optimKernels{name: "avx2", block: 16, rmsprop: rmspropAVX2, l2: l2GradAVX2}
	}
}
