package style

import (
	"runtime"
	"sync"
	"sync/atomic"
)

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

// optimChunk is the number of elements one goroutine updates at a time
// in the optimizer's passes. The chunks depend only on the length, so
// results do not depend on the number of goroutines.
const optimChunk = 1 << 16

// optimChunks calls f on the consecutive chunks of optimChunk elements of
// [0, n), spread over up to GOMAXPROCS goroutines when there are several
// chunks (the passes are bound by memory bandwidth, which one core does
// not saturate), and returns when all are done.
func optimChunks(n int, f func(i, lo, hi int)) {
	chunks := (n + optimChunk - 1) / optimChunk
	workers := min(runtime.GOMAXPROCS(0), chunks)
	if workers <= 1 {
		for i := range chunks {
			f(i, i*optimChunk, min(n, (i+1)*optimChunk))
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= chunks {
					return
				}
				f(i, i*optimChunk, min(n, (i+1)*optimChunk))
			}
		})
	}
	wg.Wait()
}

// rmspropParallel is rmsprop32 over chunks on several cores.
func rmspropParallel(p, g, a []float32, lr, rho, eps float64) {
	n := len(g)
	p, a = p[:n], a[:n]
	optimChunks(n, func(_, lo, hi int) {
		rmsprop32(p[lo:hi], g[lo:hi], a[lo:hi], lr, rho, eps)
	})
}

// l2PenaltyParallel is l2Penalty32 over chunks on several cores, the
// chunks' penalties added in chunk order.
func l2PenaltyParallel(g, w []float32, l2 float64) float64 {
	if l2 == 0 {
		return 0
	}
	n := len(w)
	g = g[:n]
	var small [64]float64
	parts := small[:0]
	if chunks := (n + optimChunk - 1) / optimChunk; chunks <= len(small) {
		parts = small[:chunks]
	} else {
		parts = make([]float64, chunks)
	}
	optimChunks(n, func(i, lo, hi int) {
		parts[i] = l2Penalty32(g[lo:hi], w[lo:hi], l2)
	})
	s := 0.0
	for _, v := range parts {
		s += v
	}
	return s
}

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
