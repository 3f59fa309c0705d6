//go:build !amd64 || purego

package style

// init selects the pure-Go distance kernel, the only one on this
// architecture or under the purego build tag.
func init() {
	distKernels = []distKernel{distGeneric}
	distActive = distGeneric
}

// distAsm is never called: there are no assembly kernels here.
func distAsm(int, []float32, []float32, int, float32, *[64]float32) uint32 {
	panic("style: no assembly distance kernels")
}
