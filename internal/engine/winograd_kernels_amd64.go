//go:build !purego

package engine

// winogradAsm lists the assembly transforms: the AVX-512 kernels of
// winograd_amd64.s, which use AVX-512F and BZHI (BMI2) for the tail
// masks.
func winogradAsm() []impl[bool] {
	return []impl[bool]{{isa: isaAVX512, ok: hasAVX512F && hasBMI2, k: true}}
}

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
