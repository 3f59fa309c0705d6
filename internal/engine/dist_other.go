//go:build !amd64 || purego

package engine

// distAsmKernels lists no kernels: the pure-Go one is the only one on
// this architecture or under the purego build tag.
func distAsmKernels() []impl[int] { return nil }

// distAsm is never called: there are no assembly kernels here.
func distAsm(int, []float32, []float32, int, float32, *[64]float32) uint32 {
	panic("style: no assembly distance kernels")
}
