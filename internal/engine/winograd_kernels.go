package engine

//go:generate go -C ../../_gen run . -kernels winograd -out ../internal/engine/winograd_amd64.s -stubs ../internal/engine/winograd_stubs_amd64.go -pkg engine

import "fmt"

// The Winograd F(4x4, 3x3) and F(2x2, 3x3) transform kernels (see
// conv_winograd_packed.go and conv_winograd.go for the matrices). Each
// has a pure-Go reference, always compiled, which is also the fallback;
// winograd_kernels_amd64.go lists AVX-512 versions (generated into
// winograd_amd64.s by _gen), used when the CPU has AVX-512F and BMI2.
// The assembly does the same float32 operations in the same order, one
// tile per vector lane, without fused multiply-adds, so both give
// bit-identical results on finite inputs.

// winogradKernels is the kernel table of the transforms (see isa.go):
// its active value reports whether the dispatchers below call the
// assembly (the *Asm functions of winograd_kernels_amd64.go) rather than
// the Go references. There are no AVX2 versions.
var winogradKernels = newFamily("winograd", append(winogradAsm(), impl[bool]{isa: isaGeneric, ok: true, k: false})...)

// winograd4MaxRun is the longest run of patches winograd4InputRun takes.
const winograd4MaxRun = 32

// winograd4InputRun transforms n ≤ 32 consecutive 6x6 patches of one
// channel, whose top-left corners are at columns 0, 4, ... of the six
// rows d (4n+2 floats each), and writes V_p of patch i to
// v[p*vstride+i]. It panics if n > 32 or the slices are too short.
func winograd4InputRun(v []float32, vstride int, d *[6][]float32, n int) {
	if n <= 0 {
		return
	}
	if n > winograd4MaxRun {
		panic("style: winograd4InputRun: run longer than 32 tiles")
	}
	cols := 4*n + 2
	for r := range d {
		if len(d[r]) < cols {
			panic(fmt.Sprintf("style: winograd4InputRun: row %d has %d floats, want %d", r, len(d[r]), cols))
		}
	}
	if vstride < n || len(v) < 35*vstride+n {
		panic(fmt.Sprintf("style: winograd4InputRun: %d floats for 36 rows of stride %d and length %d", len(v), vstride, n))
	}
	if !winogradKernels.active {
		winograd4InputRunGeneric(v, vstride, d, n)
		return
	}
	if RaceEnabled {
		for r := range d {
			raceReadFloat32s(d[r][:cols])
		}
		raceWriteRows(v, 36, vstride, n)
	}
	winograd4InputAsm(v, vstride, d, n)
}

// winograd4InputRunGeneric is the reference of winograd4InputRun and of
// its assembly kernel: t = Bᵀ d on whole rows, then t B per patch. The
// explicit float32 conversions keep the products by 5 (the only inexact
// ones) from being fused into the sums.
func winograd4InputRunGeneric(v []float32, vstride int, d *[6][]float32, n int) {
	const maxCols = 4*winograd4MaxRun + 2
	cols := 4*n + 2
	d0 := d[0][:cols]
	d1 := d[1][:cols]
	d2 := d[2][:cols]
	d3 := d[3][:cols]
	d4 := d[4][:cols]
	d5 := d[5][:cols]
	var buf [6 * maxCols]float32
	t0 := buf[0*maxCols : 0*maxCols+cols]
	t1 := buf[1*maxCols : 1*maxCols+cols]
	t2 := buf[2*maxCols : 2*maxCols+cols]
	t3 := buf[3*maxCols : 3*maxCols+cols]
	t4 := buf[4*maxCols : 4*maxCols+cols]
	t5 := buf[5*maxCols : 5*maxCols+cols]
	for k := range d0 {
		a0, a1, a2, a3, a4, a5 := d0[k], d1[k], d2[k], d3[k], d4[k], d5[k]
		t0[k] = 4*a0 - float32(5*a2) + a4
		t1[k] = a3 + a4 - 4*(a1+a2)
		t2[k] = 4*(a1-a2) + a4 - a3
		t3[k] = 2*(a3-a1) + a4 - a2
		t4[k] = 2*(a1-a3) + a4 - a2
		t5[k] = 4*a1 - float32(5*a3) + a5
	}
	for r, t := range [6][]float32{t0, t1, t2, t3, t4, t5} {
		base := 6 * r * vstride
		w0 := v[base : base+n]
		w1 := v[base+vstride:][:len(w0)]
		w2 := v[base+2*vstride:][:len(w0)]
		w3 := v[base+3*vstride:][:len(w0)]
		w4 := v[base+4*vstride:][:len(w0)]
		w5 := v[base+5*vstride:][:len(w0)]
		for i := range w0 {
			q := t[4*i : 4*i+6 : 4*i+6]
			a0, a1, a2, a3, a4, a5 := q[0], q[1], q[2], q[3], q[4], q[5]
			w0[i] = 4*a0 - float32(5*a2) + a4
			w1[i] = a3 + a4 - 4*(a1+a2)
			w2[i] = 4*(a1-a2) + a4 - a3
			w3[i] = 2*(a3-a1) + a4 - a2
			w4[i] = 2*(a1-a3) + a4 - a2
			w5[i] = 4*a1 - float32(5*a3) + a5
		}
	}
}

// winograd4OutputRun applies Y = Aᵀ M A + bias to the n tiles g of one
// output channel, M_p of tile g (p = 6i+j) being m[p*mstride+g], applies
// ReLU if relu, and writes row r of the tiles one after another:
// Y[r][c] of tile g goes to y[r*ystride+4g+c]. It panics if the strides
// are shorter than n (4n for ystride) or the slices too short.
func winograd4OutputRun(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool) {
	if n <= 0 {
		return
	}
	checkOutputRun("winograd4OutputRun", y, 4, ystride, 4*n, m, 36, mstride, n)
	if !winogradKernels.active {
		winograd4OutputRunGeneric(y, ystride, m, mstride, n, bias, relu)
		return
	}
	if RaceEnabled {
		raceReadRows(m, 36, mstride, n)
		raceWriteRows(y, 4, ystride, 4*n)
	}
	winograd4OutputAsm(y, ystride, m, mstride, n, bias, relu)
}

// winograd4OutputRunGeneric is the reference of winograd4OutputRun and
// of its assembly kernel.
func winograd4OutputRunGeneric(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool) {
	var ms [36][]float32
	for p := range ms {
		ms[p] = m[p*mstride : p*mstride+n]
	}
	var ys [4][]float32
	for r := range ys {
		ys[r] = y[r*ystride : r*ystride+4*n]
	}
	b := bias
	for g := range n {
		// t = Aᵀ M (4 x 6).
		var t [4][6]float32
		for k := range 6 {
			m0, m1, m2, m3, m4, m5 := ms[k][g], ms[6+k][g], ms[12+k][g], ms[18+k][g], ms[24+k][g], ms[30+k][g]
			t[0][k] = m0 + m1 + m2 + m3 + m4
			t[1][k] = m1 - m2 + 2*(m3-m4)
			t[2][k] = m1 + m2 + 4*(m3+m4)
			t[3][k] = m1 - m2 + 8*(m3-m4) + m5
		}
		// Y = t A (4 x 4), plus bias.
		for r := range 4 {
			a0, a1, a2, a3, a4, a5 := t[r][0], t[r][1], t[r][2], t[r][3], t[r][4], t[r][5]
			y0 := a0 + a1 + a2 + a3 + a4 + b
			y1 := a1 - a2 + 2*(a3-a4) + b
			y2 := a1 + a2 + 4*(a3+a4) + b
			y3 := a1 - a2 + 8*(a3-a4) + a5 + b
			if relu {
				y0, y1, y2, y3 = relu32(y0), relu32(y1), relu32(y2), relu32(y3)
			}
			d := ys[r][4*g : 4*g+4 : 4*g+4]
			d[0], d[1], d[2], d[3] = y0, y1, y2, y3
		}
	}
}

// winogradInputRun transforms n ≤ 32 consecutive 4x4 patches of one
// channel (F(2x2, 3x3)), whose top-left corners are at columns 0, 2, ...
// of the four rows d (2n+2 floats each), and writes V_p of patch i to
// v[p*vstride+i]. It panics if n > 32 or the slices are too short.
func winogradInputRun(v []float32, vstride int, d *[4][]float32, n int) {
	if n <= 0 {
		return
	}
	if n > winograd4MaxRun {
		panic("style: winogradInputRun: run longer than 32 tiles")
	}
	cols := 2*n + 2
	for r := range d {
		if len(d[r]) < cols {
			panic(fmt.Sprintf("style: winogradInputRun: row %d has %d floats, want %d", r, len(d[r]), cols))
		}
	}
	if vstride < n || len(v) < 15*vstride+n {
		panic(fmt.Sprintf("style: winogradInputRun: %d floats for 16 rows of stride %d and length %d", len(v), vstride, n))
	}
	if !winogradKernels.active {
		winogradInputRunGeneric(v, vstride, d, n)
		return
	}
	if RaceEnabled {
		for r := range d {
			raceReadFloat32s(d[r][:cols])
		}
		raceWriteRows(v, 16, vstride, n)
	}
	winograd2InputAsm(v, vstride, d, n)
}

// winogradInputRunGeneric is the reference of winogradInputRun and of
// its assembly kernel: t = Bᵀ d on whole rows, then t B per patch.
func winogradInputRunGeneric(v []float32, vstride int, d *[4][]float32, n int) {
	const maxCols = 2*winograd4MaxRun + 2
	cols := 2*n + 2
	d0 := d[0][:cols]
	d1 := d[1][:cols]
	d2 := d[2][:cols]
	d3 := d[3][:cols]
	var buf [4 * maxCols]float32
	t0, t1 := buf[0:cols], buf[maxCols:maxCols+cols]
	t2, t3 := buf[2*maxCols:2*maxCols+cols], buf[3*maxCols:3*maxCols+cols]
	for k := range d0 {
		a, b, c, e := d0[k], d1[k], d2[k], d3[k]
		t0[k] = a - c
		t1[k] = b + c
		t2[k] = c - b
		t3[k] = b - e
	}
	for r, t := range [4][]float32{t0, t1, t2, t3} {
		base := 4 * r * vstride
		w0 := v[base : base+n]
		w1 := v[base+vstride:][:len(w0)]
		w2 := v[base+2*vstride:][:len(w0)]
		w3 := v[base+3*vstride:][:len(w0)]
		for i := range w0 {
			q := t[2*i : 2*i+4 : 2*i+4]
			w0[i], w1[i], w2[i], w3[i] = q[0]-q[2], q[1]+q[2], q[2]-q[1], q[1]-q[3]
		}
	}
}

// winograd2OutputRun applies Y = Aᵀ M A + bias of F(2x2, 3x3) to the n
// tiles g of one output channel, M_p of tile g (p = 4i+j) being
// m[p*mstride+g], applies ReLU if relu, and writes row r of the tiles one
// after another: Y[r][c] of tile g goes to y[r*ystride+2g+c]. It panics
// if the strides are shorter than n (2n for ystride) or the slices too
// short.
func winograd2OutputRun(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool) {
	if n <= 0 {
		return
	}
	checkOutputRun("winograd2OutputRun", y, 2, ystride, 2*n, m, 16, mstride, n)
	if !winogradKernels.active {
		winograd2OutputRunGeneric(y, ystride, m, mstride, n, bias, relu)
		return
	}
	if RaceEnabled {
		raceReadRows(m, 16, mstride, n)
		raceWriteRows(y, 2, ystride, 2*n)
	}
	winograd2OutputAsm(y, ystride, m, mstride, n, bias, relu)
}

// winograd2OutputRunGeneric is the reference of winograd2OutputRun and
// of its assembly kernel.
func winograd2OutputRunGeneric(y []float32, ystride int, m []float32, mstride, n int, bias float32, relu bool) {
	var ms [16][]float32
	for p := range ms {
		ms[p] = m[p*mstride : p*mstride+n]
	}
	y0, y1 := y[:2*n], y[ystride:ystride+2*n]
	b := bias
	for g := range n {
		// r = Aᵀ M (2 x 4), then Y = r A.
		r00, r01, r02, r03 := ms[0][g]+ms[4][g]+ms[8][g], ms[1][g]+ms[5][g]+ms[9][g], ms[2][g]+ms[6][g]+ms[10][g], ms[3][g]+ms[7][g]+ms[11][g]
		r10, r11, r12, r13 := ms[4][g]-ms[8][g]-ms[12][g], ms[5][g]-ms[9][g]-ms[13][g], ms[6][g]-ms[10][g]-ms[14][g], ms[7][g]-ms[11][g]-ms[15][g]
		y00 := r00 + r01 + r02 + b
		y01 := r01 - r02 - r03 + b
		y10 := r10 + r11 + r12 + b
		y11 := r11 - r12 - r13 + b
		if relu {
			y00, y01, y10, y11 = relu32(y00), relu32(y01), relu32(y10), relu32(y11)
		}
		y0[2*g], y0[2*g+1], y1[2*g], y1[2*g+1] = y00, y01, y10, y11
	}
}

// winograd4OutputPoolRun is winograd4OutputRun with ReLU followed by
// the 2x2 max-pool of each 4x4 tile: P[a][b] of tile g, the maximum of
// Y[2a..2a+1][2b..2b+1], goes to y[a*ystride+2g+b]. It panics if the
// strides are shorter than n (2n for ystride) or the slices too short.
func winograd4OutputPoolRun(y []float32, ystride int, m []float32, mstride, n int, bias float32) {
	if n <= 0 {
		return
	}
	checkOutputRun("winograd4OutputPoolRun", y, 2, ystride, 2*n, m, 36, mstride, n)
	if !winogradKernels.active {
		winograd4OutputPoolRunGeneric(y, ystride, m, mstride, n, bias)
		return
	}
	if RaceEnabled {
		raceReadRows(m, 36, mstride, n)
		raceWriteRows(y, 2, ystride, 2*n)
	}
	winograd4OutputPoolAsm(y, ystride, m, mstride, n, bias)
}

// winograd4OutputPoolRunGeneric is the reference of
// winograd4OutputPoolRun and of its assembly kernel: the values of
// winograd4OutputRunGeneric with ReLU, max-pooled as
// max(max(Y[2a][2b], Y[2a][2b+1]), max(Y[2a+1][2b], Y[2a+1][2b+1])).
func winograd4OutputPoolRunGeneric(y []float32, ystride int, m []float32, mstride, n int, bias float32) {
	var buf [4 * 4 * 16]float32
	const s = 4 * 16
	y0, y1 := y[:2*n], y[ystride:ystride+2*n]
	for g0 := 0; g0 < n; g0 += 16 {
		k := min(16, n-g0)
		winograd4OutputRunGeneric(buf[:], s, m[g0:], mstride, k, bias, true)
		for g := range k {
			for b := range 2 {
				q := 4*g + 2*b
				y0[2*(g0+g)+b] = max(max(buf[q], buf[q+1]), max(buf[s+q], buf[s+q+1]))
				y1[2*(g0+g)+b] = max(max(buf[2*s+q], buf[2*s+q+1]), max(buf[3*s+q], buf[3*s+q+1]))
			}
		}
	}
}

// checkOutputRun panics unless m holds mrows rows of n floats mstride
// apart and y holds yrows rows of yn floats ystride apart, as an output
// kernel reads and writes them.
func checkOutputRun(name string, y []float32, yrows, ystride, yn int, m []float32, mrows, mstride, n int) {
	if ystride < yn || len(y) < (yrows-1)*ystride+yn || mstride < n || len(m) < (mrows-1)*mstride+n {
		panic(fmt.Sprintf("style: %s: %d tiles, y has %d floats (stride %d), m %d (stride %d)",
			name, n, len(y), ystride, len(m), mstride))
	}
}
