// Package splitmix maps integer keys to reproducible pseudo-random numbers
// with the SplitMix64 finaliser: the generated weights of every backbone
// come from it, so that a weight depends only on its position and a seed.
package splitmix

// Golden is SplitMix64's increment, 2^64 divided by the golden ratio.
const Golden = 0x9E3779B97F4A7C15

// Mix is SplitMix64's finaliser: it returns the output of the generator
// whose state, already incremented, is x.
func Mix(x uint64) uint64 {
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

// Unit maps key, mixed with a seed, to [0, 1) with 24 bits.
func Unit(key, mix uint64) float64 {
	return float64(Mix((key^mix)+Golden)>>40) / (1 << 24)
}
