package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The Winograd F(4x4, 3x3) transform kernels (-kernels winograd, into
// winograd_amd64.s). Each vector lane handles one tile, 16 tiles per
// ZMM register, with the same operations in the same order as the Go
// references in winograd_kernels.go, each rounded to float32 (VADDPS,
// VSUBPS, VMULPS: no fused multiply-add), so the results are
// bit-identical to them. Multiplications by 2, 4 and 8 are exact and are
// done by doubling (x+x) where no register is free for a constant.
// Ragged tails use the mask BZHI(remaining, 0xffff) (remaining clamped to
// at most 16, as BZHI reads only the low byte of the bit index):
// masked-off lanes are neither loaded nor stored.

// winogradRowStride is the row stride, in floats, of the scratch t of
// winograd4InputAVX512: at least 4*32+2 columns, a multiple of 16.
const winogradRowStride = 144

// tailMask sets k to the lower min(rem, 16) bits (rem > 0), using tmp
// and ones (which holds 0xffff).
func tailMask(rem, ones, tmp, k Register) {
	BZHIL(rem, ones, tmp)
	KMOVW(tmp, k)
}

// genWinograd4Input generates winograd4InputAVX512.
//
// The row pass computes t = Bᵀ d, 16 columns at a time, into the local
// scratch t (6 rows of winogradRowStride floats): it loads the six rows
// into Z0–Z5 (masked: columns past 4n+2 read as zero), computes t into
// Z6–Z7 with the constants 4, 5 in Z8, Z9, and covers 64 columns per
// block of 16 patches plus 16 more, so that the column pass reads only
// computed values. The column pass, per block and row of t, loads its
// 64 columns into Z11–Z14 and de-interleaves them into the phases
// q_j[i] = t[4i+j] (j = 0..3) in Z0–Z3: VPERMPS sorts each vector by
// phase (Z10 holds the permutation), and VSHUFF32X4 transposes the 4x4
// grid of 128-bit lanes. q_4 and q_5 are q_0 and q_1 shifted by one
// patch (VALIGND), the last lanes taken from columns 64 and 65 (Z15,
// Z16). V goes out through Z6–Z7 with the tail mask K1.
func genWinograd4Input() {
	perm := GLOBL("winograd4PhasePerm", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		DATA(4*i, U32(4*(i%4)+i/4))
	}

	TEXT("winograd4InputAVX512", 0, "func(v []float32, vstride int, d *[6][]float32, n int)")
	Pragma("noescape")
	Doc(
		"winograd4InputAVX512 computes, with AVX-512F, the input transform of",
		"winograd4InputRunGeneric: V = Bᵀ P B of the n (1 ≤ n ≤ 32) consecutive",
		"6x6 patches P_i whose top-left corners are at columns 4i of the six rows",
		"d (4n+2 floats each), V_p of patch i going to v[p*vstride+i]. The caller",
		"checks the lengths.",
	)
	t := AllocLocal(6 * winogradRowStride * 4)
	tb := GP64()
	LEAQ(t, tb)
	dp := Load(Param("d"), GP64())
	var rows [6]Register
	for r := range rows {
		rows[r] = GP64()
		MOVQ(Mem{Base: dp, Disp: 24 * r}, rows[r])
	}
	n := GP64()
	Load(Param("n"), n)
	ones := GP32()
	MOVL(U32(0xffff), ones)
	tmp := GP32()
	c4, c5 := Z8, Z9
	MOVL(U32(0x40800000), tmp) // 4.0
	VPBROADCASTD(tmp, c4)
	MOVL(U32(0x40a00000), tmp) // 5.0
	VPBROADCASTD(tmp, c5)

	Comment("Row pass: t = Bᵀ d, 16 columns at a time, 4*ceil(n/16)+1 times.")
	rem := GP64()
	LEAQ(Mem{Base: n, Index: n, Scale: 2}, rem) // 3n
	ADDQ(n, rem)                                // 4n
	ADDQ(U8(2), rem)
	chunks := GP64()
	MOVQ(U32(5), chunks)
	CMPQ(n, U8(16))
	JLE(LabelRef("winograd4InputChunks"))
	MOVQ(U32(9), chunks)
	Label("winograd4InputChunks")
	zero := GP64()
	XORQ(zero, zero)
	off := GP64()
	XORQ(off, off)
	a := []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5}
	x, y := Z6, Z7
	Label("winograd4InputRow")
	TESTQ(rem, rem)
	CMOVQLT(zero, rem)
	tailMask(rem.As32(), ones, tmp, K1)
	for r := 0; r < 6; r++ {
		VMOVUPS_Z(Mem{Base: rows[r], Index: off, Scale: 1}, K1, a[r])
	}
	store := func(r int) {
		VMOVUPS(x, Mem{Base: tb, Index: off, Scale: 1, Disp: 4 * winogradRowStride * r})
	}
	bt(a, x, y, c4, c5, store)
	ADDQ(U8(64), off)
	SUBQ(U8(16), rem)
	DECQ(chunks)
	JNZ(LabelRef("winograd4InputRow"))

	Comment("Column pass: V = t B, 16 patches at a time (at most two blocks).")
	vp := Load(Param("v").Base(), GP64())
	vs := Load(Param("vstride"), GP64())
	SHLQ(U8(2), vs)
	VMOVDQU32(perm, Z10)
	q := []VecPhysical{Z0, Z1, Z2, Z3, Z4, Z5}
	T := []VecPhysical{Z11, Z12, Z13, Z14}
	x64, x65 := Z15, Z16
	p := GP64()
	for b := 0; b < 2; b++ {
		if b == 1 {
			SUBQ(U8(16), n)
			JLE(LabelRef("winograd4InputDone"))
		}
		tailMask(n.As32(), ones, tmp, K1)
		LEAQ(Mem{Base: vp, Disp: 64 * b}, p)
		for r := 0; r < 6; r++ {
			col := func(c int) Mem {
				return Mem{Base: tb, Disp: 4 * (r*winogradRowStride + 64*b + c)}
			}
			for k := range T {
				VPERMPS(col(16*k), Z10, T[k])
			}
			// Lanes: T[k] = [phase 0 | 1 | 2 | 3] of patches 4k..4k+3.
			VSHUFF32X4(U8(0x44), T[1], T[0], q[0])
			VSHUFF32X4(U8(0xee), T[1], T[0], q[1])
			VSHUFF32X4(U8(0x44), T[3], T[2], q[2])
			VSHUFF32X4(U8(0xee), T[3], T[2], q[3])
			VSHUFF32X4(U8(0x88), q[2], q[0], T[0])
			VSHUFF32X4(U8(0xdd), q[2], q[0], T[1])
			VSHUFF32X4(U8(0x88), q[3], q[1], T[2])
			VSHUFF32X4(U8(0xdd), q[3], q[1], T[3])
			VMOVUPS(col(64), x64)
			VALIGND(U8(1), x64, x64, x65)
			VALIGND(U8(1), T[0], x64, q[4])
			VALIGND(U8(1), T[1], x65, q[5])
			bt([]VecPhysical{T[0], T[1], T[2], T[3], q[4], q[5]}, x, y, c4, c5, func(int) {
				VMOVUPS(x, K1, Mem{Base: p})
				ADDQ(vs, p)
			})
		}
	}
	Label("winograd4InputDone")
	VZEROUPPER()
	RET()
}

// bt computes the six rows of Bᵀ a into x, in order, calling store(r)
// after row r, with the same operations as winograd4InputRunGeneric:
//
//	t0 = 4*a0 - 5*a2 + a4
//	t1 = a3 + a4 - 4*(a1+a2)
//	t2 = 4*(a1-a2) + a4 - a3
//	t3 = 2*(a3-a1) + a4 - a2
//	t4 = 2*(a1-a3) + a4 - a2
//	t5 = 4*a1 - 5*a3 + a5
//
// (Go asm order: VSUBPS b, a, d sets d = a - b.)
func bt(a []VecPhysical, x, y, c4, c5 VecPhysical, store func(r int)) {
	VMULPS(c4, a[0], x)
	VMULPS(c5, a[2], y)
	VSUBPS(y, x, x)
	VADDPS(a[4], x, x)
	store(0)
	VADDPS(a[4], a[3], x)
	VADDPS(a[2], a[1], y)
	VMULPS(c4, y, y)
	VSUBPS(y, x, x)
	store(1)
	VSUBPS(a[2], a[1], x)
	VMULPS(c4, x, x)
	VADDPS(a[4], x, x)
	VSUBPS(a[3], x, x)
	store(2)
	VSUBPS(a[1], a[3], x)
	VADDPS(x, x, x)
	VADDPS(a[4], x, x)
	VSUBPS(a[2], x, x)
	store(3)
	VSUBPS(a[3], a[1], x)
	VADDPS(x, x, x)
	VADDPS(a[4], x, x)
	VSUBPS(a[2], x, x)
	store(4)
	VMULPS(c4, a[1], x)
	VMULPS(c5, a[3], y)
	VSUBPS(y, x, x)
	VADDPS(a[5], x, x)
	store(5)
}

// genWinograd4Output generates winograd4OutputAVX512, or with pool
// winograd4OutputPoolAVX512, which always applies ReLU and then max-pools
// each 4x4 tile into 2x2 (VMAXPS, which on values that ReLU has made
// non-negative gives the same bits as Go's max).
//
// Register plan: for each column k of the 6x6 products, Z0–Z5 receive
// M rows k, 6+k, ..., 30+k and become temporaries; t = Aᵀ M (4x6) is
// kept in Z6–Z29 (t[r][k] in Z(6+6r+k)); then each row of Y = t A is
// computed into Z0–Z3 (temporaries Z4, Z5), transposed into tile order
// and stored with the masks K2–K5 (K1 masks the loads). Z30 holds the bias, Z31 zero (ReLU is
// VPMAXSD with 0, which clears exactly the values with the sign bit set,
// as relu32 does).
func genWinograd4Output(pool bool) {
	name := "winograd4OutputAVX512"
	if pool {
		name = "winograd4OutputPoolAVX512"
		TEXT(name, NOSPLIT, "func(y []float32, ystride int, m []float32, mstride, n int, bias float32)")
		Pragma("noescape")
		Doc(
			"winograd4OutputPoolAVX512 computes, with AVX-512F, the output transform",
			"of winograd4OutputPoolRunGeneric: for the n tiles g, Y = Aᵀ M A + bias",
			"of M_p = m[p*mstride+g] (p = 6i+j), ReLU, and the 2x2 max-pool P of Y,",
			"P[a][b] going to y[a*ystride+2g+b]. The caller checks the lengths.",
		)
	} else {
		TEXT(name, NOSPLIT, "func(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool)")
		Pragma("noescape")
		Doc(
			"winograd4OutputAVX512 computes, with AVX-512F, the output transform of",
			"winograd4OutputRunGeneric: for the n tiles g, Y = Aᵀ M A + bias of",
			"M_p = m[p*mstride+g] (p = 6i+j), with ReLU if relu, Y[r][c] going to",
			"y[r*ystride+4g+c]. The caller checks the lengths.",
		)
	}
	yp := Load(Param("y").Base(), GP64())
	ys := Load(Param("ystride"), GP64())
	SHLQ(U8(2), ys)
	mp := Load(Param("m").Base(), GP64())
	ms := Load(Param("mstride"), GP64())
	SHLQ(U8(2), ms)
	s6 := GP64()
	LEAQ(Mem{Base: ms, Index: ms, Scale: 2}, s6) // 3 rows
	ADDQ(s6, s6)                                 // 6 rows
	s18 := GP64()
	LEAQ(Mem{Base: s6, Index: s6, Scale: 2}, s18)
	n := GP64()
	Load(Param("n"), n)
	bias, zero := Z30, Z31
	VBROADCASTSS(addr(Param("bias")), bias)
	VPXORD(zero, zero, zero)
	var relu Register
	if !pool {
		relu = Load(Param("relu"), GP8())
	}
	ones, tmp := GP32(), GP32()
	MOVL(U32(0xffff), ones)
	allOnes, tmp64 := GP64(), GP64()
	MOVQ(I32(-1), allOnes)
	TESTQ(n, n)
	JLE(LabelRef(name + "Done"))
	base, base2, p := GP64(), GP64(), GP64()
	T := func(r, k int) VecPhysical { return zmm[6+6*r+k] }
	z := zmm[:6]

	Label(name + "Loop")
	// BZHI looks at the low 8 bits of the index only: clamp it to 16.
	sixteen := GP64()
	MOVQ(U32(16), sixteen)
	MOVQ(n, tmp64)
	CMPQ(tmp64, sixteen)
	CMOVQGT(sixteen, tmp64)
	tailMask(tmp64.As32(), ones, tmp, K1)
	MOVQ(mp, base)
	for k := 0; k < 6; k++ {
		if k > 0 {
			ADDQ(ms, base)
		}
		LEAQ(Mem{Base: base, Index: s18, Scale: 1}, base2)
		VMOVUPS_Z(Mem{Base: base}, K1, z[0])
		VMOVUPS_Z(Mem{Base: base, Index: s6, Scale: 1}, K1, z[1])
		VMOVUPS_Z(Mem{Base: base, Index: s6, Scale: 2}, K1, z[2])
		VMOVUPS_Z(Mem{Base: base2}, K1, z[3])
		VMOVUPS_Z(Mem{Base: base2, Index: s6, Scale: 1}, K1, z[4])
		VMOVUPS_Z(Mem{Base: base2, Index: s6, Scale: 2}, K1, z[5])
		// t0 = m0 + m1 + m2 + m3 + m4
		VADDPS(z[1], z[0], T(0, k))
		VADDPS(z[2], T(0, k), T(0, k))
		VADDPS(z[3], T(0, k), T(0, k))
		VADDPS(z[4], T(0, k), T(0, k))
		at(z, z[5], T(1, k), T(2, k), T(3, k), nil)
	}
	masks := []Register{K2, K3, K4, K5}
	if pool {
		Comment("Store masks: K2, K3 cover the 2*min(n, 16) floats of each output row.")
		SHLQ(U8(1), tmp64)
		masks = masks[:2]
	} else {
		Comment("Store masks: K2–K5 cover the 4*min(n, 16) floats of each output row.")
		SHLQ(U8(2), tmp64)
	}
	BZHIQ(tmp64, allOnes, tmp64)
	for _, k := range masks {
		KMOVW(tmp64.As32(), k)
		SHRQ(U8(16), tmp64)
	}
	Comment("Y = t A + bias, row by row, interleaved into tile order.")
	MOVQ(yp, p)
	for r := 0; r < 4; r++ {
		a := []VecPhysical{T(r, 0), T(r, 1), T(r, 2), T(r, 3), T(r, 4), T(r, 5)}
		// y0 = a0 + a1 + a2 + a3 + a4 + b
		VADDPS(a[1], a[0], z[0])
		VADDPS(a[2], z[0], z[0])
		VADDPS(a[3], z[0], z[0])
		VADDPS(a[4], z[0], z[0])
		VADDPS(bias, z[0], z[0])
		act := func(v VecPhysical) {
			if pool {
				VPMAXSD(zero, v, v)
				return
			}
			label := fmt.Sprintf("winograd4OutputReLU%d_%d", r, v.ID())
			TESTB(relu, relu)
			JE(LabelRef(label))
			VPMAXSD(zero, v, v)
			Label(label)
		}
		act(z[0])
		// z1..z4 = a1..a4; at needs them as temporaries.
		at([]VecPhysical{nil, a[1], a[2], a[3], a[4]}, a[5], z[1], z[2], z[3], func(v VecPhysical) {
			VADDPS(bias, v, v)
			act(v)
		})
		if pool {
			// Pairs of columns, then pairs of rows; the tile rows 0, 2
			// keep their maxima in T(r, 0), T(r, 1), dead now.
			h := []VecPhysical{z[4], z[5]}
			if r%2 == 0 {
				h = []VecPhysical{a[0], a[1]}
			}
			VMAXPS(z[1], z[0], h[0])
			VMAXPS(z[3], z[2], h[1])
			if r%2 == 0 {
				continue
			}
			prev := []VecPhysical{T(r-1, 0), T(r-1, 1)}
			VMAXPS(h[0], prev[0], z[0])
			VMAXPS(h[1], prev[1], z[1])
			// Interleave into P[a][0], P[a][1] of tile 0, of tile 1, ...
			il0, il1 := T(0, 2), T(0, 3)
			if r == 1 {
				VMOVDQU32(interleave2(), il0)
				VMOVDQU32(interleave2().Offset(64), il1)
			}
			VMOVAPS(z[0], z[2])
			VPERMT2PS(z[1], il0, z[2])
			VMOVAPS(z[0], z[3])
			VPERMT2PS(z[1], il1, z[3])
			VMOVUPS(z[2], K2, Mem{Base: p})
			VMOVUPS(z[3], K3, Mem{Base: p, Disp: 64})
			if r == 1 {
				ADDQ(ys, p)
			}
			continue
		}
		// Transpose: Z0–Z3 hold column c of the 16 tiles; the row wants
		// tile after tile (Y[r][0..3] of tile 0, of tile 1, ...). The
		// unpacks transpose within 128-bit lanes, the shuffles the 4x4
		// grid of lanes. a[0..3] are dead now.
		w := []VecPhysical{z[4], z[5], a[0], a[1]}
		VUNPCKLPS(z[1], z[0], w[0])
		VUNPCKHPS(z[1], z[0], w[1])
		VUNPCKLPS(z[3], z[2], w[2])
		VUNPCKHPS(z[3], z[2], w[3])
		VUNPCKLPD(w[2], w[0], z[0]) // lane L: tile 4L
		VUNPCKHPD(w[2], w[0], z[1]) // tile 4L+1
		VUNPCKLPD(w[3], w[1], z[2]) // tile 4L+2
		VUNPCKHPD(w[3], w[1], z[3]) // tile 4L+3
		VSHUFF32X4(U8(0x44), z[1], z[0], w[0])
		VSHUFF32X4(U8(0xee), z[1], z[0], w[1])
		VSHUFF32X4(U8(0x44), z[3], z[2], w[2])
		VSHUFF32X4(U8(0xee), z[3], z[2], w[3])
		VSHUFF32X4(U8(0x88), w[2], w[0], z[0]) // tiles 0–3
		VSHUFF32X4(U8(0xdd), w[2], w[0], z[1]) // tiles 4–7
		VSHUFF32X4(U8(0x88), w[3], w[1], z[2]) // tiles 8–11
		VSHUFF32X4(U8(0xdd), w[3], w[1], z[3]) // tiles 12–15
		for j, k := range []Register{K2, K3, K4, K5} {
			VMOVUPS(z[j], k, Mem{Base: p, Disp: 64 * j})
		}
		if r < 3 {
			ADDQ(ys, p)
		}
	}
	ADDQ(U8(64), mp)
	if pool {
		ADDQ(U32(128), yp)
	} else {
		ADDQ(U32(256), yp)
	}
	SUBQ(U8(16), n)
	JG(LabelRef(name + "Loop"))
	Label(name + "Done")
	VZEROUPPER()
	RET()
}

// at computes rows 1–3 of Aᵀ m for one column (or columns 1–3 of t A for
// one row), with the operations of winograd4OutputRunGeneric:
//
//	o1 = m1 - m2 + 2*(m3-m4)
//	o2 = m1 + m2 + 4*(m3+m4)
//	o3 = m1 - m2 + 8*(m3-m4) + m5
//
// m[1..4] must be registers it may not overwrite unless they are Z0–Z5
// (in the column pass it overwrites m[0]..m[4], which are then dead).
// done, if not nil, is called after each output.
func at(m []VecPhysical, m5, o1, o2, o3 VecPhysical, done func(VecPhysical)) {
	if done == nil {
		done = func(VecPhysical) {}
	}
	// Temporaries: in the column pass m[0] is dead after t0; in the row
	// pass the outputs come first, so use o1–o3 and one of them in turn.
	if m[0] != nil {
		d12, s12, d34, s34, w := m[0], m[1], m[2], m[3], m[4]
		VSUBPS(m[2], m[1], d12)
		VADDPS(m[2], m[1], s12)
		VSUBPS(m[4], m[3], d34)
		VADDPS(m[4], m[3], s34)
		// w is m[4], dead now.
		VADDPS(d34, d34, w)
		VADDPS(w, d12, o1)
		done(o1)
		VADDPS(s34, s34, w)
		VADDPS(w, w, w)
		VADDPS(w, s12, o2)
		done(o2)
		VADDPS(d34, d34, w)
		VADDPS(w, w, w)
		VADDPS(w, w, w)
		VADDPS(w, d12, o3)
		VADDPS(m5, o3, o3)
		done(o3)
		return
	}
	// Row pass: outputs o1..o3 and two more temporaries Z4, Z5.
	d12, s12, d34, s34 := Z4, Z5, o3, o2
	VSUBPS(m[2], m[1], d12)
	VADDPS(m[2], m[1], s12)
	VSUBPS(m[4], m[3], d34)
	VADDPS(m[4], m[3], s34)
	VADDPS(d34, d34, o1)
	VADDPS(o1, d12, o1)
	done(o1)
	// o2 = s12 + 4*s34, s34 being o2 itself.
	VADDPS(s34, s34, o2)
	VADDPS(o2, o2, o2)
	VADDPS(o2, s12, o2)
	done(o2)
	// o3 = d12 + 8*d34 + m5, d34 being o3 itself.
	VADDPS(d34, d34, o3)
	VADDPS(o3, o3, o3)
	VADDPS(o3, o3, o3)
	VADDPS(o3, d12, o3)
	VADDPS(m5, o3, o3)
	done(o3)
}

// interleave2Mem is the global of interleave2, once defined.
var interleave2Mem *Mem

// interleave2 returns the VPERMT2PS indices that interleave two vectors
// a, b into a0 b0 a1 b1 ... a7 b7 (the first 64 bytes) and a8 b8 ... a15
// b15 (the next 64), defining them on first use.
func interleave2() Mem {
	if interleave2Mem == nil {
		m := GLOBL("winogradInterleave2", RODATA|NOPTR)
		for i := 0; i < 32; i++ {
			DATA(4*i, U32(i/2+16*(i%2)))
		}
		interleave2Mem = &m
	}
	return *interleave2Mem
}

// winograd2RowStride is the row stride, in floats, of the scratch t of
// winograd2InputAVX512: 2*32+2 columns rounded up, plus room for the 16
// columns past the last block.
const winograd2RowStride = 80

// genWinograd2Input generates winograd2InputAVX512, the F(2x2, 3x3)
// input transform, laid out like winograd4InputAVX512: a row pass
// t = Bᵀ d (Z0–Z3 the rows, Z4 the result), 16 columns at a time over
// 32 columns per block of 16 patches plus 16, into the local scratch;
// then per block and row of t, the phases q_j[i] = t[2i+j]: the even
// and odd columns by VPERMT2PS (indices in Z8, Z9) and those shifted by
// one patch by VALIGND with columns 32, 33 (Z6, Z7).
func genWinograd2Input() {
	even := GLOBL("winograd2EvenOdd", RODATA|NOPTR)
	for i := 0; i < 32; i++ {
		DATA(4*i, U32(2*(i%16)+i/16))
	}

	TEXT("winograd2InputAVX512", 0, "func(v []float32, vstride int, d *[4][]float32, n int)")
	Pragma("noescape")
	Doc(
		"winograd2InputAVX512 computes, with AVX-512F, the input transform of",
		"winogradInputRunGeneric: V = Bᵀ P B of the n (1 ≤ n ≤ 32) consecutive",
		"4x4 patches P_i whose top-left corners are at columns 2i of the four rows",
		"d (2n+2 floats each), V_p of patch i going to v[p*vstride+i]. The caller",
		"checks the lengths.",
	)
	t := AllocLocal(4 * winograd2RowStride * 4)
	tb := GP64()
	LEAQ(t, tb)
	dp := Load(Param("d"), GP64())
	var rows [4]Register
	for r := range rows {
		rows[r] = GP64()
		MOVQ(Mem{Base: dp, Disp: 24 * r}, rows[r])
	}
	n := GP64()
	Load(Param("n"), n)
	ones := GP32()
	MOVL(U32(0xffff), ones)
	tmp := GP32()

	Comment("Row pass: t = Bᵀ d, 16 columns at a time, 2*ceil(n/16)+1 times.")
	rem := GP64()
	LEAQ(Mem{Base: n, Index: n, Scale: 1, Disp: 2}, rem) // 2n+2
	chunks := GP64()
	MOVQ(U32(3), chunks)
	CMPQ(n, U8(16))
	JLE(LabelRef("winograd2InputChunks"))
	MOVQ(U32(5), chunks)
	Label("winograd2InputChunks")
	zero := GP64()
	XORQ(zero, zero)
	off := GP64()
	XORQ(off, off)
	a := []VecPhysical{Z0, Z1, Z2, Z3}
	x := Z4
	Label("winograd2InputRow")
	TESTQ(rem, rem)
	CMOVQLT(zero, rem)
	tailMask(rem.As32(), ones, tmp, K1)
	for r := 0; r < 4; r++ {
		VMOVUPS_Z(Mem{Base: rows[r], Index: off, Scale: 1}, K1, a[r])
	}
	bt2(a, x, func(r int) {
		VMOVUPS(x, Mem{Base: tb, Index: off, Scale: 1, Disp: 4 * winograd2RowStride * r})
	})
	ADDQ(U8(64), off)
	SUBQ(U8(16), rem)
	DECQ(chunks)
	JNZ(LabelRef("winograd2InputRow"))

	Comment("Column pass: V = t B, 16 patches at a time (at most two blocks).")
	vp := Load(Param("v").Base(), GP64())
	vs := Load(Param("vstride"), GP64())
	SHLQ(U8(2), vs)
	ie, io := Z8, Z9
	VMOVDQU32(even, ie)
	VMOVDQU32(even.Offset(64), io)
	q := []VecPhysical{Z0, Z1, Z2, Z3}
	x32, x33 := Z6, Z7
	p := GP64()
	for b := 0; b < 2; b++ {
		if b == 1 {
			SUBQ(U8(16), n)
			JLE(LabelRef("winograd2InputDone"))
		}
		tailMask(n.As32(), ones, tmp, K1)
		LEAQ(Mem{Base: vp, Disp: 64 * b}, p)
		for r := 0; r < 4; r++ {
			col := func(c int) Mem {
				return Mem{Base: tb, Disp: 4 * (r*winograd2RowStride + 32*b + c)}
			}
			VMOVUPS(col(0), q[0])
			VPERMT2PS(col(16), ie, q[0])
			VMOVUPS(col(0), q[1])
			VPERMT2PS(col(16), io, q[1])
			VMOVUPS(col(32), x32)
			VALIGND(U8(1), x32, x32, x33)
			VALIGND(U8(1), q[0], x32, q[2])
			VALIGND(U8(1), q[1], x33, q[3])
			bt2(q, x, func(int) {
				VMOVUPS(x, K1, Mem{Base: p})
				ADDQ(vs, p)
			})
		}
	}
	Label("winograd2InputDone")
	VZEROUPPER()
	RET()
}

// bt2 computes the four rows of Bᵀ a of F(2x2, 3x3) into x, calling
// store(r) after row r: a0-a2, a1+a2, a2-a1, a1-a3.
func bt2(a []VecPhysical, x VecPhysical, store func(r int)) {
	VSUBPS(a[2], a[0], x)
	store(0)
	VADDPS(a[2], a[1], x)
	store(1)
	VSUBPS(a[1], a[2], x)
	store(2)
	VSUBPS(a[3], a[1], x)
	store(3)
}

// genWinograd2Output generates winograd2OutputAVX512, the F(2x2, 3x3)
// output transform. Per column j of the 4x4 products, Z0–Z3 receive M
// rows j, 4+j, 8+j, 12+j; r = Aᵀ M (2x4) goes to Z4–Z11 (r[i][j] in
// Z(4+4i+j)); the four outputs go to Z12–Z15, are interleaved by
// VPERMT2PS (indices in Z16, Z17) into rows of tiles and stored with the
// masks K2, K3 (K1 masks the loads). Z30 holds the bias, Z31 zero.
func genWinograd2Output() {
	il := interleave2()

	TEXT("winograd2OutputAVX512", NOSPLIT, "func(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool)")
	Pragma("noescape")
	Doc(
		"winograd2OutputAVX512 computes, with AVX-512F, the output transform of",
		"winograd2OutputRunGeneric: for the n tiles g, Y = Aᵀ M A + bias of",
		"M_p = m[p*mstride+g] (p = 4i+j), with ReLU if relu, Y[r][c] going to",
		"y[r*ystride+2g+c]. The caller checks the lengths.",
	)
	yp := Load(Param("y").Base(), GP64())
	ys := Load(Param("ystride"), GP64())
	SHLQ(U8(2), ys)
	mp := Load(Param("m").Base(), GP64())
	ms := Load(Param("mstride"), GP64())
	SHLQ(U8(2), ms)
	s4 := GP64()
	LEAQ(Mem{Base: ms, Index: ms, Scale: 2}, s4) // 3 rows
	ADDQ(ms, s4)                                 // 4 rows
	s12 := GP64()
	LEAQ(Mem{Base: s4, Index: s4, Scale: 2}, s12)
	n := GP64()
	Load(Param("n"), n)
	bias, zero := Z30, Z31
	VBROADCASTSS(addr(Param("bias")), bias)
	VPXORD(zero, zero, zero)
	VMOVDQU32(il, Z16)
	VMOVDQU32(il.Offset(64), Z17)
	relu := Load(Param("relu"), GP8())
	ones, tmp := GP32(), GP32()
	MOVL(U32(0xffff), ones)
	allOnes, tmp64, sixteen := GP64(), GP64(), GP64()
	MOVQ(I32(-1), allOnes)
	MOVQ(U32(16), sixteen)
	TESTQ(n, n)
	JLE(LabelRef("winograd2OutputDone"))
	base := GP64()
	R := func(i, j int) VecPhysical { return zmm[4+4*i+j] }
	z := zmm[:4]

	Label("winograd2OutputLoop")
	MOVQ(n, tmp64)
	CMPQ(tmp64, sixteen)
	CMOVQGT(sixteen, tmp64)
	tailMask(tmp64.As32(), ones, tmp, K1)
	SHLQ(U8(1), tmp64)
	BZHIQ(tmp64, allOnes, tmp64)
	KMOVW(tmp64.As32(), K2)
	SHRQ(U8(16), tmp64)
	KMOVW(tmp64.As32(), K3)
	MOVQ(mp, base)
	for j := 0; j < 4; j++ {
		if j > 0 {
			ADDQ(ms, base)
		}
		VMOVUPS_Z(Mem{Base: base}, K1, z[0])
		VMOVUPS_Z(Mem{Base: base, Index: s4, Scale: 1}, K1, z[1])
		VMOVUPS_Z(Mem{Base: base, Index: s4, Scale: 2}, K1, z[2])
		VMOVUPS_Z(Mem{Base: base, Index: s12, Scale: 1}, K1, z[3])
		// r0j = m_j + m_4+j + m_8+j, r1j = m_4+j - m_8+j - m_12+j
		VADDPS(z[1], z[0], R(0, j))
		VADDPS(z[2], R(0, j), R(0, j))
		VSUBPS(z[2], z[1], R(1, j))
		VSUBPS(z[3], R(1, j), R(1, j))
	}
	y := []VecPhysical{Z12, Z13, Z14, Z15}
	for i := 0; i < 2; i++ {
		// y_i0 = r_i0 + r_i1 + r_i2 + b, y_i1 = r_i1 - r_i2 - r_i3 + b
		VADDPS(R(i, 1), R(i, 0), y[2*i])
		VADDPS(R(i, 2), y[2*i], y[2*i])
		VADDPS(bias, y[2*i], y[2*i])
		VSUBPS(R(i, 2), R(i, 1), y[2*i+1])
		VSUBPS(R(i, 3), y[2*i+1], y[2*i+1])
		VADDPS(bias, y[2*i+1], y[2*i+1])
	}
	TESTB(relu, relu)
	JE(LabelRef("winograd2OutputStore"))
	for _, v := range y {
		VPMAXSD(zero, v, v)
	}
	Label("winograd2OutputStore")
	MOVQ(yp, base)
	for i := 0; i < 2; i++ {
		// Row i: y_i0, y_i1 of tile 0, of tile 1, ...
		VMOVAPS(y[2*i], z[0])
		VPERMT2PS(y[2*i+1], Z16, z[0])
		VMOVAPS(y[2*i], z[1])
		VPERMT2PS(y[2*i+1], Z17, z[1])
		VMOVUPS(z[0], K2, Mem{Base: base})
		VMOVUPS(z[1], K3, Mem{Base: base, Disp: 64})
		if i == 0 {
			ADDQ(ys, base)
		}
	}
	ADDQ(U8(64), mp)
	ADDQ(U32(128), yp)
	SUBQ(U8(16), n)
	JG(LabelRef("winograd2OutputLoop"))
	Label("winograd2OutputDone")
	VZEROUPPER()
	RET()
}
