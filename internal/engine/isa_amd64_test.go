//go:build !purego

package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/cpu"
)

// TestGemmKernelSelection checks that the fastest kernel the CPU supports
// is active, so that GODEBUG=cpu.avx512f=off really tests the AVX2 path
// and GODEBUG=cpu.avx512f=off,cpu.avx2=off the pure-Go one.
func TestGemmKernelSelection(t *testing.T) {
	want := fmaLevel()
	avail := gemmKernels.available()
	assert.Equal(t, want, gemmKernels.activeISA, "active kernel")
	assert.Equal(t, want, avail[0].isa, "first of %d kernels", len(avail))
	assert.Equal(t, isaGeneric, avail[len(avail)-1].isa, "the last kernel is the generic fallback")
	t.Logf("kernels: %d, active: %v", len(avail), gemmKernels.activeISA)
}

// TestKernelSelection checks the start-up choice of the other families:
// the Winograd transforms need AVX-512F and BMI2, the distance kernels
// prefer AVX2 (see distAsmKernels), the optimizer passes take AVX-512F,
// else AVX2 with FMA.
func TestKernelSelection(t *testing.T) {
	wino := isaGeneric
	if cpu.X86.HasAVX512F && cpu.X86.HasBMI2 {
		wino = isaAVX512
	}
	dist := isaGeneric
	switch {
	case cpu.X86.HasAVX2:
		dist = isaAVX2
	case cpu.X86.HasAVX512F:
		dist = isaAVX512
	}
	optim := fmaLevel()
	assert.Equal(t, wino, winogradKernels.activeISA, "winograd")
	assert.Equal(t, wino == isaAVX512, winogradKernels.active, "winograd runs the assembly")
	assert.Equal(t, dist, distKernels.activeISA, "dist")
	assert.Equal(t, dist != isaGeneric, SqDist16Fast(), "dist runs the assembly")
	assert.Equal(t, optim, optimKernels.activeISA, "optim")
	assert.Equal(t, optim != isaGeneric, optimKernels.active.rmsprop != nil, "optim runs the assembly")
}

// TestForceGemmKernel checks the test hook on the GEMM and its restore
// function.
func TestForceGemmKernel(t *testing.T) {
	prev := gemmKernels.activeISA
	restore := ForceISA("generic")
	assert.Equal(t, isaGeneric, gemmKernels.activeISA, "after ForceISA(generic)")
	assert.Equal(t, 4, gemmKernels.active.mr, "the generic kernel's tile")
	restore()
	assert.Equal(t, prev, gemmKernels.activeISA, "after restore")
	assert.Panics(t, func() { ForceISA("unknown") })
}

// fmaLevel is the level of the families that take AVX-512F, else AVX2
// with FMA (gemm and optim).
func fmaLevel() isa {
	switch {
	case cpu.X86.HasAVX512F:
		return isaAVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return isaAVX2
	}
	return isaGeneric
}
