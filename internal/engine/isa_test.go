package engine

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFamilyForce checks the kernel-table rules on a made-up family
// that prefers its AVX2 kernel to its AVX-512 one (as dist does): the
// preferred usable kernel is chosen at start, forcing a level takes the
// best kernel at or below it whatever the preference, a level the family
// lacks falls back to the next lower one, and restore undoes it.
func TestFamilyForce(t *testing.T) {
	f := newFamily("test",
		impl[string]{isa: isaAVX2, ok: true, k: "a2"},
		impl[string]{isa: isaAVX512, ok: true, k: "a512"},
		impl[string]{isa: isaGeneric, ok: true, k: "go"},
	)
	assert.Equal(t, "a2", f.active)
	for _, tc := range []struct {
		l    isa
		want string
	}{{isaAVX512, "a512"}, {isaAVX2, "a2"}, {isaGeneric, "go"}} {
		restore := f.force(tc.l)
		assert.Equal(t, tc.want, f.active, "forced %v", tc.l)
		assert.Equal(t, tc.l, f.activeISA)
		restore()
		assert.Equal(t, "a2", f.active, "restored after %v", tc.l)
	}

	// No AVX2 kernel, and an AVX-512 kernel the CPU cannot run.
	g := newFamily("test2",
		impl[string]{isa: isaAVX512, ok: false, k: "a512"},
		impl[string]{isa: isaGeneric, ok: true, k: "go"},
	)
	assert.Equal(t, "go", g.active)
	defer g.force(isaAVX512)()
	assert.Equal(t, "go", g.active)
	assert.Equal(t, []isa{isaGeneric}, g.levels())
	assert.Len(t, g.available(), 1)

	assert.Panics(t, func() { newFamily("bad", impl[string]{isa: isaAVX2, ok: true}) })
}

// TestForceISA checks the hook on the real families: under each listed
// ISA every family runs its best level at or below it, restore brings
// back the start-up choice, generic is always last, and an unknown name
// panics.
func TestForceISA(t *testing.T) {
	isas := ISAs()
	require.NotEmpty(t, isas)
	assert.Equal(t, "generic", isas[len(isas)-1])
	t.Logf("ISAs: %v", isas)
	before := activeLevels()
	for _, name := range isas {
		forced := isa(slices.Index(isaNames[:], name))
		restore := ForceISA(name)
		for i, f := range families {
			want := isaGeneric
			for _, l := range f.levels() {
				if l <= forced {
					want = max(want, l)
				}
			}
			assert.Equal(t, want, f.level(), "family %d under %s", i, name)
		}
		assert.Equal(t, gemmKernels.level().String(), GEMMISA(), "under %s", name)
		restore()
		assert.Equal(t, before, activeLevels(), "restored after %s", name)
	}
	assert.Panics(t, func() { ForceISA("sse2") })
}

// activeLevels returns the active level of every family.
func activeLevels() []isa {
	var out []isa
	for _, f := range families {
		out = append(out, f.level())
	}
	return out
}
