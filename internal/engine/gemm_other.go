//go:build !amd64 || purego

package engine

// gemmAsm lists no kernels: the pure-Go one is the only one on this
// architecture or under the purego build tag.
func gemmAsm() []impl[gemmKernel] { return nil }
