package style

//go:generate go -C _gen run . -kernels optim -out ../optim_amd64.s -stubs ../optim_stubs_amd64.go -pkg style

// optimKernels are assembly versions of the optimizer's element-wise
// passes over the head's 3.2 million weights, which would otherwise cost
// about a third as much as the training step's matrix products. Each
// handles the first len &^ (block-1) elements; Go does the rest.
type optimKernels struct {
	name    string
	block   int
	rmsprop func(p, g, a []float32, lr, rho, rho1, eps float32)
	l2      func(g, w []float32, c float32) float64
}

// optimAsm is set by optim_amd64.go on CPUs with AVX-512F or AVX2 and
// FMA; its zero value (no kernels) means pure Go.
var optimAsm optimKernels

// rmsprop32 is rmspropUpdate for float32 with the bulk in assembly when
// available; the results are bit-identical (the same roundings in the
// same order, see genRMSProp in _gen).
func rmsprop32(p, g, a []float32, lr, rho, eps float64) {
	n := len(g)
	p, a = p[:n], a[:n]
	done := 0
	if optimAsm.rmsprop != nil {
		done = n &^ (optimAsm.block - 1)
		if raceEnabled {
			raceReadFloat32s(g[:done])
			raceReadFloat32s(a[:done])
			raceWriteFloat32s(a[:done])
			raceReadFloat32s(p[:done])
			raceWriteFloat32s(p[:done])
		}
		optimAsm.rmsprop(p, g, a, float32(lr), float32(rho), float32(1-rho), float32(eps))
	}
	rmspropUpdate(p[done:], g[done:], a[done:], lr, rho, eps)
}

// l2Penalty32 is l2Penalty for float32 with the bulk in assembly when
// available: the gradients are bit-identical, the penalty differs only in
// the order of its float64 additions.
func l2Penalty32(g, w []float32, l2 float64) float64 {
	if l2 == 0 {
		return 0
	}
	g = g[:len(w)]
	done := 0
	var s float64
	if optimAsm.l2 != nil {
		done = len(w) &^ (optimAsm.block - 1)
		if raceEnabled {
			raceReadFloat32s(w[:done])
			raceReadFloat32s(g[:done])
			raceWriteFloat32s(g[:done])
		}
		s = optimAsm.l2(g, w, float32(2*l2))
	}
	return l2*s + l2Penalty(g[done:], w[done:], l2)
}
