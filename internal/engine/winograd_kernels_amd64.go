//go:build !purego

package engine

// winogradAsm lists the assembly transforms of winograd_amd64.s, in order
// of preference: the AVX-512 kernels, 16 tiles per vector, which use
// AVX-512F and BZHI (BMI2) for the tail masks, and the AVX2 kernels, 8
// tiles per vector.
func winogradAsm() []impl[bool] {
	return []impl[bool]{
		{isa: isaAVX512, ok: hasAVX512F && hasBMI2, k: true},
		{isa: isaAVX2, ok: hasAVX2, k: true},
	}
}

// The functions below call the kernels of the active level (the
// dispatchers of winograd_kernels.go call them only when it is an
// assembly one). They call the kernels directly, not through function
// values, so that the slices they pass do not escape.

func winograd4InputAsm(v []float32, vstride int, d *[6][]float32, n int) {
	if winogradKernels.activeISA == isaAVX512 {
		winograd4InputAVX512(v, vstride, d, n)
		return
	}
	winograd4InputAVX2(v, vstride, d, n)
}

func winograd4OutputAsm(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool) {
	if winogradKernels.activeISA == isaAVX512 {
		winograd4OutputAVX512(y, ystride, m, mstride, n, bias, relu)
		return
	}
	winograd4OutputAVX2(y, ystride, m, mstride, n, bias, relu)
}

func winograd2InputAsm(v []float32, vstride int, d *[4][]float32, n int) {
	if winogradKernels.activeISA == isaAVX512 {
		winograd2InputAVX512(v, vstride, d, n)
		return
	}
	winograd2InputAVX2(v, vstride, d, n)
}

func winograd2OutputAsm(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool) {
	if winogradKernels.activeISA == isaAVX512 {
		winograd2OutputAVX512(y, ystride, m, mstride, n, bias, relu)
		return
	}
	winograd2OutputAVX2(y, ystride, m, mstride, n, bias, relu)
}

func winograd4OutputPoolAsm(y []float32, ystride int, m []float32, mstride, n int, bias float32) {
	if winogradKernels.activeISA == isaAVX512 {
		winograd4OutputPoolAVX512(y, ystride, m, mstride, n, bias)
		return
	}
	winograd4OutputPoolAVX2(y, ystride, m, mstride, n, bias)
}
