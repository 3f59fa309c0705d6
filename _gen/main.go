// Command _gen generates the amd64 assembly kernels of package
// github.com/stylespace/style/internal/engine with avo: the SGEMM
// micro-kernels (gemm_amd64.s and gemm_stubs_amd64.go) and, with
// -kernels, the Winograd transforms, the distance and the optimizer
// kernels.
//
// Run it from the repository root with
//
//	go generate -run _gen ./internal/engine
//
// which executes, for the SGEMM kernels,
//
//	go -C ../../_gen run . -out ../internal/engine/gemm_amd64.s -stubs ../internal/engine/gemm_stubs_amd64.go -pkg engine
//
// The generator lives in its own module so that the library does not
// depend on avo.
//
// Each kernel computes one MR×NR tile of C from packed panels:
//
//	for p := 0; p < kc; p++ {
//		for i := 0; i < MR; i++ {
//			for j := 0; j < NR; j++ {
//				acc[i][j] += a[p*MR+i] * b[p*NR+j]
//			}
//		}
//	}
//	C[i][j] = alpha*acc[i][j] + beta*C[i][j]   (C is not read when beta == 0)
//
// with the NR columns held in vector registers, the A values broadcast and
// multiplied in with VFMADD231PS. The reference is sgemmKernelGeneric in
// gemm_generic.go.
package main

import (
	"flag"
	"fmt"

	"github.com/mmcloughlin/avo/gotypes"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	. "github.com/mmcloughlin/avo/reg"
)

const signature = "func(kc int, a, b, c []float32, ldc int, alpha, beta float32)"

// indSignature is the signature of the indirect kernels, whose B rows are
// read at b[off[p]:] instead of from a packed panel.
const indSignature = "func(kc int, a, b []float32, off []int32, c []float32, ldc int, beta float32, bias []float32, relu bool)"

// kernel describes one register-tiled micro-kernel.
type kernel struct {
	name     string
	isa      string // for the doc comment
	mr       int    // rows of the tile (broadcast A values)
	nvec     int    // vectors per row of the tile
	lanes    int    // float32 lanes per vector
	unroll   int    // k-loop unrolling
	prefetch int    // prefetch distance in k steps (0: none)
	vec      func(i int) VecPhysical
	zero     func(r VecPhysical) // clears a vector register
	// ind makes the indirect variant: B row p is the nr floats at
	// b[off[p]:] (an implicit im2col matrix read in place), and alpha is 1.
	ind bool
	// bprefetch, for an indirect kernel, is the distance in k steps at
	// which it prefetches the B rows (0: none). The loop that does so runs
	// while that many steps remain after its own, so that it reads no
	// offset past off[kc-1].
	bprefetch int
}

var zmm = []VecPhysical{
	Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15,
	Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31,
}

var ymm = []VecPhysical{
	Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15,
}

func main() {
	flag.Parse()
	ConstraintExpr("!purego")
	if *kernels == "optim" {
		genOptim()
		Generate()
		return
	}
	if *kernels == "winograd" {
		genWinograd4Input()
		genWinograd4Output(false)
		genWinograd4Output(true)
		genWinograd2Input()
		genWinograd2Output()
		genWinograd4InputAVX2()
		genWinograd4OutputAVX2(false)
		genWinograd4OutputAVX2(true)
		genWinograd2InputAVX2()
		genWinograd2OutputAVX2()
		Generate()
		return
	}
	if *kernels == "dist" {
		genDist()
		genDistAVX2()
		Generate()
		return
	}
	gen(kernel{
		name: "sgemmKernelAVX512", isa: "AVX-512F",
		mr: 14, nvec: 2, lanes: 16, unroll: 4, prefetch: 8,
		vec:  func(i int) VecPhysical { return zmm[i] },
		zero: func(r VecPhysical) { VPXORD(r, r, r) }, // AVX-512F (VXORPS zmm needs DQ)
	})
	// The AVX2 kernel prefetches 64 steps ahead, 1.5 KiB of its 6-row A
	// panel: the Winograd products stream their packed weights (A) from
	// memory, one use per 16-tile B panel, and without prefetching the
	// kernel waited on them. On a 2-core AMD EPYC (Zen 5, AVX2 path) that
	// took the products of a 512-channel band from 86-93 to 100-103
	// GFLOP per CPU-second (58-79 to 86-100 while other processes loaded
	// the machine), with no change when A is resident in L2; 8 and 16
	// steps gained little, 48 to 96 about the same as 64.
	gen(kernel{
		name: "sgemmKernelAVX2", isa: "AVX2 and FMA",
		mr: 6, nvec: 2, lanes: 8, unroll: 4, prefetch: 64,
		vec:  func(i int) VecPhysical { return ymm[i] },
		zero: func(r VecPhysical) { VXORPS(r, r, r) },
	})
	gen(kernel{
		name: "sgemmKernelIndAVX512", isa: "AVX-512F",
		mr: 14, nvec: 2, lanes: 16, unroll: 4, prefetch: 8, ind: true,
		vec:  func(i int) VecPhysical { return zmm[i] },
		zero: func(r VecPhysical) { VPXORD(r, r, r) },
	})
	// The AVX2 indirect kernel prefetches its B rows 16 steps ahead: on
	// the deep 1x1 layers of ResNet-50 (K = 1024, 14x14 maps, B read in
	// place from 1024 planes) that took 11-12% off their CPU time on a
	// 2-core AMD EPYC (Zen 5, AVX2 path); prefetching A as the packed
	// kernel does made no measurable difference.
	gen(kernel{
		name: "sgemmKernelIndAVX2", isa: "AVX2 and FMA",
		mr: 6, nvec: 2, lanes: 8, unroll: 4, ind: true, bprefetch: 16,
		vec:  func(i int) VecPhysical { return ymm[i] },
		zero: func(r VecPhysical) { VXORPS(r, r, r) },
	})
	genPeak("sgemmPeakAVX512", "AVX-512F", 24, 16, func(i int) VecPhysical { return zmm[i] },
		func(r VecPhysical) { VPXORD(r, r, r) })
	genPeak("sgemmPeakAVX2", "AVX2 and FMA", 12, 8, func(i int) VecPhysical { return ymm[i] },
		func(r VecPhysical) { VXORPS(r, r, r) })
	Generate()
}

// genPeak generates a calibration loop for the benchmarks: n iterations
// of nacc independent register-only VFMADD231PS, the FMA throughput limit
// that the micro-kernel is measured against.
func genPeak(name, isa string, nacc, lanes int, vec func(i int) VecPhysical, zero func(VecPhysical)) {
	TEXT(name, NOSPLIT, "func(n int)")
	Pragma("noescape")
	Doc(
		fmt.Sprintf("%s executes n×%d independent %s VFMADD231PS on registers", name, nacc, isa),
		fmt.Sprintf("(%d flops each) and nothing else. Benchmarks compare the micro-kernel", 2*lanes),
		"with it to measure the kernel against the FMA peak of the machine as it is",
		"loaded at the time. Go equivalent: for range n*nacc*lanes { x += y * z }.",
	)
	n := Load(Param("n"), GP64())
	for i := 0; i < nacc+2; i++ {
		zero(vec(i))
	}
	Label(name + "_loop")
	TESTQ(n, n)
	JE(LabelRef(name + "_done"))
	for i := 0; i < nacc; i++ {
		VFMADD231PS(vec(nacc), vec(nacc+1), vec(i))
	}
	DECQ(n)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}

// addr returns the stack address of a scalar parameter.
func addr(c gotypes.Component) Mem {
	b, err := c.Resolve()
	if err != nil {
		panic(err)
	}
	return b.Addr
}

func gen(k kernel) {
	nr := k.nvec * k.lanes
	vbytes := 4 * k.lanes
	nacc := k.mr * k.nvec
	// Register plan: accumulators first, then the B row, then one
	// broadcast register. Alpha and beta reuse the B registers after
	// the loop.
	acc := func(i, v int) VecPhysical { return k.vec(i*k.nvec + v) }
	bv := func(v int) VecPhysical { return k.vec(nacc + v) }
	bc := k.vec(nacc + k.nvec)

	if k.ind {
		TEXT(k.name, NOSPLIT, indSignature)
		Pragma("noescape")
		Doc(
			fmt.Sprintf("%s computes one %d×%d tile of C with %s from an", k.name, k.mr, nr, k.isa),
			"indirect B:",
			"",
			fmt.Sprintf("\tC[i*ldc+j] = Σ_p a[p*%d+i]*b[off[p]+j] + beta*C[i*ldc+j] (+ bias[i]) (then max(·, 0) if relu)", k.mr),
			"",
			"for 0 ≤ i < "+fmt.Sprint(k.mr)+", 0 ≤ j < "+fmt.Sprint(nr)+", 0 ≤ p < kc, reading no C when beta is ±0;",
			fmt.Sprintf("bias is added when it is not empty (it then holds at least %d values).", k.mr),
			fmt.Sprintf("a is a packed panel of at least kc*%d elements, off holds kc offsets with", k.mr),
			fmt.Sprintf("0 ≤ off[p] ≤ len(b)-%d, and c holds at least %d*ldc+%d; the caller", nr, k.mr-1, nr),
			"checks this. The reference loop is sgemmKernelIndGeneric in gemm_generic.go.",
		)
	} else {
		TEXT(k.name, NOSPLIT, signature)
		Pragma("noescape")
		Doc(
			fmt.Sprintf("%s computes one %d×%d tile of C with %s:", k.name, k.mr, nr, k.isa),
			"",
			fmt.Sprintf("\tC[i*ldc+j] = alpha*Σ_p a[p*%d+i]*b[p*%d+j] + beta*C[i*ldc+j]", k.mr, nr),
			"",
			"for 0 ≤ i < "+fmt.Sprint(k.mr)+", 0 ≤ j < "+fmt.Sprint(nr)+", 0 ≤ p < kc, reading no C when beta is ±0.",
			"a and b are packed panels (see packA and packB) of at least",
			fmt.Sprintf("kc*%d and kc*%d elements and c holds at least %d*ldc+%d; the caller", k.mr, nr, k.mr-1, nr),
			"checks this. The reference loop is sgemmKernelGeneric in gemm_generic.go.",
		)
	}

	kc := Load(Param("kc"), GP64())
	a := Load(Param("a").Base(), GP64())
	b := Load(Param("b").Base(), GP64())
	var off Register
	var row GPVirtual
	if k.ind {
		off = Load(Param("off").Base(), GP64())
		row = GP64()
	}

	Comment("Prefetch the C tile, which is read after the loop.")
	{
		c := Load(Param("c").Base(), GP64())
		ldc := Load(Param("ldc"), GP64())
		SHLQ(U8(2), ldc)
		for i := 0; i < k.mr; i++ {
			for off := 0; off < 4*nr; off += 64 {
				PREFETCHT0(Mem{Base: c, Disp: off})
			}
			if i < k.mr-1 {
				ADDQ(ldc, c)
			}
		}
	}

	Comment("Zero the accumulators.")
	for i := 0; i < k.mr; i++ {
		for v := 0; v < k.nvec; v++ {
			r := acc(i, v)
			k.zero(r)
		}
	}

	step := func(p int) {
		if k.ind {
			// B row p: nr floats at b + 4*off[p].
			MOVLQSX(Mem{Base: off, Disp: 4 * p}, row)
			for v := 0; v < k.nvec; v++ {
				VMOVUPS(Mem{Base: b, Index: row, Scale: 4, Disp: 4 * v * k.lanes}, bv(v))
			}
		} else {
			for v := 0; v < k.nvec; v++ {
				VMOVUPS(Mem{Base: b, Disp: 4 * (p*nr + v*k.lanes)}, bv(v))
			}
		}
		if k.ind && k.prefetch > 0 {
			// The rows of an indirect B are reused across row panels
			// and stay in cache; only A streams.
			PREFETCHT0(Mem{Base: a, Disp: 4 * (p + k.prefetch) * k.mr})
		} else if k.prefetch > 0 {
			// Software prefetch of the packed panels, which stream from
			// L2: one line of A and the nr floats of B, prefetch steps
			// ahead. Prefetches past the end of the panels are harmless.
			for off := 0; off < 4*nr; off += 64 {
				PREFETCHT0(Mem{Base: b, Disp: 4*(p+k.prefetch)*nr + off})
			}
			PREFETCHT0(Mem{Base: a, Disp: 4 * (p + k.prefetch) * k.mr})
		}
		for i := 0; i < k.mr; i++ {
			VBROADCASTSS(Mem{Base: a, Disp: 4 * (p*k.mr + i)}, bc)
			for v := 0; v < k.nvec; v++ {
				VFMADD231PS(bv(v), bc, acc(i, v))
			}
		}
	}

	if k.ind && k.bprefetch > 0 {
		// The B rows of an indirect kernel are scattered (one per input
		// channel or tap), beyond what the hardware prefetchers follow.
		Comment(fmt.Sprintf("Loop prefetching the B rows %d steps ahead, unrolled %d times.", k.bprefetch, k.unroll))
		pf := GP64()
		Label(k.name + "_loopp")
		CMPQ(kc, U8(k.unroll+k.bprefetch))
		JL(LabelRef(k.name + "_loop4"))
		for p := 0; p < k.unroll; p++ {
			MOVLQSX(Mem{Base: off, Disp: 4 * (p + k.bprefetch)}, pf)
			PREFETCHT0(Mem{Base: b, Index: pf, Scale: 4})
			PREFETCHT0(Mem{Base: b, Index: pf, Scale: 4, Disp: 4*nr - 4})
			step(p)
		}
		ADDQ(U32(4*k.mr*k.unroll), a)
		ADDQ(U32(4*k.unroll), off)
		SUBQ(U8(k.unroll), kc)
		JMP(LabelRef(k.name + "_loopp"))
	}

	Comment(fmt.Sprintf("Main loop, unrolled %d times.", k.unroll))
	Label(k.name + "_loop4")
	CMPQ(kc, U8(k.unroll))
	JL(LabelRef(k.name + "_tail"))
	for p := 0; p < k.unroll; p++ {
		step(p)
	}
	ADDQ(U32(4*k.mr*k.unroll), a)
	if k.ind {
		ADDQ(U32(4*k.unroll), off)
	} else {
		ADDQ(U32(4*nr*k.unroll), b)
	}
	SUBQ(U8(k.unroll), kc)
	JMP(LabelRef(k.name + "_loop4"))

	Label(k.name + "_tail")
	TESTQ(kc, kc)
	JE(LabelRef(k.name + "_store"))
	step(0)
	ADDQ(U8(4*k.mr), a)
	if k.ind {
		ADDQ(U8(4), off)
	} else {
		ADDQ(U32(4*nr), b)
	}
	DECQ(kc)
	JMP(LabelRef(k.name + "_tail"))

	if k.ind {
		genIndStore(k, acc, bv, bc)
		return
	}
	Label(k.name + "_store")
	c := Load(Param("c").Base(), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	beta := bv(1)
	VBROADCASTSS(addr(Param("beta")), beta)
	if !k.ind {
		alpha := bv(0)
		VBROADCASTSS(addr(Param("alpha")), alpha)
		Comment("Scale by alpha.")
		for i := 0; i < k.mr; i++ {
			for v := 0; v < k.nvec; v++ {
				VMULPS(alpha, acc(i, v), acc(i, v))
			}
		}
	}
	Comment("beta == ±0: overwrite C without reading it.")
	bits := GP32()
	MOVL(addr(Param("beta")), bits)
	SHLL(U8(1), bits)
	JNE(LabelRef(k.name + "_beta"))
	crow := GP64()
	MOVQ(c, crow)
	for i := 0; i < k.mr; i++ {
		for v := 0; v < k.nvec; v++ {
			VMOVUPS(acc(i, v), Mem{Base: crow, Disp: v * vbytes})
		}
		if i < k.mr-1 {
			ADDQ(ldc, crow)
		}
	}
	VZEROUPPER()
	RET()

	Label(k.name + "_beta")
	Comment("C = alpha*acc + beta*C.")
	for i := 0; i < k.mr; i++ {
		for v := 0; v < k.nvec; v++ {
			m := Mem{Base: c, Disp: v * vbytes}
			VFMADD231PS(m, beta, acc(i, v))
			VMOVUPS(acc(i, v), m)
		}
		if i < k.mr-1 {
			ADDQ(ldc, c)
		}
	}
	VZEROUPPER()
	RET()
}

// genIndStore generates the end of an indirect kernel: C = acc + beta*C,
// plus bias[i] on row i when bias is not empty, then ReLU when relu is
// set, so that the last depth block of a convolution leaves finished
// outputs.
func genIndStore(k kernel, acc func(i, v int) VecPhysical, bv func(v int) VecPhysical, bc VecPhysical) {
	vbytes := 4 * k.lanes
	Label(k.name + "_store")
	c := Load(Param("c").Base(), GP64())
	ldc := Load(Param("ldc"), GP64())
	SHLQ(U8(2), ldc)
	beta := bv(1)
	VBROADCASTSS(addr(Param("beta")), beta)
	Comment("beta == ±0: C is not read.")
	bits := GP32()
	MOVL(addr(Param("beta")), bits)
	SHLL(U8(1), bits)
	JE(LabelRef(k.name + "_bias"))
	Comment("acc += beta*C.")
	crow := GP64()
	MOVQ(c, crow)
	for i := 0; i < k.mr; i++ {
		for v := 0; v < k.nvec; v++ {
			VFMADD231PS(Mem{Base: crow, Disp: v * vbytes}, beta, acc(i, v))
		}
		if i < k.mr-1 {
			ADDQ(ldc, crow)
		}
	}

	Label(k.name + "_bias")
	n := Load(Param("bias").Len(), GP64())
	TESTQ(n, n)
	JE(LabelRef(k.name + "_relu"))
	Comment("acc[i] += bias[i].")
	bias := Load(Param("bias").Base(), GP64())
	for i := 0; i < k.mr; i++ {
		VBROADCASTSS(Mem{Base: bias, Disp: 4 * i}, bc)
		for v := 0; v < k.nvec; v++ {
			VADDPS(bc, acc(i, v), acc(i, v))
		}
	}

	Label(k.name + "_relu")
	relu := Load(Param("relu"), GP32())
	TESTL(relu, relu)
	JE(LabelRef(k.name + "_out"))
	Comment("acc = max(acc, 0).")
	zero := bv(0)
	k.zero(zero)
	for i := 0; i < k.mr; i++ {
		for v := 0; v < k.nvec; v++ {
			VMAXPS(zero, acc(i, v), acc(i, v))
		}
	}

	Label(k.name + "_out")
	for i := 0; i < k.mr; i++ {
		for v := 0; v < k.nvec; v++ {
			VMOVUPS(acc(i, v), Mem{Base: c, Disp: v * vbytes})
		}
		if i < k.mr-1 {
			ADDQ(ldc, c)
		}
	}
	VZEROUPPER()
	RET()
}
