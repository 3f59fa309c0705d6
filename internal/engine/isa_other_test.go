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

// TestKernelSelection checks that the other families run pure Go too.
func TestKernelSelection(t *testing.T) {
	assert.False(t, winogradKernels.active, "winograd runs no assembly")
	assert.False(t, SqDist16Fast(), "dist runs no assembly")
	assert.Nil(t, optimKernels.active.rmsprop, "optim runs no assembly")
	for _, f := range families {
		assert.Equal(t, []isa{isaGeneric}, f.levels())
	}
}
