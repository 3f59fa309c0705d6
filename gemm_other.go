//go:build !amd64 || purego

package style

// init selects the pure-Go kernel, the only one on this architecture or
// under the purego build tag.
func init() {
	gemmKernels = []gemmKernel{gemmGeneric}
	gemmActive = gemmGeneric
}
