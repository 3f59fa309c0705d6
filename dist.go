package style

//go:generate go -C _gen run . -kernels dist -out ../dist_amd64.s -stubs ../dist_stubs_amd64.go -pkg style

import "fmt"

// distKernel computes the partial sums of sqDistBounded for 16
// consecutive catalogue items at once; see sqDist16Generic.
type distKernel struct {
	name string
	asm  int // which assembly kernel distAsm calls; 0 for sqDist16Generic
}

var distGeneric = distKernel{name: "generic"}

// distKernels lists the kernels usable on this machine, best first;
// distActive is the one in use. Both are set by init (dist_amd64.go,
// dist_other.go).
var (
	distKernels []distKernel
	distActive  distKernel
)

// useDistKernel makes the named kernel the active one, for tests, and
// returns a function restoring the previous one. It panics if the kernel
// is not available.
func useDistKernel(name string) (restore func()) {
	for _, k := range distKernels {
		if k.name == name {
			old := distActive
			distActive = k
			return func() { distActive = old }
		}
	}
	panic(fmt.Sprintf("style: distance kernel %q not available", name))
}

// sqDist16 sets out[4*j+r], for the 16 items x[j*stride:j*stride+len(q)]
// (0 <= j < 16), to the partial sum r of sqDistBounded over the first
// len(q)&^3 elements; sqDistFinish completes them. Items whose squared
// distance is found to exceed bound part way (checked every 32 elements,
// as sqDistBounded does) may be abandoned: bit j of the result is then
// set and out[4*j:4*j+4] is unspecified. A bound of +Inf abandons
// nothing. It panics if x is too short.
func sqDist16(q, x []float32, stride int, bound float32, out *[64]float32) uint32 {
	n4 := len(q) &^ 3
	if stride < len(q) || len(x) < 15*stride+len(q) {
		panic(fmt.Sprintf("style: sqDist16: %d floats for 16 items of stride %d and length %d", len(x), stride, len(q)))
	}
	if raceEnabled {
		raceReadFloat32s(q[:n4])
		for j := range 16 {
			raceReadFloat32s(x[j*stride : j*stride+n4])
		}
		raceWriteFloat32s(out[:])
	}
	if distActive.asm != 0 {
		return distAsm(distActive.asm, q, x, stride, bound, out)
	}
	return sqDist16Generic(q, x, stride, bound, out)
}

// sqDist16Generic is the reference of sqDist16 and of its assembly
// kernels: the four accumulators of sqDistBounded, element e going to
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

// sqDistFinish completes the partial sums p of sqDist16 for the item v
// into the value sqDistBounded(q, v, +Inf) returns: the last len(q)%4
// elements go to the first accumulator, then the four are added pairwise.
func sqDistFinish(q, v []float32, p []float32) float32 {
	s0, s1, s2, s3 := p[0], p[1], p[2], p[3]
	for e := len(q) &^ 3; e < len(q); e++ {
		d := q[e] - v[e]
		s0 += float32(d * d)
	}
	return (s0 + s1) + (s2 + s3)
}
