//go:build !amd64 || purego

package style

import "testing"

// TestGemmKernelSelection checks that only the pure-Go kernel is used
// without assembly.
func TestGemmKernelSelection(t *testing.T) {
	if len(gemmKernels) != 1 || gemmActive.name != "generic" {
		t.Errorf("kernels %d, active %q; want only generic", len(gemmKernels), gemmActive.name)
	}
}
