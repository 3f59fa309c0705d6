//go:build race

package ann

// raceEnabled reports whether the race detector is on; tests shrink their
// inputs under it.
const raceEnabled = true
