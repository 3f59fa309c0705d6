package engine

import "math"

//go:generate go -C ../../_gen run . -kernels optim -out ../internal/engine/optim_amd64.s -stubs ../internal/engine/optim_stubs_amd64.go -pkg engine

// The optimizer's element-wise passes over the head's 3.2 million
// weights, the RMSProp step and the L2 penalty, which would otherwise
// cost about a third as much as the training step's matrix products:
// on several cores, in fixed chunks, with the bulk of each chunk in
// assembly where the CPU allows.

// optimKernel is an assembly version of the two passes. Each handles the
// first len &^ (block-1) elements; Go does the rest.
type optimKernel struct {
	block   int
	rmsprop func(p, g, a []float32, lr, rho, rho1, eps float32)
	l2      func(g, w []float32, c float32) float64
}

// optimKernels is the kernel table of the passes (see isa.go); its
// generic entry, the zero optimKernel, means pure Go.
var optimKernels = newFamily("optim", append(optimAsm(), impl[optimKernel]{isa: isaGeneric, ok: true})...)

// optimChunk is the number of elements one goroutine updates at a time
// in the optimizer's passes. The chunks depend only on the length, so
// results do not depend on the number of goroutines.
const optimChunk = 1 << 16

// optimChunks calls f on the consecutive chunks of optimChunk elements of
// [0, n), spread over up to workers goroutines (resolved by Workers)
// when there are several chunks (the passes are bound by memory
// bandwidth, which one core does not saturate), and returns when all are
// done.
func optimChunks(n, workers int, f func(i, lo, hi int)) {
	For(Workers(workers), (n+optimChunk-1)/optimChunk, func(_, i int) {
		f(i, i*optimChunk, min(n, (i+1)*optimChunk))
	})
}

// RMSPropStep applies one RMSProp step with Keras' semantics to the
// parameters p, with gradients g and accumulators a (same lengths):
//
//	a = rho·a + (1-rho)·g²
//	p = p - lr·g / (sqrt(a) + eps)
//
// in float32, rounding after every operation (see rmspropGeneric), over
// chunks on up to workers goroutines (0 means GOMAXPROCS); the result
// does not depend on their number.
func RMSPropStep(p, g, a []float32, lr, rho, eps float64, workers int) {
	n := len(g)
	p, a = p[:n], a[:n]
	optimChunks(n, workers, func(_, lo, hi int) {
		rmsprop32(p[lo:hi], g[lo:hi], a[lo:hi], lr, rho, eps)
	})
}

// L2Penalty returns the penalty l2·Σw², summed in float64 per chunk and
// the chunks' sums added in chunk order, and, if g is not nil, adds its
// gradient to g (2·l2·w[i] to g[i], in float32), over chunks on up to
// workers goroutines (0 means GOMAXPROCS); the result does not depend on
// their number.
func L2Penalty(g, w []float32, l2 float64, workers int) float64 {
	if l2 == 0 {
		return 0
	}
	n := len(w)
	if g != nil {
		g = g[:n]
	}
	var small [64]float64
	parts := small[:0]
	if chunks := (n + optimChunk - 1) / optimChunk; chunks <= len(small) {
		parts = small[:chunks]
	} else {
		parts = make([]float64, chunks)
	}
	optimChunks(n, workers, func(i, lo, hi int) {
		if g == nil {
			parts[i] = l2Sum(w[lo:hi], l2)
		} else {
			parts[i] = l2Penalty32(g[lo:hi], w[lo:hi], l2)
		}
	})
	s := 0.0
	for _, v := range parts {
		s += v
	}
	return s
}

// rmsprop32 is rmspropGeneric with the bulk in assembly when available;
// the results are bit-identical (the same roundings in the same order,
// see genRMSProp in _gen).
func rmsprop32(p, g, a []float32, lr, rho, eps float64) {
	n := len(g)
	p, a = p[:n], a[:n]
	done := 0
	if kn := optimKernels.active; kn.rmsprop != nil {
		done = n &^ (kn.block - 1)
		if RaceEnabled {
			raceReadFloat32s(g[:done])
			raceReadFloat32s(a[:done])
			raceWriteFloat32s(a[:done])
			raceReadFloat32s(p[:done])
			raceWriteFloat32s(p[:done])
		}
		kn.rmsprop(p, g, a, float32(lr), float32(rho), float32(1-rho), float32(eps))
	}
	rmspropGeneric(p[done:], g[done:], a[done:], lr, rho, eps)
}

// l2Penalty32 is l2PenaltyGeneric with the bulk in assembly when
// available: the gradients are bit-identical, the penalty differs only in
// the order of its float64 additions.
func l2Penalty32(g, w []float32, l2 float64) float64 {
	if l2 == 0 {
		return 0
	}
	g = g[:len(w)]
	done := 0
	var s float64
	if kn := optimKernels.active; kn.l2 != nil {
		done = len(w) &^ (kn.block - 1)
		if RaceEnabled {
			raceReadFloat32s(w[:done])
			raceReadFloat32s(g[:done])
			raceWriteFloat32s(g[:done])
		}
		s = kn.l2(g, w, float32(2*l2))
	}
	return l2*s + l2PenaltyGeneric(g[done:], w[done:], l2)
}

// l2Sum returns the penalty l2·Σw² alone, for the loss without a
// gradient. It sums in the order of l2PenaltyGeneric.
func l2Sum(w []float32, l2 float64) float64 {
	var s float64
	for _, v := range w {
		s += float64(v) * float64(v)
	}
	return l2 * s
}

// rmspropGeneric is the reference of the RMSProp step and of its
// assembly: one step on p with gradient g and accumulator a, each
// operation rounded to float32.
func rmspropGeneric(p, g, a []float32, lr, rho, eps float64) {
	tr, tr1, tlr, teps := float32(rho), float32(1-rho), float32(lr), float32(eps)
	for i, gi := range g {
		ai := tr*a[i] + tr1*gi*gi
		a[i] = ai
		p[i] -= tlr * gi / (float32(math.Sqrt(float64(ai))) + teps)
	}
}

// l2PenaltyGeneric is the reference of the L2 pass and of its assembly:
// it adds the gradient of the penalty l2·Σw² to g and returns the
// penalty.
func l2PenaltyGeneric(g, w []float32, l2 float64) float64 {
	if l2 == 0 {
		return 0
	}
	var s float64
	c := float32(2 * l2)
	for i, v := range w {
		s += float64(v) * float64(v)
		g[i] += c * v
	}
	return l2 * s
}
