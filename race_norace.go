//go:build !race

package style

// raceEnabled reports whether the race detector is on.
const raceEnabled = false

func raceReadFloat32s([]float32)  {}
func raceWriteFloat32s([]float32) {}
