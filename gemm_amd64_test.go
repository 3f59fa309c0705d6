//go:build !purego

package style

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// TestGemmKernelSelection checks that the fastest kernel the CPU supports
// is active, so that GODEBUG=cpu.avx512f=off really tests the AVX2 path
// and GODEBUG=cpu.avx512f=off,cpu.avx2=off the pure-Go one.
func TestGemmKernelSelection(t *testing.T) {
	want := "generic"
	switch {
	case cpu.X86.HasAVX512F:
		want = "avx512"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		want = "avx2"
	}
	if gemmActive.name != want || gemmKernels[0].name != want {
		t.Errorf("active kernel %q (first of %d), want %q", gemmActive.name, len(gemmKernels), want)
	}
	if last := gemmKernels[len(gemmKernels)-1]; last.name != "generic" {
		t.Errorf("last kernel %q, want the generic fallback", last.name)
	}
	t.Logf("kernels: %d, active: %s", len(gemmKernels), gemmActive.name)
}

// TestUseGemmKernel checks the test hook and its restore function.
func TestUseGemmKernel(t *testing.T) {
	prev := gemmActive.name
	restore := useGemmKernel("generic")
	if gemmActive.name != "generic" {
		t.Fatalf("after useGemmKernel(generic) active is %q", gemmActive.name)
	}
	restore()
	if gemmActive.name != prev {
		t.Fatalf("after restore active is %q, want %q", gemmActive.name, prev)
	}
	defer func() {
		if recover() == nil {
			t.Error("useGemmKernel(unknown) did not panic")
		}
	}()
	useGemmKernel("unknown")
}
