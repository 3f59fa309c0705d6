//go:build race

package engine

import (
	"runtime"
	"unsafe"
)

// RaceEnabled reports whether the race detector is on. Assembly is not
// instrumented, so the Go code calling it reports the memory it reads and
// writes with raceReadFloat32s and raceWriteFloat32s. Tests use it to skip
// allocation counts, which the race detector's sync.Pool makes random.
const RaceEnabled = true

// raceReadFloat32s tells the race detector that s is read.
func raceReadFloat32s(s []float32) {
	if len(s) > 0 {
		runtime.RaceReadRange(unsafe.Pointer(&s[0]), len(s)*4)
	}
}

// raceWriteFloat32s tells the race detector that s is written.
func raceWriteFloat32s(s []float32) {
	if len(s) > 0 {
		runtime.RaceWriteRange(unsafe.Pointer(&s[0]), len(s)*4)
	}
}

// raceReadRows tells the race detector that rows rows of n floats, stride
// apart, are read from s.
func raceReadRows(s []float32, rows, stride, n int) {
	for r := range rows {
		raceReadFloat32s(s[r*stride : r*stride+n])
	}
}

// raceWriteRows tells the race detector that rows rows of n floats,
// stride apart, are written in s.
func raceWriteRows(s []float32, rows, stride, n int) {
	for r := range rows {
		raceWriteFloat32s(s[r*stride : r*stride+n])
	}
}
