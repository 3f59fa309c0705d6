//go:build !purego

package engine

// optimAsm lists the assembly passes: AVX-512F, and AVX2 with FMA (the
// L2 pass accumulates its float64 squares with fused multiply-adds; the
// RMSProp step uses no FMA).
func optimAsm() []impl[optimKernel] {
	return []impl[optimKernel]{
		{isa: isaAVX512, ok: hasAVX512F, k: optimKernel{block: 32, rmsprop: rmspropAVX512, l2: l2GradAVX512}},
		{isa: isaAVX2, ok: hasAVX2 && hasFMA, k: optimKernel{block: 16, rmsprop: rmspropAVX2, l2: l2GradAVX2}},
	}
}
