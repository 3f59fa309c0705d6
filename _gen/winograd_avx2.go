package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

// The AVX2 Winograd transform kernels (-kernels winograd, into
// winograd_amd64.s beside the AVX-512 ones). Each YMM lane handles one
// tile, 8 tiles per vector, with the operations of the Go references in
// the same order (bt and bt2 are shared with the AVX-512 kernels; VADDPS,
// VSUBPS, VMULPS, no fused multiply-add), so the results are
// bit-identical to them.
//
// AVX2 has no mask registers, and VMASKMOVPS stores are microcoded on
// AMD processors, so the kernels avoid masked stores:
//
//   - with n ≥ 8 tiles, they run blocks of 8 at tiles 0, 8, 16, ... and a
//     last block at n-8, which overlaps the one before it: the tiles done
//     twice are recomputed from the same inputs and stored again with the
//     same bits;
//   - with n < 8, they load with VMASKMOVPS (masked-off lanes read as zero
//     and never fault), compute one block into a buffer on the stack and
//     copy n tiles out of it with overlapping 32, 16, 8 or 4-byte moves.

// winogradRowStrideAVX2 is the row stride, in floats, of the scratch t of
// winograd4InputAVX2: the 4*32+2 columns of the longest run rounded up to
// a multiple of 8, and at least the 40 columns a block of fewer than 8
// patches reads.
const winogradRowStrideAVX2 = 136

// winograd2RowStrideAVX2 is the row stride, in floats, of the scratch t of
// winograd2InputAVX2: 2*32+2 columns rounded up to a multiple of 8.
const winograd2RowStrideAVX2 = 72

// tailMaskMem is the global of tailMaskAVX2, once defined.
var tailMaskMem *Mem

// defineTailMask defines the table of tailMaskAVX2.
func defineTailMask() {
	g := GLOBL("winogradTailMask", RODATA|NOPTR)
	for i := 0; i < 16; i++ {
		v := uint32(0)
		if i < 8 {
			v = 0xffffffff
		}
		DATA(4*i, U32(v))
	}
	tailMaskMem = &g
}

// tailMaskAVX2 loads into m the VMASKMOVPS mask of the first k lanes
// (1 ≤ k ≤ 7, in a 64-bit register that it leaves unchanged): the 8
// floats at 4*(8-k) bytes into a table of eight all-ones words followed
// by eight zeros.
func tailMaskAVX2(k Register, m VecPhysical) {
	if tailMaskMem == nil {
		defineTailMask()
	}
	p, neg := GP64(), GP64()
	LEAQ(*tailMaskMem, p)
	MOVQ(k, neg)
	NEGQ(neg)
	VMOVDQU(Mem{Base: p, Index: neg, Scale: 4, Disp: 32}, m)
}

// tailMaskConstMem is the address of the mask of the first k lanes in
// the table of tailMaskAVX2, set by tailMaskAVX2Const.
var tailMaskConstMem *Mem

// tailMaskAVX2Const sets tailMaskConstMem to the mask of the first k
// lanes (1 ≤ k ≤ 7), defining the table if needed.
func tailMaskAVX2Const(k int) {
	if tailMaskMem == nil {
		defineTailMask()
	}
	m := tailMaskMem.Offset(4 * (8 - k))
	tailMaskConstMem = &m
}

// broadcastConst sets every lane of v to the float32 with the given bits.
func broadcastConst(bits uint32, v VecPhysical) {
	tmp := GP32()
	MOVL(U32(bits), tmp)
	VMOVD(tmp, v.AsX())
	VBROADCASTSS(v.AsX(), v)
}

// blocksAVX2 emits the loop over the blocks of 8 tiles of a run of n ≥ 8
// tiles: body(o) computes the block starting at tile o (a register it
// must not change); the blocks start at 0, 8, 16, ... and, if 8 does not
// divide n, at n-8. It jumps to done after the last block.
func blocksAVX2(name string, n Register, done string, body func(o Register)) {
	o, last := GP64(), GP64()
	XORQ(o, o)
	LEAQ(Mem{Base: n, Disp: -8}, last)
	Label(name + "Block")
	body(o)
	ADDQ(U8(8), o)
	CMPQ(o, n)
	JGE(LabelRef(done))
	CMPQ(o, last)
	CMOVQGT(last, o)
	JMP(LabelRef(name + "Block"))
}

// copyTailAVX2 copies rows rows of l bytes (a multiple of 4 between minL
// and maxL, held in a 64-bit register) from src, rows srcStride bytes
// apart, to dst, rows dstStride (a register) apart, with two overlapping
// moves per row of 4, 8 or 16 bytes, or 32-byte moves ending with an
// overlapping one. It advances src and dst and uses Y0 and Y1.
func copyTailAVX2(name string, src, dst, dstStride, l Register, srcStride, rows, minL, maxL int) {
	cnt := GP64()
	MOVQ(U32(rows), cnt)
	end := name + "CopyDone"
	sizes := []int{32, 16, 8, 4}
	var cases []int
	for i, s := range sizes {
		// Moves of s bytes serve lengths s .. 2s (or more for 32).
		hi := 2*s - 4
		if i == 0 {
			hi = maxL
		}
		if s <= maxL && hi >= minL {
			cases = append(cases, s)
		}
	}
	for _, s := range cases[:len(cases)-1] {
		CMPQ(l, U8(s))
		JAE(LabelRef(fmt.Sprintf("%sCopy%d", name, s)))
	}
	// The smallest case falls through from the comparisons.
	for i := len(cases) - 1; i >= 0; i-- {
		s := cases[i]
		Label(fmt.Sprintf("%sCopy%d", name, s))
		loop := fmt.Sprintf("%sCopy%dLoop", name, s)
		Label(loop)
		x0, x1 := X0, X1
		switch s {
		case 4:
			VMOVSS(Mem{Base: src}, x0)
			VMOVSS(x0, Mem{Base: dst})
		case 8:
			VMOVSD(Mem{Base: src}, x0)
			VMOVSD(Mem{Base: src, Index: l, Scale: 1, Disp: -8}, x1)
			VMOVSD(x0, Mem{Base: dst})
			VMOVSD(x1, Mem{Base: dst, Index: l, Scale: 1, Disp: -8})
		case 16:
			VMOVUPS(Mem{Base: src}, x0)
			VMOVUPS(Mem{Base: src, Index: l, Scale: 1, Disp: -16}, x1)
			VMOVUPS(x0, Mem{Base: dst})
			VMOVUPS(x1, Mem{Base: dst, Index: l, Scale: 1, Disp: -16})
		case 32:
			off, lm := GP64(), GP64()
			XORQ(off, off)
			LEAQ(Mem{Base: l, Disp: -32}, lm)
			inner := fmt.Sprintf("%sCopy32Inner", name)
			Label(inner)
			CMPQ(off, lm)
			JAE(LabelRef(inner + "Last"))
			VMOVUPS(Mem{Base: src, Index: off, Scale: 1}, Y0)
			VMOVUPS(Y0, Mem{Base: dst, Index: off, Scale: 1})
			ADDQ(U8(32), off)
			JMP(LabelRef(inner))
			Label(inner + "Last")
			VMOVUPS(Mem{Base: src, Index: lm, Scale: 1}, Y0)
			VMOVUPS(Y0, Mem{Base: dst, Index: lm, Scale: 1})
		}
		ADDQ(U32(srcStride), src)
		ADDQ(dstStride, dst)
		DECQ(cnt)
		JNZ(LabelRef(loop))
		if i > 0 {
			JMP(LabelRef(end))
		}
	}
	Label(end)
}

// genWinograd4InputAVX2 generates winograd4InputAVX2.
//
// The row pass computes t = Bᵀ d, 8 columns at a time, into the local
// scratch t (6 rows of winogradRowStrideAVX2 floats): Y0–Y5 receive the
// six rows (the last partial chunk through VMASKMOVPS, its missing
// columns as zeros), t goes out through Y8 (Y9 a temporary, Y10, Y11 the
// constants 4, 5), and with fewer than 8 patches the columns up to 40
// are zeroed, so that every column a block reads is finite. The column
// pass, per block of 8 patches and row of t, loads X_k = [patch k |
// patch k+4] (the 4 columns of each, as 128-bit halves) for k = 0..4 and
// transposes them into the phases q_j[i] = t[4i+j]: q0–q3 from X0–X3 by
// VUNPCKLPS/VUNPCKHPS then VUNPCKLPD/VUNPCKHPD, and q4, q5 (phases 0, 1
// of patches 1..8, that is t[4i+4], t[4i+5]) from X1–X4 the same way.
func genWinograd4InputAVX2() {
	TEXT("winograd4InputAVX2", 0, "func(v []float32, vstride int, d *[6][]float32, n int)")
	Pragma("noescape")
	Doc(
		"winograd4InputAVX2 computes, with AVX2, the input transform of",
		"winograd4InputRunGeneric: V = Bᵀ P B of the n (1 ≤ n ≤ 32) consecutive",
		"6x6 patches P_i whose top-left corners are at columns 4i of the six rows",
		"d (4n+2 floats each), V_p of patch i going to v[p*vstride+i]. The caller",
		"checks the lengths.",
	)
	const rs = 4 * winogradRowStrideAVX2 // bytes
	t := AllocLocal(6 * rs)
	buf := AllocLocal(36 * 32)
	tb := GP64()
	LEAQ(t, tb)
	dp := Load(Param("d"), GP64())
	var rows [6]Register
	for r := range rows {
		rows[r] = GP64()
		MOVQ(Mem{Base: dp, Disp: 24 * r}, rows[r])
	}
	n := Load(Param("n"), GP64())
	c4, c5 := Y10, Y11
	broadcastConst(0x40800000, c4) // 4.0
	broadcastConst(0x40a00000, c5) // 5.0
	x, y := Y8, Y9
	CMPQ(n, U8(winograd4PatchRun))
	JLE(LabelRef("winograd4InputAVX2Patches"))

	Comment("Row pass: t = Bᵀ d, 8 columns at a time.")
	rem := GP64()
	LEAQ(Mem{Base: n, Index: n, Scale: 1}, rem) // 2n
	ADDQ(rem, rem)                              // 4n
	ADDQ(U8(2), rem)
	off := GP64()
	XORQ(off, off)
	a := []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5}
	store := func(r int) {
		VMOVUPS(x, Mem{Base: tb, Index: off, Scale: 1, Disp: rs * r})
	}
	Label("winograd4InputAVX2Row")
	CMPQ(rem, U8(8))
	JL(LabelRef("winograd4InputAVX2RowTail"))
	for r := range a {
		VMOVUPS(Mem{Base: rows[r], Index: off, Scale: 1}, a[r])
	}
	bt(a, x, y, c4, c5, store)
	ADDQ(U8(32), off)
	SUBQ(U8(8), rem)
	JMP(LabelRef("winograd4InputAVX2Row"))
	Label("winograd4InputAVX2RowTail")
	TESTQ(rem, rem)
	JE(LabelRef("winograd4InputAVX2Fill"))
	mask := Y12
	tailMaskAVX2(rem, mask)
	for r := range a {
		VMASKMOVPS(Mem{Base: rows[r], Index: off, Scale: 1}, mask, a[r])
	}
	bt(a, x, y, c4, c5, store)
	ADDQ(U8(32), off)
	Label("winograd4InputAVX2Fill")
	Comment("Zero the columns up to 40, which a block of fewer than 8 patches reads.")
	VXORPS(x, x, x)
	Label("winograd4InputAVX2FillLoop")
	CMPQ(off, U32(4*40))
	JGE(LabelRef("winograd4InputAVX2Cols"))
	for r := range a {
		store(r)
	}
	ADDQ(U8(32), off)
	JMP(LabelRef("winograd4InputAVX2FillLoop"))

	Label("winograd4InputAVX2Cols")
	Comment("Column pass: V = t B, 8 patches at a time.")
	vp := Load(Param("v").Base(), GP64())
	vs := Load(Param("vstride"), GP64())
	SHLQ(U8(2), vs)
	// column emits the column pass of one block whose first patch starts
	// at tt in t, calling out(p) after V_p is in x.
	column := func(tt Register, out func(p int)) {
		X := []VecPhysical{Y0, Y1, Y2, Y3, Y4}
		for r := 0; r < 6; r++ {
			for k, v := range X {
				VMOVUPS(Mem{Base: tt, Disp: rs*r + 16*k}, v.AsX())
				VINSERTF128(U8(1), Mem{Base: tt, Disp: rs*r + 16*(k+4)}, v, v)
			}
			// Lanes: X_k = [t[4k..4k+3] | t[4k+16..4k+19]] of this row.
			VUNPCKLPS(Y2, Y1, Y5) // patches 1, 2 (phases 0, 1 interleaved) | 5, 6
			VUNPCKLPS(Y4, Y3, Y6) // 3, 4 | 7, 8
			VUNPCKLPD(Y6, Y5, Y4) // q4: phase 0 of patches 1–4 | 5–8
			VUNPCKHPD(Y6, Y5, Y7) // q5: phase 1
			VUNPCKLPS(Y1, Y0, Y5) // patches 0, 1: phases 0, 1
			VUNPCKHPS(Y1, Y0, Y6) // patches 0, 1: phases 2, 3
			VUNPCKLPS(Y3, Y2, Y0) // patches 2, 3: phases 0, 1
			VUNPCKHPS(Y3, Y2, Y1) // patches 2, 3: phases 2, 3
			VUNPCKLPD(Y0, Y5, Y2) // q0
			VUNPCKHPD(Y0, Y5, Y3) // q1
			VUNPCKLPD(Y1, Y6, Y5) // q2
			VUNPCKHPD(Y1, Y6, Y6) // q3
			bt([]VecPhysical{Y2, Y3, Y5, Y6, Y4, Y7}, x, y, c4, c5, func(j int) { out(6*r + j) })
		}
	}
	CMPQ(n, U8(8))
	JL(LabelRef("winograd4InputAVX2Short"))
	blocksAVX2("winograd4InputAVX2", n, "winograd4InputAVX2Done", func(o Register) {
		tt, p := GP64(), GP64()
		MOVQ(o, tt)
		SHLQ(U8(4), tt) // 4 columns per patch
		ADDQ(tb, tt)
		LEAQ(Mem{Base: vp, Index: o, Scale: 4}, p)
		column(tt, func(int) {
			VMOVUPS(x, Mem{Base: p})
			ADDQ(vs, p)
		})
	})

	Label("winograd4InputAVX2Short")
	Comment("Fewer than 8 patches: through the buffer, then n floats per row.")
	bb := GP64()
	LEAQ(buf, bb)
	column(tb, func(p int) {
		VMOVUPS(x, Mem{Base: bb, Disp: 32 * p})
	})
	l := GP64()
	MOVQ(n, l)
	SHLQ(U8(2), l)
	copyTailAVX2("winograd4InputAVX2", bb, vp, vs, l, 32, 36, 4, 28)
	JMP(LabelRef("winograd4InputAVX2Done"))

	Label("winograd4InputAVX2Patches")
	winograd4InputPatches(rows, n, c4, c5)
	Label("winograd4InputAVX2Done")
	VZEROUPPER()
	RET()
}

// genWinograd2InputAVX2 generates winograd2InputAVX2, the F(2x2, 3x3)
// input transform. Runs of fewer than 8 patches go patch by patch (see
// winograd2InputPatches); longer ones are laid out like winograd4InputAVX2:
// a row pass t = Bᵀ d (Y0–Y3 the rows, Y8 the result), 8 columns at a
// time, into the local scratch; then per block and row of t, the phases
// q_j[i] = t[2i+j]: with A = [t[0..3] | t[8..11]] and B = [t[4..7] |
// t[12..15]], VSHUFPS picks the even (q0) and odd (q1) columns, and the
// same from two columns on gives q2, q3.
func genWinograd2InputAVX2() {
	TEXT("winograd2InputAVX2", 0, "func(v []float32, vstride int, d *[4][]float32, n int)")
	Pragma("noescape")
	Doc(
		"winograd2InputAVX2 computes, with AVX2, the input transform of",
		"winogradInputRunGeneric: V = Bᵀ P B of the n (1 ≤ n ≤ 32) consecutive",
		"4x4 patches P_i whose top-left corners are at columns 2i of the four rows",
		"d (2n+2 floats each), V_p of patch i going to v[p*vstride+i]. The caller",
		"checks the lengths.",
	)
	const rs = 4 * winograd2RowStrideAVX2
	t := AllocLocal(4 * rs)
	tb := GP64()
	LEAQ(t, tb)
	dp := Load(Param("d"), GP64())
	var rows [4]Register
	for r := range rows {
		rows[r] = GP64()
		MOVQ(Mem{Base: dp, Disp: 24 * r}, rows[r])
	}
	n := Load(Param("n"), GP64())
	x := Y8
	CMPQ(n, U8(8))
	JL(LabelRef("winograd2InputAVX2Patches"))

	Comment("Row pass: t = Bᵀ d, 8 columns at a time.")
	rem := GP64()
	LEAQ(Mem{Base: n, Index: n, Scale: 1, Disp: 2}, rem) // 2n+2
	off := GP64()
	XORQ(off, off)
	a := []VecPhysical{Y0, Y1, Y2, Y3}
	store := func(r int) {
		VMOVUPS(x, Mem{Base: tb, Index: off, Scale: 1, Disp: rs * r})
	}
	Label("winograd2InputAVX2Row")
	CMPQ(rem, U8(8))
	JL(LabelRef("winograd2InputAVX2RowTail"))
	for r := range a {
		VMOVUPS(Mem{Base: rows[r], Index: off, Scale: 1}, a[r])
	}
	bt2(a, x, store)
	ADDQ(U8(32), off)
	SUBQ(U8(8), rem)
	JMP(LabelRef("winograd2InputAVX2Row"))
	Label("winograd2InputAVX2RowTail")
	TESTQ(rem, rem)
	JE(LabelRef("winograd2InputAVX2Cols"))
	mask := Y12
	tailMaskAVX2(rem, mask)
	for r := range a {
		VMASKMOVPS(Mem{Base: rows[r], Index: off, Scale: 1}, mask, a[r])
	}
	bt2(a, x, store)

	Label("winograd2InputAVX2Cols")
	Comment("Column pass: V = t B, 8 patches at a time.")
	vp := Load(Param("v").Base(), GP64())
	vs := Load(Param("vstride"), GP64())
	SHLQ(U8(2), vs)
	blocksAVX2("winograd2InputAVX2", n, "winograd2InputAVX2Done", func(o Register) {
		tt, p := GP64(), GP64()
		LEAQ(Mem{Base: tb, Index: o, Scale: 8}, tt) // 2 columns per patch
		LEAQ(Mem{Base: vp, Index: o, Scale: 4}, p)
		for r := 0; r < 4; r++ {
			row := func(c int) Mem { return Mem{Base: tt, Disp: rs*r + 4*c} }
			for k, v := range []VecPhysical{Y0, Y1, Y2, Y3} {
				// Y0, Y1: A, B from column 0; Y2, Y3: from column 2.
				c := 4*(k%2) + 2*(k/2)
				VMOVUPS(row(c), v.AsX())
				VINSERTF128(U8(1), row(c+8), v, v)
			}
			VSHUFPS(U8(0x88), Y1, Y0, Y4) // q0 = t[2i]
			VSHUFPS(U8(0xdd), Y1, Y0, Y5) // q1 = t[2i+1]
			VSHUFPS(U8(0x88), Y3, Y2, Y6) // q2 = t[2i+2]
			VSHUFPS(U8(0xdd), Y3, Y2, Y7) // q3 = t[2i+3]
			bt2([]VecPhysical{Y4, Y5, Y6, Y7}, x, func(int) {
				VMOVUPS(x, Mem{Base: p})
				ADDQ(vs, p)
			})
		}
	})

	Label("winograd2InputAVX2Patches")
	winograd2InputPatches(rows, n)
	Label("winograd2InputAVX2Done")
	VZEROUPPER()
	RET()
}

// reluFloorAVX2 sets every lane of v to the VPMAXSD operand that makes
// the kernels' ReLU step what relu asks: 0, which clears exactly the
// values with the sign bit set (as relu32 does), or, without ReLU, the
// smallest int32, which leaves every value as it is.
func reluFloorAVX2(relu Register, v VecPhysical) {
	tmp := GP32()
	MOVBLZX(relu, tmp)
	DECL(tmp) // relu: 0; else all ones
	ANDL(U32(0x80000000), tmp)
	VMOVD(tmp, v.AsX())
	VPBROADCASTD(v.AsX(), v)
}

// genWinograd4OutputAVX2 generates winograd4OutputAVX2, or with pool
// winograd4OutputPoolAVX2, which always applies ReLU and then max-pools
// each 4x4 tile into 2x2 (VMAXPS, which on values that ReLU has made
// non-negative gives the same bits as Go's max).
//
// Register plan, per block of 8 tiles: for each column k of the 6x6
// products, Y0–Y5 receive M rows k, 6+k, ..., 30+k, and t = Aᵀ M (4x6)
// goes to a 24-vector scratch on the stack (16 registers cannot hold
// it). Then for each row of t, Y0–Y5 receive it, Y7–Y10 hold m1∓m2 and
// m3∓m4, the four values of the row of Y go to Y0–Y3, and are transposed
// into tile order (Y4–Y7, then Y0–Y3) and stored; pooling keeps the
// column-pair maxima of the even rows in Y11, Y12. Y13 is the load mask
// of short runs, Y14 the bias, Y15 the ReLU floor (see reluFloorAVX2).
func genWinograd4OutputAVX2(pool bool) {
	name := "winograd4OutputAVX2"
	if pool {
		name = "winograd4OutputPoolAVX2"
		TEXT(name, 0, "func(y []float32, ystride int, m []float32, mstride, n int, bias float32)")
		Pragma("noescape")
		Doc(
			"winograd4OutputPoolAVX2 computes, with AVX2, the output transform of",
			"winograd4OutputPoolRunGeneric: for the n tiles g, Y = Aᵀ M A + bias of",
			"M_p = m[p*mstride+g] (p = 6i+j), ReLU, and the 2x2 max-pool P of Y,",
			"P[a][b] going to y[a*ystride+2g+b]. The caller checks the lengths.",
		)
	} else {
		TEXT(name, 0, "func(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool)")
		Pragma("noescape")
		Doc(
			"winograd4OutputAVX2 computes, with AVX2, the output transform of",
			"winograd4OutputRunGeneric: for the n tiles g, Y = Aᵀ M A + bias of",
			"M_p = m[p*mstride+g] (p = 6i+j), with ReLU if relu, Y[r][c] going to",
			"y[r*ystride+4g+c]. The caller checks the lengths.",
		)
	}
	yrows, ybytes := 4, 16 // output rows; bytes per tile and row
	if pool {
		yrows, ybytes = 2, 8
	}
	tbuf := AllocLocal(24 * 32)
	ybuf := AllocLocal(yrows * 8 * ybytes)
	tb := GP64()
	LEAQ(tbuf, tb)
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
	n := Load(Param("n"), GP64())
	bias, floor, mask := Y14, Y15, Y13
	VBROADCASTSS(addr(Param("bias")), bias)
	if pool {
		VPXOR(floor, floor, floor)
	} else {
		reluFloorAVX2(Load(Param("relu"), GP8()), floor)
	}
	T := func(r, k int) Mem { return Mem{Base: tb, Disp: 32 * (6*r + k)} }

	// block emits one block of 8 tiles: M from m0 (loaded by load), Y
	// rows through out(r, v, disp) of the 32-byte vector v at byte disp
	// of output row r.
	block := func(m0 Register, load func(Mem, VecPhysical), out func(r int, v VecPhysical, disp int)) {
		base, base2 := GP64(), GP64()
		MOVQ(m0, base)
		z := []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5}
		for k := 0; k < 6; k++ {
			if k > 0 {
				ADDQ(ms, base)
			}
			LEAQ(Mem{Base: base, Index: s18, Scale: 1}, base2)
			load(Mem{Base: base}, z[0])
			load(Mem{Base: base, Index: s6, Scale: 1}, z[1])
			load(Mem{Base: base, Index: s6, Scale: 2}, z[2])
			load(Mem{Base: base2}, z[3])
			load(Mem{Base: base2, Index: s6, Scale: 1}, z[4])
			load(Mem{Base: base2, Index: s6, Scale: 2}, z[5])
			// t0 = m0 + m1 + m2 + m3 + m4
			VADDPS(z[1], z[0], Y6)
			VADDPS(z[2], Y6, Y6)
			VADDPS(z[3], Y6, Y6)
			VADDPS(z[4], Y6, Y6)
			VMOVUPS(Y6, T(0, k))
			atAVX2(z, Y7, Y8, Y9, Y10, Y6, func(i int, v VecPhysical) { VMOVUPS(v, T(i, k)) })
		}
		for r := 0; r < 4; r++ {
			a := []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5}
			for k, v := range a {
				VMOVUPS(T(r, k), v)
			}
			d12, s12, d34, s34 := Y7, Y8, Y9, Y10
			VSUBPS(a[2], a[1], d12)
			VADDPS(a[2], a[1], s12)
			VSUBPS(a[4], a[3], d34)
			VADDPS(a[4], a[3], s34)
			// y0 = a0 + a1 + a2 + a3 + a4 + b
			VADDPS(a[1], a[0], Y0)
			VADDPS(a[2], Y0, Y0)
			VADDPS(a[3], Y0, Y0)
			VADDPS(a[4], Y0, Y0)
			VADDPS(bias, Y0, Y0)
			VPMAXSD(floor, Y0, Y0)
			// y1 = a1 - a2 + 2*(a3-a4) + b
			VADDPS(d34, d34, Y1)
			VADDPS(Y1, d12, Y1)
			VADDPS(bias, Y1, Y1)
			VPMAXSD(floor, Y1, Y1)
			// y2 = a1 + a2 + 4*(a3+a4) + b
			VADDPS(s34, s34, Y2)
			VADDPS(Y2, Y2, Y2)
			VADDPS(Y2, s12, Y2)
			VADDPS(bias, Y2, Y2)
			VPMAXSD(floor, Y2, Y2)
			// y3 = a1 - a2 + 8*(a3-a4) + a5 + b
			VADDPS(d34, d34, Y3)
			VADDPS(Y3, Y3, Y3)
			VADDPS(Y3, Y3, Y3)
			VADDPS(Y3, d12, Y3)
			VADDPS(a[5], Y3, Y3)
			VADDPS(bias, Y3, Y3)
			VPMAXSD(floor, Y3, Y3)
			if pool {
				// Pairs of columns, then pairs of rows: P[a][b] =
				// max(max(Y[2a][2b], Y[2a][2b+1]), max(Y[2a+1][2b], Y[2a+1][2b+1])).
				if r%2 == 0 {
					VMAXPS(Y1, Y0, Y11)
					VMAXPS(Y3, Y2, Y12)
					continue
				}
				VMAXPS(Y1, Y0, Y4)
				VMAXPS(Y3, Y2, Y5)
				VMAXPS(Y4, Y11, Y0)   // P[a][0] of the 8 tiles
				VMAXPS(Y5, Y12, Y1)   // P[a][1]
				VUNPCKLPS(Y1, Y0, Y2) // tiles 0, 1 | 4, 5
				VUNPCKHPS(Y1, Y0, Y3) // tiles 2, 3 | 6, 7
				VINSERTF128(U8(1), Y3.AsX(), Y2, Y4)
				VPERM2F128(U8(0x31), Y3, Y2, Y5)
				out(r/2, Y4, 0)
				out(r/2, Y5, 32)
				continue
			}
			// Transpose: Y0–Y3 hold column c of the 8 tiles; the row
			// wants tile after tile (Y[r][0..3] of tile 0, of tile 1, ...).
			VUNPCKLPS(Y1, Y0, Y4)                // tiles 0, 1 | 4, 5: columns 0, 1
			VUNPCKHPS(Y1, Y0, Y5)                // tiles 2, 3 | 6, 7: columns 0, 1
			VUNPCKLPS(Y3, Y2, Y6)                // tiles 0, 1 | 4, 5: columns 2, 3
			VUNPCKHPS(Y3, Y2, Y7)                // tiles 2, 3 | 6, 7: columns 2, 3
			VUNPCKLPD(Y6, Y4, Y0)                // tile 0 | 4
			VUNPCKHPD(Y6, Y4, Y1)                // tile 1 | 5
			VUNPCKLPD(Y7, Y5, Y2)                // tile 2 | 6
			VUNPCKHPD(Y7, Y5, Y3)                // tile 3 | 7
			VINSERTF128(U8(1), Y1.AsX(), Y0, Y4) // tiles 0, 1
			VINSERTF128(U8(1), Y3.AsX(), Y2, Y5) // tiles 2, 3
			VPERM2F128(U8(0x31), Y1, Y0, Y6)     // tiles 4, 5
			VPERM2F128(U8(0x31), Y3, Y2, Y7)     // tiles 6, 7
			for j, v := range []VecPhysical{Y4, Y5, Y6, Y7} {
				out(r, v, 32*j)
			}
		}
	}

	TESTQ(n, n)
	JLE(LabelRef(name + "Done"))
	CMPQ(n, U8(8))
	JL(LabelRef(name + "Short"))
	blocksAVX2(name, n, name+"Done", func(o Register) {
		m0, p := GP64(), GP64()
		LEAQ(Mem{Base: mp, Index: o, Scale: 4}, m0)
		if pool {
			LEAQ(Mem{Base: yp, Index: o, Scale: 8}, p)
		} else {
			MOVQ(o, p)
			SHLQ(U8(4), p)
			ADDQ(yp, p)
		}
		block(m0, func(m Mem, v VecPhysical) { VMOVUPS(m, v) }, func(r int, v VecPhysical, disp int) {
			if r > 0 && disp == 0 {
				ADDQ(ys, p)
			}
			VMOVUPS(v, Mem{Base: p, Disp: disp})
		})
	})

	Label(name + "Short")
	Comment("Fewer than 8 tiles: masked loads, the rows through the buffer.")
	tailMaskAVX2(n, mask)
	bb := GP64()
	LEAQ(ybuf, bb)
	block(mp, func(m Mem, v VecPhysical) { VMASKMOVPS(m, mask, v) }, func(r int, v VecPhysical, disp int) {
		VMOVUPS(v, Mem{Base: bb, Disp: 8*ybytes*r + disp})
	})
	l := GP64()
	if pool {
		MOVQ(n, l)
		SHLQ(U8(3), l)
	} else {
		MOVQ(n, l)
		SHLQ(U8(4), l)
	}
	copyTailAVX2(name, bb, yp, ys, l, 8*ybytes, yrows, ybytes, 7*ybytes)
	Label(name + "Done")
	VZEROUPPER()
	RET()
}

// atAVX2 computes rows 1–3 of Aᵀ m for one column of the products, with
// the operations of winograd4OutputRunGeneric:
//
//	o1 = m1 - m2 + 2*(m3-m4)
//	o2 = m1 + m2 + 4*(m3+m4)
//	o3 = m1 - m2 + 8*(m3-m4) + m5
//
// using the temporaries d12, s12, d34, s34 (m1∓m2, m3∓m4) and w, and
// calling out(i, v) when o_i is in v.
func atAVX2(m []VecPhysical, d12, s12, d34, s34, w VecPhysical, out func(i int, v VecPhysical)) {
	VSUBPS(m[2], m[1], d12)
	VADDPS(m[2], m[1], s12)
	VSUBPS(m[4], m[3], d34)
	VADDPS(m[4], m[3], s34)
	VADDPS(d34, d34, w)
	VADDPS(w, d12, w)
	out(1, w)
	VADDPS(s34, s34, w)
	VADDPS(w, w, w)
	VADDPS(w, s12, w)
	out(2, w)
	VADDPS(d34, d34, w)
	VADDPS(w, w, w)
	VADDPS(w, w, w)
	VADDPS(w, d12, w)
	VADDPS(m[5], w, w)
	out(3, w)
}

// genWinograd2OutputAVX2 generates winograd2OutputAVX2, the F(2x2, 3x3)
// output transform. Per column j of the 4x4 products, Y0–Y3 receive M
// rows j, 4+j, 8+j, 12+j; r = Aᵀ M (2x4) goes to Y4–Y11 (r[i][j] in
// Y(4+4i+j)); the four outputs go to Y0–Y3 and each row of Y is
// interleaved into tile order (Y4–Y7). Y13 is the load mask of short
// runs, Y14 the bias, Y15 the ReLU floor (see reluFloorAVX2).
func genWinograd2OutputAVX2() {
	const name = "winograd2OutputAVX2"
	TEXT(name, 0, "func(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool)")
	Pragma("noescape")
	Doc(
		"winograd2OutputAVX2 computes, with AVX2, the output transform of",
		"winograd2OutputRunGeneric: for the n tiles g, Y = Aᵀ M A + bias of",
		"M_p = m[p*mstride+g] (p = 4i+j), with ReLU if relu, Y[r][c] going to",
		"y[r*ystride+2g+c]. The caller checks the lengths.",
	)
	ybuf := AllocLocal(2 * 64)
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
	n := Load(Param("n"), GP64())
	bias, floor, mask := Y14, Y15, Y13
	VBROADCASTSS(addr(Param("bias")), bias)
	reluFloorAVX2(Load(Param("relu"), GP8()), floor)
	R := func(i, j int) VecPhysical { return ymm[4+4*i+j] }

	block := func(m0 Register, load func(Mem, VecPhysical), out func(r int, v VecPhysical, disp int)) {
		base := GP64()
		MOVQ(m0, base)
		z := []VecPhysical{Y0, Y1, Y2, Y3}
		for j := 0; j < 4; j++ {
			if j > 0 {
				ADDQ(ms, base)
			}
			load(Mem{Base: base}, z[0])
			load(Mem{Base: base, Index: s4, Scale: 1}, z[1])
			load(Mem{Base: base, Index: s4, Scale: 2}, z[2])
			load(Mem{Base: base, Index: s12, Scale: 1}, z[3])
			// r0j = m_j + m_4+j + m_8+j, r1j = m_4+j - m_8+j - m_12+j
			VADDPS(z[1], z[0], R(0, j))
			VADDPS(z[2], R(0, j), R(0, j))
			VSUBPS(z[2], z[1], R(1, j))
			VSUBPS(z[3], R(1, j), R(1, j))
		}
		y := []VecPhysical{Y0, Y1, Y2, Y3}
		for i := 0; i < 2; i++ {
			// y_i0 = r_i0 + r_i1 + r_i2 + b, y_i1 = r_i1 - r_i2 - r_i3 + b
			VADDPS(R(i, 1), R(i, 0), y[2*i])
			VADDPS(R(i, 2), y[2*i], y[2*i])
			VADDPS(bias, y[2*i], y[2*i])
			VPMAXSD(floor, y[2*i], y[2*i])
			VSUBPS(R(i, 2), R(i, 1), y[2*i+1])
			VSUBPS(R(i, 3), y[2*i+1], y[2*i+1])
			VADDPS(bias, y[2*i+1], y[2*i+1])
			VPMAXSD(floor, y[2*i+1], y[2*i+1])
		}
		for i := 0; i < 2; i++ {
			// Row i: y_i0, y_i1 of tile 0, of tile 1, ...
			VUNPCKLPS(y[2*i+1], y[2*i], Y4) // tiles 0, 1 | 4, 5
			VUNPCKHPS(y[2*i+1], y[2*i], Y5) // tiles 2, 3 | 6, 7
			VINSERTF128(U8(1), Y5.AsX(), Y4, Y6)
			VPERM2F128(U8(0x31), Y5, Y4, Y7)
			out(i, Y6, 0)
			out(i, Y7, 32)
		}
	}

	TESTQ(n, n)
	JLE(LabelRef(name + "Done"))
	CMPQ(n, U8(8))
	JL(LabelRef(name + "Short"))
	blocksAVX2(name, n, name+"Done", func(o Register) {
		m0, p := GP64(), GP64()
		LEAQ(Mem{Base: mp, Index: o, Scale: 4}, m0)
		LEAQ(Mem{Base: yp, Index: o, Scale: 8}, p)
		block(m0, func(m Mem, v VecPhysical) { VMOVUPS(m, v) }, func(r int, v VecPhysical, disp int) {
			if r > 0 && disp == 0 {
				ADDQ(ys, p)
			}
			VMOVUPS(v, Mem{Base: p, Disp: disp})
		})
	})

	Label(name + "Short")
	Comment("Fewer than 8 tiles: masked loads, the rows through the buffer.")
	tailMaskAVX2(n, mask)
	bb := GP64()
	LEAQ(ybuf, bb)
	block(mp, func(m Mem, v VecPhysical) { VMASKMOVPS(m, mask, v) }, func(r int, v VecPhysical, disp int) {
		VMOVUPS(v, Mem{Base: bb, Disp: 64*r + disp})
	})
	l := GP64()
	MOVQ(n, l)
	SHLQ(U8(3), l)
	copyTailAVX2(name, bb, yp, ys, l, 64, 2, 8, 56)
	Label(name + "Done")
	VZEROUPPER()
	RET()
}

// winograd4PatchRun is the longest run that winograd4InputAVX2
// transforms patch by patch (see winograd4InputPatches) rather than
// through a block of 8: a patch costs about a quarter of a block (whose
// stores go through a buffer when the run is shorter than 8).
// winograd2InputAVX2 does every run shorter than 8 patch by patch, a
// patch costing about a tenth of a block.
const winograd4PatchRun = 3

// winograd4InputPatches emits the patch-by-patch path of
// winograd4InputAVX2, for short runs (the single tiles at the edges of
// every tile row, and the ends of runs cut by panel boundaries): for
// each patch, it loads the six rows of 6 columns (VMASKMOVPS), computes
// t = Bᵀ d with bt (rows of t in lanes 0–5 of Y6, Y7, Y12–Y15),
// transposes t so that lanes hold its rows, computes t B with bt again
// (column j of V in lanes 0–5 of each result) and stores the 36 values
// one by one: the same operations on the same values as the 8-patch
// path, without its fixed cost. n (≥ 1) is consumed.
func winograd4InputPatches(rows [6]Register, n Register, c4, c5 VecPhysical) {
	vp := Load(Param("v").Base(), GP64())
	vs := Load(Param("vstride"), GP64())
	SHLQ(U8(2), vs)
	s6, s18 := GP64(), GP64()
	LEAQ(Mem{Base: vs, Index: vs, Scale: 2}, s6) // 3 rows
	ADDQ(s6, s6)                                 // 6 rows
	LEAQ(Mem{Base: s6, Index: s6, Scale: 2}, s18)
	tailMaskAVX2Const(6)
	off := GP64()
	XORQ(off, off)
	a := []VecPhysical{Y0, Y1, Y2, Y3, Y4, Y5}
	T := []VecPhysical{Y6, Y7, Y12, Y13, Y14, Y15}
	x, y := Y8, Y9
	Label("winograd4InputAVX2Patch")
	mask := T[0] // T[0] is written after the loads
	VMOVDQU(*tailMaskConstMem, mask)
	for r := range a {
		VMASKMOVPS(Mem{Base: rows[r], Index: off, Scale: 4}, mask, a[r])
	}
	bt(a, x, y, c4, c5, func(r int) { VMOVAPS(x, T[r]) })
	// Transpose: lane k of T[r] is t[r][k] (k < 6); C[k] gets t[r][k] in
	// lane r.
	U := a
	VUNPCKLPS(T[1], T[0], U[0]) // t0, t1: columns 0, 1 | 4, 5
	VUNPCKHPS(T[1], T[0], U[1]) // columns 2, 3 | 6, 7
	VUNPCKLPS(T[3], T[2], U[2])
	VUNPCKHPS(T[3], T[2], U[3])
	VUNPCKLPS(T[5], T[4], U[4])
	VUNPCKHPS(T[5], T[4], U[5])
	W0, W1, W2, W3, H4, H5 := Y6, Y7, Y12, Y13, Y14, Y15
	VUNPCKLPD(U[2], U[0], W0) // column 0 rows 0–3 | column 4 rows 0–3
	VUNPCKHPD(U[2], U[0], W1) // column 1 | column 5
	VUNPCKLPD(U[3], U[1], W2) // column 2 | -
	VUNPCKHPD(U[3], U[1], W3) // column 3 | -
	VUNPCKHPD(U[4], U[4], H4) // t4, t5: column 1 twice | column 5 twice
	VUNPCKHPD(U[5], U[5], H5) // column 3 twice | -
	C := []VecPhysical{Y0, Y1, Y2, Y3, Y8, Y9}
	VPERM2F128(U8(0x31), U[4], W0, C[4]) // column 4
	VPERM2F128(U8(0x31), H4, W1, C[5])   // column 5
	VINSERTF128(U8(1), U[4].AsX(), W0, C[0])
	VINSERTF128(U8(1), H4.AsX(), W1, C[1])
	VINSERTF128(U8(1), U[5].AsX(), W2, C[2])
	VINSERTF128(U8(1), H5.AsX(), W3, C[3])
	// V = t B: bt on the columns gives, in lane r of its result j,
	// V[r][j], which goes to v[(6r+j)*vstride + i].
	p, q := GP64(), GP64()
	MOVQ(vp, p)
	x, y = Y6, Y7
	bt(C, x, y, c4, c5, func(j int) {
		if j > 0 {
			ADDQ(vs, p)
		}
		LEAQ(Mem{Base: p, Index: s18, Scale: 1}, q)
		VMOVSS(x.AsX(), Mem{Base: p})
		VEXTRACTPS(U8(1), x.AsX(), Mem{Base: p, Index: s6, Scale: 1})
		VEXTRACTPS(U8(2), x.AsX(), Mem{Base: p, Index: s6, Scale: 2})
		VEXTRACTPS(U8(3), x.AsX(), Mem{Base: q})
		VEXTRACTF128(U8(1), x, Y12.AsX())
		VMOVSS(Y12.AsX(), Mem{Base: q, Index: s6, Scale: 1})
		VEXTRACTPS(U8(1), Y12.AsX(), Mem{Base: q, Index: s6, Scale: 2})
	})
	ADDQ(U8(4), vp)
	ADDQ(U8(4), off) // 4 columns, 16 bytes
	DECQ(n)
	JNZ(LabelRef("winograd4InputAVX2Patch"))
}

// winograd2InputPatches emits the patch-by-patch path of
// winograd2InputAVX2, as winograd4InputPatches does for F(4x4): per
// patch, the four rows of 4 columns (XMM loads), t = Bᵀ d with bt2 into
// X4–X7, a 4x4 transpose, t B with bt2 and 16 single-float stores. n
// (≥ 1) is consumed.
func winograd2InputPatches(rows [4]Register, n Register) {
	vp := Load(Param("v").Base(), GP64())
	vs := Load(Param("vstride"), GP64())
	SHLQ(U8(2), vs)
	s4, s12 := GP64(), GP64()
	LEAQ(Mem{Base: vs, Index: vs, Scale: 2}, s4) // 3 rows
	ADDQ(vs, s4)                                 // 4 rows
	LEAQ(Mem{Base: s4, Index: s4, Scale: 2}, s12)
	off := GP64()
	XORQ(off, off)
	a := []VecPhysical{X0, X1, X2, X3}
	T := []VecPhysical{X4, X5, X6, X7}
	x := X8
	Label("winograd2InputAVX2Patch")
	for r := range a {
		VMOVUPS(Mem{Base: rows[r], Index: off, Scale: 8}, a[r])
	}
	bt2(a, x, func(r int) { VMOVAPS(x, T[r]) })
	U := a
	VUNPCKLPS(T[1], T[0], U[0])
	VUNPCKHPS(T[1], T[0], U[1])
	VUNPCKLPS(T[3], T[2], U[2])
	VUNPCKHPS(T[3], T[2], U[3])
	C := T
	VUNPCKLPD(U[2], U[0], C[0])
	VUNPCKHPD(U[2], U[0], C[1])
	VUNPCKLPD(U[3], U[1], C[2])
	VUNPCKHPD(U[3], U[1], C[3])
	p, q := GP64(), GP64()
	MOVQ(vp, p)
	bt2(C, x, func(j int) {
		if j > 0 {
			ADDQ(vs, p)
		}
		LEAQ(Mem{Base: p, Index: s12, Scale: 1}, q)
		VMOVSS(x, Mem{Base: p})
		VEXTRACTPS(U8(1), x, Mem{Base: p, Index: s4, Scale: 1})
		VEXTRACTPS(U8(2), x, Mem{Base: p, Index: s4, Scale: 2})
		VEXTRACTPS(U8(3), x, Mem{Base: q})
	})
	ADDQ(U8(4), vp)
	INCQ(off) // 2 columns, 8 bytes
	DECQ(n)
	JNZ(LabelRef("winograd2InputAVX2Patch"))
}
