//go:build !race

package style

// catalogRaceEnabled reports whether the race detector is on.
const catalogRaceEnabled = false
