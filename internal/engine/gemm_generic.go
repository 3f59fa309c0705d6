package engine

import "math"

// sgemmKernelGeneric is the pure-Go reference micro-kernel, against which
// the assembly kernels and sgemmKernelGeneric4x4 (the fallback on other
// architectures and under the purego build tag) are tested. It computes
// one mr×nr tile of C from packed panels
// (see packA and packB):
//
//	acc[i][j] = Σ_p a[p*mr+i] * b[p*nr+j]   for 0 ≤ p < kc, in order of p
//	c[i*ldc+j] = alpha*acc[i][j] + beta*c[i*ldc+j]
//
// for 0 ≤ i < mr, 0 ≤ j < nr. When beta is zero, c is overwritten without
// being read, so NaNs in c do not propagate (the BLAS convention).
// mr*nr must not exceed maxGemmTile.
func sgemmKernelGeneric(mr, nr, kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	var acc [maxGemmTile]float32
	a = a[:kc*mr]
	b = b[:kc*nr]
	for p := 0; p < kc; p++ {
		ap := a[p*mr : p*mr+mr]
		bp := b[p*nr : p*nr+nr]
		for i, av := range ap {
			row := acc[i*nr : i*nr+nr]
			for j, bv := range bp {
				row[j] += av * bv
			}
		}
	}
	sgemmStoreTile(mr, nr, acc[:mr*nr], nr, c, ldc, alpha, beta)
}

// sgemmKernelIndGeneric is the pure-Go reference of the indirect
// micro-kernels: sgemmKernelGeneric with alpha = 1 and B row p read at
// b[off[p]:off[p]+nr] instead of from a packed panel, and a bias and ReLU
// applied at the end:
//
//	acc[i][j] = Σ_p a[p*mr+i] * b[off[p]+j]   for 0 ≤ p < kc, in order of p
//	v = acc[i][j] + beta*c[i*ldc+j]            (c not read when beta is 0)
//	v += bias[i]                               if len(bias) > 0
//	c[i*ldc+j] = max(v, 0) if relu, else v
//
// It is also the fallback without assembly.
func sgemmKernelIndGeneric(mr, nr, kc int, a, b []float32, off []int32, c []float32, ldc int, beta float32, bias []float32, relu bool) {
	var acc [maxGemmTile]float32
	a = a[:kc*mr]
	for p, o := range off[:kc] {
		ap := a[p*mr : p*mr+mr]
		bp := b[o : int(o)+nr]
		for i, av := range ap {
			row := acc[i*nr : i*nr+nr]
			for j, bv := range bp {
				row[j] += av * bv
			}
		}
	}
	sgemmStoreTile(mr, nr, acc[:mr*nr], nr, c, ldc, 1, beta)
	if len(bias) == 0 && !relu {
		return
	}
	for i := 0; i < mr; i++ {
		row := c[i*ldc : i*ldc+nr]
		for j, v := range row {
			if len(bias) > 0 {
				v += bias[i]
			}
			if relu {
				v = relu32(v)
			}
			row[j] = v
		}
	}
}

// sgemmStoreTile writes c[i*ldc+j] = alpha*t[i*ldt+j] + beta*c[i*ldc+j] for
// 0 ≤ i < rows, 0 ≤ j < cols, not reading c when beta is zero.
func sgemmStoreTile(rows, cols int, t []float32, ldt int, c []float32, ldc int, alpha, beta float32) {
	for i := 0; i < rows; i++ {
		ti := t[i*ldt : i*ldt+cols]
		ci := c[i*ldc : i*ldc+cols]
		if beta == 0 {
			for j, v := range ti {
				ci[j] = alpha * v
			}
			continue
		}
		for j, v := range ti {
			ci[j] = alpha*v + beta*ci[j]
		}
	}
}

// sgemmKernelGeneric4x4 is sgemmKernelGeneric for mr = nr = 4 with the
// accumulators in local variables, the pure-Go kernel Sgemm uses without
// assembly. It performs the same operations in the same order.
func sgemmKernelGeneric4x4(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	var (
		c00, c01, c02, c03 float32
		c10, c11, c12, c13 float32
		c20, c21, c22, c23 float32
		c30, c31, c32, c33 float32
	)
	a = a[:kc*4]
	b = b[:kc*4]
	for p := 0; p+4 <= len(a); p += 4 {
		ap := a[p : p+4 : p+4]
		bp := b[p : p+4 : p+4]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		a0 := ap[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := ap[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a2 := ap[2]
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		a3 := ap[3]
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	t := [16]float32{
		c00, c01, c02, c03,
		c10, c11, c12, c13,
		c20, c21, c22, c23,
		c30, c31, c32, c33,
	}
	sgemmStoreTile(4, 4, t[:], 4, c, ldc, alpha, beta)
}

// relu32 is max(v, 0) without a branch.
func relu32(v float32) float32 {
	u := math.Float32bits(v)
	return math.Float32frombits(u &^ uint32(int32(u)>>31))
}
