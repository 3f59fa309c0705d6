//go:build !race

package engine

// RaceEnabled reports whether the race detector is on.
const RaceEnabled = false

func raceReadFloat32s([]float32)             {}
func raceWriteFloat32s([]float32)            {}
func raceReadRows([]float32, int, int, int)  {}
func raceWriteRows([]float32, int, int, int) {}
