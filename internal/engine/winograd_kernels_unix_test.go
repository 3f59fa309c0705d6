//go:build unix

package engine

import (
	"math"
	"math/rand/v2"
	"runtime/debug"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// winogradPageEnd returns a function giving slices of up to n floats that end
// exactly where a page that cannot be read or written begins, so that a
// kernel touching a float past the end of its inputs or outputs faults
// instead of reading a neighbour's memory unnoticed. The memory is
// unmapped when the test ends.
func winogradPageEnd(t *testing.T, n int) func(k int) []float32 {
	t.Helper()
	ps := unix.Getpagesize()
	size := (4*n + ps - 1) / ps * ps
	mem, err := unix.Mmap(-1, 0, size+ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, unix.Munmap(mem)) })
	require.NoError(t, unix.Mprotect(mem[size:], unix.PROT_NONE))
	all := unsafe.Slice((*float32)(unsafe.Pointer(&mem[0])), size/4)
	return func(k int) []float32 {
		if k > n {
			panic("winogradPageEnd: slice longer than the mapping")
		}
		return all[len(all)-k:]
	}
}

// winogradBits returns the bits of the floats of s, to compare results
// bit for bit.
func winogradBits(s []float32) []uint32 {
	b := make([]uint32, len(s))
	for i, x := range s {
		b[i] = math.Float32bits(x)
	}
	return b
}

// winogradNoFault runs f, failing the test if it faults.
func winogradNoFault(t *testing.T, what string, f func()) {
	t.Helper()
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if e := recover(); e != nil {
			t.Fatalf("%s: %v", what, e)
		}
	}()
	f()
}

// TestWinogradKernelsPageEnd runs every transform, on every ISA, with its
// input rows and its output ending at an inaccessible page: the tails of
// the runs must be read with masked loads and written with moves that
// stop at the last float (the results are compared with the Go
// references too).
func TestWinogradKernelsPageEnd(t *testing.T) {
	winogradEachISA(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(17, 18))
		var rows6 [6]func(int) []float32
		for k := range rows6 {
			rows6[k] = winogradPageEnd(t, 4*winograd4MaxRun+2)
		}
		vEnd := winogradPageEnd(t, 36*winograd4MaxRun)
		for n := 1; n <= winograd4MaxRun; n++ {
			var d6 [6][]float32
			for k := range d6 {
				d6[k] = rows6[k](4*n + 2)
				copy(d6[k], randSlice(r, 4*n+2))
			}
			want := make([]float32, 36*n)
			winograd4InputRunGeneric(want, n, &d6, n)
			v := vEnd(36 * n)
			winogradNoFault(t, "winograd4InputRun", func() { winograd4InputRun(v, n, &d6, n) })
			require.Equal(t, winogradBits(want), winogradBits(v), "winograd4InputRun n=%d", n)

			d4 := (*[4][]float32)(d6[:4])
			for k := range d4 {
				d4[k] = d4[k][2*n:]
			}
			want = want[:16*n]
			winogradInputRunGeneric(want, n, d4, n)
			v = vEnd(16 * n)
			winogradNoFault(t, "winogradInputRun", func() { winogradInputRun(v, n, d4, n) })
			require.Equal(t, winogradBits(want), winogradBits(v), "winogradInputRun n=%d", n)
		}

		const maxTiles = 70
		mEnd := winogradPageEnd(t, 36*maxTiles)
		yEnd := winogradPageEnd(t, 16*maxTiles)
		for n := 1; n <= maxTiles; n++ {
			m36 := mEnd(36 * n)
			copy(m36, randSlice(r, 36*n))
			m16 := m36[20*n:]
			bias := float32(r.NormFloat64())

			want := make([]float32, 16*n)
			winograd4OutputRunGeneric(want, 4*n, m36, n, n, bias, true)
			y := yEnd(16 * n)
			winogradNoFault(t, "winograd4OutputRun", func() { winograd4OutputRun(y, 4*n, m36, n, n, bias, true) })
			require.Equal(t, winogradBits(want), winogradBits(y), "winograd4OutputRun n=%d", n)

			want = want[:4*n]
			winograd4OutputPoolRunGeneric(want, 2*n, m36, n, n, bias)
			y = yEnd(4 * n)
			winogradNoFault(t, "winograd4OutputPoolRun", func() { winograd4OutputPoolRun(y, 2*n, m36, n, n, bias) })
			require.Equal(t, winogradBits(want), winogradBits(y), "winograd4OutputPoolRun n=%d", n)

			winograd2OutputRunGeneric(want, 2*n, m16, n, n, bias, false)
			winogradNoFault(t, "winograd2OutputRun", func() { winograd2OutputRun(y, 2*n, m16, n, n, bias, false) })
			require.Equal(t, winogradBits(want), winogradBits(y), "winograd2OutputRun n=%d", n)
		}
	})
}
