package engine

//go:generate go -C ../../_gen run . -kernels dist -out ../internal/engine/dist_amd64.s -stubs ../internal/engine/dist_stubs_amd64.go -pkg engine

import "fmt"

// The catalogue's distance kernels. SqDistBounded is the scalar loop of
// the exact search; SqDist16 computes its partial sums for 16 items at
// once, in assembly where the CPU allows (dist_amd64.go), and
// SqDistFinish completes them.

// distKernels is the kernel table of SqDist16 (see isa.go): its active
// value is the assembly kernel distAsm calls, or 0 for sqDist16Generic.
// On CPUs with both it prefers AVX2 to AVX-512 (see distAsmKernels).
var distKernels = newFamily("dist", append(distAsmKernels(), impl[int]{isa: isaGeneric, ok: true, k: 0})...)

// SqDist16Fast reports whether SqDist16 runs an assembly kernel. The
// pure-Go one is slower than SqDistBounded item by item (whose bound
// tightens after every item), so callers then scan item by item.
func SqDist16Fast() bool { return distKernels.active != 0 }

// SqDist16 sets out[4*j+r], for the 16 items x[j*stride:j*stride+len(q)]
// (0 <= j < 16), to the partial sum r of SqDistBounded over the first
// len(q)&^3 elements; SqDistFinish completes them. Items whose squared
// distance is found to exceed bound part way (checked every 32 elements,
// as SqDistBounded does) may be abandoned: bit j of the result is then
// set and out[4*j:4*j+4] is unspecified. A bound of +Inf abandons
// nothing. It panics if x is too short.
func SqDist16(q, x []float32, stride int, bound float32, out *[64]float32) uint32 {
	n4 := len(q) &^ 3
	if stride < len(q) || len(x) < 15*stride+len(q) {
		panic(fmt.Sprintf("style: SqDist16: %d floats for 16 items of stride %d and length %d", len(x), stride, len(q)))
	}
	if RaceEnabled {
		raceReadFloat32s(q[:n4])
		for j := range 16 {
			raceReadFloat32s(x[j*stride : j*stride+n4])
		}
		raceWriteFloat32s(out[:])
	}
	if distKernels.active != 0 {
		return distAsm(distKernels.active, q, x, stride, bound, out)
	}
	return sqDist16Generic(q, x, stride, bound, out)
}

// sqDist16Generic is the reference of SqDist16 and of its assembly
// kernels: the four accumulators of SqDistBounded, element e going to
// accumulator e mod 4 in increasing e, every product rounded to float32
// before it is added (no fused multiply-add), and the same early exit,
// item by item. (The assembly kernels abandon groups of 8 or 16 items
// only when all of them exceed the bound.)
func sqDist16Generic(q, x []float32, stride int, bound float32, out *[64]float32) uint32 {
	n4 := len(q) &^ 3
	var abandoned uint32
	for j := range 16 {
		v := x[j*stride : j*stride+n4 : j*stride+n4]
		var s0, s1, s2, s3 float32
		for e := 0; e < n4; e += 4 {
			a, b := q[e:e+4:e+4], v[e:e+4:e+4]
			d0 := a[0] - b[0]
			d1 := a[1] - b[1]
			d2 := a[2] - b[2]
			d3 := a[3] - b[3]
			s0 += float32(d0 * d0)
			s1 += float32(d1 * d1)
			s2 += float32(d2 * d2)
			s3 += float32(d3 * d3)
			if (e+4)%32 == 0 && (s0+s1)+(s2+s3) > bound {
				abandoned |= 1 << j
				break
			}
		}
		out[4*j], out[4*j+1], out[4*j+2], out[4*j+3] = s0, s1, s2, s3
	}
	return abandoned
}

// SqDistFinish completes the partial sums p of SqDist16 for the item v
// into the value SqDistBounded(q, v, +Inf) returns: the last len(q)%4
// elements go to the first accumulator, then the four are added pairwise.
func SqDistFinish(q, v []float32, p []float32) float32 {
	s0, s1, s2, s3 := p[0], p[1], p[2], p[3]
	for e := len(q) &^ 3; e < len(q); e++ {
		d := q[e] - v[e]
		s0 += float32(d * d)
	}
	return (s0 + s1) + (s2 + s3)
}

// SqDistBounded returns the squared Euclidean distance between a and b
// (len(b) >= len(a)), summed in float32 with four accumulators, and true;
// or, as soon as a partial sum exceeds bound, an unspecified value and
// false. The partial sums only grow, so an abandoned item is strictly
// farther than bound; an item that is not abandoned gets exactly the value
// SqDistBounded(a, b, +Inf) gives. The plain Go reference is
//
//	var s float32
//	for i := range a { d := a[i] - b[i]; s += d * d }
//
// up to the order of the additions.
func SqDistBounded(a, b []float32, bound float32) (float32, bool) {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	for len(a) >= 32 {
		x, y := a[:32:32], b[:32:32]
		for j := 0; j < 32; j += 8 {
			xx, yy := x[j:j+8:j+8], y[j:j+8:j+8]
			d0 := xx[0] - yy[0]
			d1 := xx[1] - yy[1]
			d2 := xx[2] - yy[2]
			d3 := xx[3] - yy[3]
			s0 += float32(d0 * d0)
			s1 += float32(d1 * d1)
			s2 += float32(d2 * d2)
			s3 += float32(d3 * d3)
			d0 = xx[4] - yy[4]
			d1 = xx[5] - yy[5]
			d2 = xx[6] - yy[6]
			d3 = xx[7] - yy[7]
			s0 += float32(d0 * d0)
			s1 += float32(d1 * d1)
			s2 += float32(d2 * d2)
			s3 += float32(d3 * d3)
		}
		if (s0+s1)+(s2+s3) > bound {
			return 0, false
		}
		a, b = a[32:], b[32:]
	}
	for len(a) >= 4 {
		x, y := a[:4:4], b[:4:4]
		d0 := x[0] - y[0]
		d1 := x[1] - y[1]
		d2 := x[2] - y[2]
		d3 := x[3] - y[3]
		s0 += float32(d0 * d0)
		s1 += float32(d1 * d1)
		s2 += float32(d2 * d2)
		s3 += float32(d3 * d3)
		a, b = a[4:], b[4:]
	}
	for i := range a {
		d := a[i] - b[i]
		s0 += float32(d * d)
	}
	s := (s0 + s1) + (s2 + s3)
	if s > bound {
		return 0, false
	}
	return s, true
}
