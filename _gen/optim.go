package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// genRMSProp generates one RMSProp step over n = len(g) &^ (2*lanes-1)
// elements, with exactly the operations and roundings of rmspropGeneric
// (optim.go), no fused multiply-add:
//
//	a[i] = rho*a[i] + (rho1*g[i])*g[i]
//	p[i] = p[i] - (lr*g[i]) / (sqrt(a[i]) + eps)
//
// VSQRTPS and VDIVPS round correctly, like the float32 square root and
// division of the Go loop.
func genRMSProp(name, isa string, lanes int, vec []VecPhysical) {
	TEXT(name, NOSPLIT, "func(p, g, a []float32, lr, rho, rho1, eps float32)")
	Pragma("noescape")
	Doc(
		fmt.Sprintf("%s applies one RMSProp step with %s to the first", name, isa),
		fmt.Sprintf("len(g) &^ %d elements of p, g and a (the caller checks the lengths):", 2*lanes-1),
		"",
		"\ta[i] = rho*a[i] + (rho1*g[i])*g[i]",
		"\tp[i] = p[i] - (lr*g[i]) / (sqrt(a[i]) + eps)",
		"",
		"rounding after every operation as rmspropGeneric in optim.go does.",
	)
	p := Load(Param("p").Base(), GP64())
	g := Load(Param("g").Base(), GP64())
	a := Load(Param("a").Base(), GP64())
	n := Load(Param("g").Len(), GP64())
	SHRQ(U8(log2(2*lanes)), n)
	lr, rho, rho1, eps := vec[0], vec[1], vec[2], vec[3]
	VBROADCASTSS(addr(Param("lr")), lr)
	VBROADCASTSS(addr(Param("rho")), rho)
	VBROADCASTSS(addr(Param("rho1")), rho1)
	VBROADCASTSS(addr(Param("eps")), eps)
	vb := 4 * lanes
	Label(name + "_loop")
	TESTQ(n, n)
	JE(LabelRef(name + "_done"))
	for u := 0; u < 2; u++ {
		gv, av, t, s := vec[4+4*u], vec[5+4*u], vec[6+4*u], vec[7+4*u]
		VMOVUPS(Mem{Base: g, Disp: u * vb}, gv)
		VMULPS(Mem{Base: a, Disp: u * vb}, rho, av) // rho*a
		VMULPS(gv, rho1, t)                         // rho1*g
		VMULPS(gv, t, t)                            // (rho1*g)*g
		VADDPS(t, av, av)                           // a
		VMOVUPS(av, Mem{Base: a, Disp: u * vb})
		VSQRTPS(av, s)
		VADDPS(eps, s, s) // sqrt(a)+eps
		VMULPS(gv, lr, t) // lr*g
		VDIVPS(s, t, t)   // (lr*g)/(sqrt(a)+eps)
		VMOVUPS(Mem{Base: p, Disp: u * vb}, av)
		VSUBPS(t, av, av) // p - step
		VMOVUPS(av, Mem{Base: p, Disp: u * vb})
	}
	ADDQ(U32(2*vb), p)
	ADDQ(U32(2*vb), g)
	ADDQ(U32(2*vb), a)
	DECQ(n)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// genL2 generates the L2 penalty's pass over the first
// len(w) &^ (2*lanes-1) weights: g[i] += c*w[i] (the product rounded,
// then the sum, as l2PenaltyGeneric in optim.go), and returns Σ w[i]²
// accumulated in float64 (each w[i] widened exactly; the lanes are summed
// at the end, so the order of the float64 additions differs from the Go
// loop's).
func genL2(name, isa string, lanes int, vec []VecPhysical) {
	TEXT(name, NOSPLIT, "func(g, w []float32, c float32) float64")
	Pragma("noescape")
	Doc(
		fmt.Sprintf("%s adds c*w[i] to g[i] with %s for the first len(w) &^ %d", name, isa, 2*lanes-1),
		"elements (the caller checks the lengths) and returns the sum of their",
		"squares in float64. See l2PenaltyGeneric in optim.go.",
	)
	g := Load(Param("g").Base(), GP64())
	w := Load(Param("w").Base(), GP64())
	n := Load(Param("w").Len(), GP64())
	SHRQ(U8(log2(2*lanes)), n)
	c := vec[0]
	VBROADCASTSS(addr(Param("c")), c)
	// Four float64 accumulators of lanes/2 doubles each.
	acc := []VecPhysical{vec[1], vec[2], vec[3], vec[4]}
	for _, r := range acc {
		VXORPD(r, r, r)
	}
	vb := 4 * lanes
	Label(name + "_loop")
	TESTQ(n, n)
	JE(LabelRef(name + "_done"))
	for u := 0; u < 2; u++ {
		wv, t, d := vec[5+3*u], vec[6+3*u], vec[7+3*u]
		VMOVUPS(Mem{Base: w, Disp: u * vb}, wv)
		VMULPS(wv, c, t)
		VADDPS(Mem{Base: g, Disp: u * vb}, t, t)
		VMOVUPS(t, Mem{Base: g, Disp: u * vb})
		// Widen the two halves and accumulate their squares.
		VCVTPS2PD(Mem{Base: w, Disp: u * vb}, d)
		VFMADD231PD(d, d, acc[2*u])
		VCVTPS2PD(Mem{Base: w, Disp: u*vb + vb/2}, d)
		VFMADD231PD(d, d, acc[2*u+1])
	}
	ADDQ(U32(2*vb), g)
	ADDQ(U32(2*vb), w)
	DECQ(n)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	VADDPD(acc[1], acc[0], acc[0])
	VADDPD(acc[3], acc[2], acc[2])
	VADDPD(acc[2], acc[0], acc[0])
	reduceSumPD(acc[0], vec[11], lanes/2)
	Store(acc[0].AsX(), ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// reduceSumPD adds the n doubles of v into its lowest element, using t as
// scratch (the same width as v).
func reduceSumPD(v, t VecPhysical, n int) {
	if n == 8 {
		VEXTRACTF64X4(U8(1), v, t.AsY())
		VADDPD(t.AsY(), v.AsY(), v.AsY())
		n = 4
	}
	if n == 4 {
		VEXTRACTF128(U8(1), v.AsY(), t.AsX())
		VADDPD(t.AsX(), v.AsX(), v.AsX())
	}
	VPERMILPD(U8(1), v.AsX(), t.AsX())
	VADDSD(t.AsX(), v.AsX(), v.AsX())
}

func log2(n int) int {
	k := 0
	for 1<<k < n {
		k++
	}
	return k
}

// genOptim generates optim_amd64.s.
func genOptim() {
	genRMSProp("rmspropAVX512", "AVX-512F", 16, zmm)
	genRMSProp("rmspropAVX2", "AVX", 8, ymm)
	genL2("l2GradAVX512", "AVX-512F", 16, zmm)
	genL2("l2GradAVX2", "AVX and FMA", 8, ymm)
}
