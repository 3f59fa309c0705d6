//go:build !amd64 || purego

package engine

// winogradAsm lists no kernels: there are no assembly Winograd kernels
// on this architecture or under the purego build tag.
func winogradAsm() []impl[bool] { return nil }

func winograd4InputAsm([]float32, int, *[6][]float32, int) {
	panic("style: no assembly Winograd kernels")
}

func winograd4OutputAsm([]float32, int, []float32, int, int, float32, bool) {
	panic("style: no assembly Winograd kernels")
}

func winograd2InputAsm([]float32, int, *[4][]float32, int) {
	panic("style: no assembly Winograd kernels")
}

func winograd2OutputAsm([]float32, int, []float32, int, int, float32, bool) {
	panic("style: no assembly Winograd kernels")
}

func winograd4OutputPoolAsm([]float32, int, []float32, int, int, float32) {
	panic("style: no assembly Winograd kernels")
}
