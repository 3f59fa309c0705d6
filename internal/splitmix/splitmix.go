// Package splitmix maps integer keys to reproducible pseudo-random numbers
// with the SplitMix64 finaliser: the generated weights of every backbone
// come from it, so that a weight depends only on its position and a seed.
package splitmix

// Unit maps key, mixed with a seed, to [0, 1) with 24 bits.
func Unit(key, mix uint64) float64 {
	x := (key ^ mix) + 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	x ^= x >> 31
	return float64(x>>40) / (1 << 24)
}
