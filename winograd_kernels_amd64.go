//go:build !purego

package style

import "golang.org/x/sys/cpu"

// winogradAsm reports whether the Winograd transforms run the AVX-512
// kernels of winograd_amd64.s. x/sys/cpu honours GODEBUG settings such as
// cpu.avx512f=off, which turns them off. The kernels use AVX-512F and
// BZHI (BMI2) for the tail masks.
var winogradAsm = cpu.X86.HasAVX512F && cpu.X86.HasBMI2

func winograd4InputAsm(v []float32, vstride int, d *[6][]float32, n int) {
	winograd4InputAVX512(v, vstride, d, n)
}

func winograd4OutputAsm(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool) {
	winograd4OutputAVX512(y, ystride, m, mstride, n, bias, relu)
}

func winograd2InputAsm(v []float32, vstride int, d *[4][]float32, n int) {
	winograd2InputAVX512(v, vstride, d, n)
}

func winograd2OutputAsm(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool) {
	winograd2OutputAVX512(y, ystride, m, mstride, n, bias, relu)
}

func winograd4OutputPoolAsm(y []float32, ystride int, m []float32, mstride, n int, bias float32) {
	winograd4OutputPoolAVX512(y, ystride, m, mstride, n, bias)
}
