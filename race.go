//go:build race

package style

import (
	"runtime"
	"unsafe"
)

// raceEnabled reports whether the race detector is on. Assembly is not
// instrumented, so the Go code calling it reports the memory it reads and
// writes with raceReadFloat32s and raceWriteFloat32s.
const raceEnabled = true

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
