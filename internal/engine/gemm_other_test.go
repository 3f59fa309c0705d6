//go:build !amd64 || purego

package engine

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestGemmKernelSelection checks that only the pure-Go kernel is used
// without assembly.
func TestGemmKernelSelection(t *testing.T) {
	assert.Len(t, gemmKernels.available(), 1)
	assert.Equal(t, isaGeneric, gemmKernels.activeISA)
	assert.Equal(t, []string{"generic"}, ISAs())
}
