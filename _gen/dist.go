package main

import (
	"flag"
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// kernels selects what this run generates: "gemm" (gemm_amd64.s),
// "dist" (dist_amd64.s, the catalogue search kernels), "optim"
// (optim_amd64.s, the optimizer's element-wise passes) or "winograd"
// (winograd_amd64.s, the Winograd transform kernels).
var kernels = flag.String("kernels", "gemm", `kernels to generate: "gemm", "dist", "optim" or "winograd"`)

// genDist generates sqDist16AVX512, which computes the four partial sums
// of SqDistBounded (dist.go) for 16 consecutive catalogue items at
// once. The partial sum r of an item accumulates (q[e]-x[e])² over the
// e ≡ r (mod 4), in increasing e, each difference, square and sum
// rounded to float32 (VSUBPS, VMULPS, VADDPS: no fused multiply-add), so
// the sums are bit-identical to the Go loop's four accumulators.
//
// Register plan: the 128-bit lanes of one ZMM hold four items, lane r of
// each lane one partial sum; Z0–Z3 accumulate items 0–3, 4–7, 8–11 and
// 12–15, Z4–Z7 receive their data (one 128-bit load and three inserts
// each) and Z8 holds q[e:e+4] broadcast to the four lanes.
func genDist() {
	TEXT("sqDist16AVX512", NOSPLIT, "func(q, x []float32, stride int, bound float32, out *[64]float32) uint32")
	Pragma("noescape")
	Doc(
		"sqDist16AVX512 computes, with AVX-512F, for the 16 items",
		"x[j*stride : j*stride+len(q)&^3] (0 ≤ j < 16),",
		"",
		"\tout[4*j+r] = Σ_{e ≡ r mod 4, e < len(q)&^3} (q[e] - x[j*stride+e])²",
		"",
		"each sum accumulated in increasing e with float32 rounding after every",
		"subtraction, multiplication and addition. Every 32 elements, if",
		"(s0+s1)+(s2+s3) > bound for all 16 items, it stops and returns 0xffff",
		"(the items are abandoned, out is unspecified); otherwise it returns 0.",
		"The caller checks that x holds the 16 items. The reference is",
		"sqDist16Generic in dist.go.",
	)
	q := Load(Param("q").Base(), GP64())
	n := Load(Param("q").Len(), GP64())
	x := Load(Param("x").Base(), GP64())
	s := Load(Param("stride"), GP64())
	SHLQ(U8(2), s)
	s3 := GP64()
	LEAQ(Mem{Base: s, Index: s, Scale: 2}, s3)
	var base [4]Register
	base[0] = x
	for k := 1; k < 4; k++ {
		base[k] = GP64()
		LEAQ(Mem{Base: base[k-1], Index: s, Scale: 4}, base[k])
	}
	SHRQ(U8(2), n)

	acc := []VecPhysical{Z0, Z1, Z2, Z3}
	dat := []VecPhysical{Z4, Z5, Z6, Z7}
	qv := Z8
	bv := Z9
	VBROADCASTSS(addr(Param("bound")), bv)
	for _, r := range acc {
		VPXORD(r, r, r)
	}
	chunk := GP64()
	MOVQ(U32(8), chunk)
	Label("sqDist16_loop")
	TESTQ(n, n)
	JE(LabelRef("sqDist16_done"))
	VBROADCASTF32X4(Mem{Base: q}, qv)
	for k := 0; k < 4; k++ {
		b := base[k]
		VMOVUPS(Mem{Base: b}, dat[k].AsX())
		VINSERTF32X4(U8(1), Mem{Base: b, Index: s, Scale: 1}, dat[k], dat[k])
		VINSERTF32X4(U8(2), Mem{Base: b, Index: s, Scale: 2}, dat[k], dat[k])
		VINSERTF32X4(U8(3), Mem{Base: b, Index: s3, Scale: 1}, dat[k], dat[k])
	}
	for k := 0; k < 4; k++ {
		VSUBPS(dat[k], qv, dat[k])
	}
	for k := 0; k < 4; k++ {
		VMULPS(dat[k], dat[k], dat[k])
	}
	for k := 0; k < 4; k++ {
		VADDPS(dat[k], acc[k], acc[k])
	}
	ADDQ(U8(16), q)
	for k := 0; k < 4; k++ {
		ADDQ(U8(16), base[k])
	}
	DECQ(n)
	DECQ(chunk)
	JNZ(LabelRef("sqDist16_loop"))
	MOVQ(U32(8), chunk)
	Comment("Every 32 elements: stop if every item's (s0+s1)+(s2+s3) > bound.")
	ks := []Register{K1, K2, K3, K4}
	for k := 0; k < 4; k++ {
		t := dat[k]
		VPERMILPS(U8(0xb1), acc[k], t) // s1 s0 s3 s2
		VADDPS(acc[k], t, t)           // s0+s1 s0+s1 s2+s3 s2+s3
		VPERMILPS(U8(0x4e), t, qv)     // s2+s3 s2+s3 s0+s1 s0+s1
		VADDPS(qv, t, t)               // (s0+s1)+(s2+s3) in every lane
		VCMPPS(U8(0x1e), bv, t, ks[k]) // GT_OQ: false for NaN
	}
	KANDW(K2, K1, K1)
	KANDW(K4, K3, K3)
	KANDW(K3, K1, K1)
	KORTESTW(K1, K1)
	JCC(LabelRef("sqDist16_loop")) // CF is set only when all 16 bits are
	ret := GP32()
	MOVL(U32(0xffff), ret)
	Store(ret, ReturnIndex(0))
	VZEROUPPER()
	RET()

	Label("sqDist16_done")
	out := Load(Param("out"), GP64())
	for k := 0; k < 4; k++ {
		VMOVUPS(acc[k], Mem{Base: out, Disp: 64 * k})
	}
	zero := GP32()
	XORL(zero, zero)
	Store(zero, ReturnIndex(0))
	VZEROUPPER()
	RET()
}

// genDistAVX2 generates sqDist16AVX2, the same computation as
// sqDist16AVX512 with 256-bit vectors: each YMM holds two items, and the
// 16 items are done as two halves of 8 (Y0–Y3 accumulate, Y4–Y7 receive
// the data, Y8 holds q[e:e+4] twice).
func genDistAVX2() {
	TEXT("sqDist16AVX2", NOSPLIT, "func(q, x []float32, stride int, bound float32, out *[64]float32) uint32")
	Pragma("noescape")
	Doc(
		"sqDist16AVX2 computes, with AVX2, for the 16 items",
		"x[j*stride : j*stride+len(q)&^3] (0 ≤ j < 16),",
		"",
		"\tout[4*j+r] = Σ_{e ≡ r mod 4, e < len(q)&^3} (q[e] - x[j*stride+e])²",
		"",
		"each sum accumulated in increasing e with float32 rounding after every",
		"subtraction, multiplication and addition. The items are done in two",
		"halves of 8; every 32 elements, if (s0+s1)+(s2+s3) > bound for all",
		"items of the half, it abandons the half and sets its 8 bits (0xff or",
		"0xff00) in the result; out is unspecified for abandoned items. The caller",
		"checks that x holds the 16 items. The reference is sqDist16Generic in",
		"dist.go.",
	)
	s := Load(Param("stride"), GP64())
	SHLQ(U8(2), s)
	s3 := GP64()
	LEAQ(Mem{Base: s, Index: s, Scale: 2}, s3)
	out := Load(Param("out"), GP64())
	acc := []VecPhysical{Y0, Y1, Y2, Y3}
	dat := []VecPhysical{Y4, Y5, Y6, Y7}
	qv := Y8
	bv := Y9
	VBROADCASTSS(addr(Param("bound")), bv)
	mask := GP32()
	XORL(mask, mask)
	chunk := GP64()
	m0 := GP32()
	for half := 0; half < 2; half++ {
		q := Load(Param("q").Base(), GP64())
		n := Load(Param("q").Len(), GP64())
		SHRQ(U8(2), n)
		b0 := Load(Param("x").Base(), GP64())
		if half == 1 {
			// Items 8–15 start 8 strides further.
			LEAQ(Mem{Base: b0, Index: s, Scale: 8}, b0)
		}
		b1 := GP64()
		LEAQ(Mem{Base: b0, Index: s, Scale: 4}, b1)
		for _, r := range acc {
			VXORPS(r, r, r)
		}
		MOVQ(U32(8), chunk)
		loop := fmt.Sprintf("sqDist16AVX2_loop%d", half)
		done := fmt.Sprintf("sqDist16AVX2_done%d", half)
		next := fmt.Sprintf("sqDist16AVX2_next%d", half)
		Label(loop)
		TESTQ(n, n)
		JE(LabelRef(done))
		VBROADCASTF128(Mem{Base: q}, qv)
		for k := 0; k < 4; k++ {
			// dat[k] holds items 2k and 2k+1 of the half.
			b := b0
			if k >= 2 {
				b = b1
			}
			var lo, hi Mem
			if k%2 == 0 {
				lo, hi = Mem{Base: b}, Mem{Base: b, Index: s, Scale: 1}
			} else {
				lo, hi = Mem{Base: b, Index: s, Scale: 2}, Mem{Base: b, Index: s3, Scale: 1}
			}
			VMOVUPS(lo, dat[k].AsX())
			VINSERTF128(U8(1), hi, dat[k], dat[k])
		}
		for k := 0; k < 4; k++ {
			VSUBPS(dat[k], qv, dat[k])
		}
		for k := 0; k < 4; k++ {
			VMULPS(dat[k], dat[k], dat[k])
		}
		for k := 0; k < 4; k++ {
			VADDPS(dat[k], acc[k], acc[k])
		}
		ADDQ(U8(16), q)
		ADDQ(U8(16), b0)
		ADDQ(U8(16), b1)
		DECQ(n)
		DECQ(chunk)
		JNZ(LabelRef(loop))
		MOVQ(U32(8), chunk)
		Comment("Every 32 elements: abandon the half if every item's (s0+s1)+(s2+s3) > bound.")
		for k := 0; k < 4; k++ {
			t := dat[k]
			VPERMILPS(U8(0xb1), acc[k], t)
			VADDPS(acc[k], t, t)
			VPERMILPS(U8(0x4e), t, qv)
			VADDPS(qv, t, t)
			VCMPPS(U8(0x1e), bv, t, t) // GT_OQ: false for NaN
		}
		VANDPS(dat[1], dat[0], dat[0])
		VANDPS(dat[3], dat[2], dat[2])
		VANDPS(dat[2], dat[0], dat[0])
		VMOVMSKPS(dat[0], m0)
		CMPL(m0, U8(0xff))
		JNE(LabelRef(loop))
		ORL(U32(0xff<<(8*half)), mask)
		JMP(LabelRef(next))
		Label(done)
		for k := 0; k < 4; k++ {
			VMOVUPS(acc[k], Mem{Base: out, Disp: 128*half + 32*k})
		}
		Label(next)
	}
	Store(mask, ReturnIndex(0))
	VZEROUPPER()
	RET()
}
