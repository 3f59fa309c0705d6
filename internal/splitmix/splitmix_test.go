package splitmix

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestUnit pins the values: the golden networks were generated from them,
// so any change to the mixing changes every generated weight.
func TestUnit(t *testing.T) {
	seen := map[float64]bool{}
	for k := range uint64(1000) {
		u := Unit(k, 0x5EED)
		assert.True(t, u >= 0 && u < 1, "Unit(%d) = %v", k, u)
		assert.Equal(t, u, Unit(k, 0x5EED), "deterministic")
		seen[u] = true
	}
	assert.Greater(t, len(seen), 990, "distinct values")
	assert.NotEqual(t, Unit(1, 0), Unit(1, 1), "the mix changes the value")
	// SplitMix64's finaliser of the golden ratio increment: the first
	// output of the reference generator seeded with 0 is
	// 0xE220A8397B1DCDAF, whose top 24 bits are 0xE220A8.
	assert.Equal(t, float64(0xE220A8)/(1<<24), Unit(0, 0))
}

// TestMix: the finaliser of the reference generator's state after its
// first increment gives its first output.
func TestMix(t *testing.T) {
	assert.Equal(t, uint64(0xE220A8397B1DCDAF), Mix(Golden))
}
