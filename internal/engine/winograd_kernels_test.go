package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Tolerances. The assembly kernels do the float32 operations of the Go
// references in the same order, one tile per lane, without fused
// multiply-adds, so on finite inputs they must agree bit for bit. The
// references in turn match the scalar code they replaced (copied below
// as naive references) bit for bit when the compiler does not fuse
// x*y+z (GOAMD64 < v3); with fusion, the only inexact products (by 5 in
// the input transform) may be rounded once instead of twice, so those
// comparisons allow winogradNaiveTol relative to the largest magnitude
// in the sum, a few float32 ulps.
const winogradNaiveTol = 4e-7

// winogradGuard is the sentinel written around and between the outputs;
// a kernel writing out of bounds changes it.
var winogradGuard = math.Float32frombits(0x7fa0beef)

func sameBits(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }

// guarded returns a slice of n floats inside a larger buffer whose other
// floats, like the returned ones, hold winogradGuard, and a function
// checking that the floats outside the slice and outside the
// positions keep(i) are still the guard.
func guarded(n int) (s []float32, check func(t *testing.T, keep func(i int) bool)) {
	const pad = 37
	buf := make([]float32, n+2*pad)
	for i := range buf {
		buf[i] = winogradGuard
	}
	s = buf[pad : pad+n : pad+n]
	return s, func(t *testing.T, keep func(i int) bool) {
		t.Helper()
		for i, x := range buf {
			j := i - pad
			if j >= 0 && j < n && keep(j) {
				continue
			}
			if !sameBits(x, winogradGuard) {
				t.Fatalf("float %d (offset %d from the output) was overwritten: %v", j, j, x)
			}
		}
	}
}

func TestWinograd4InputRunKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= winograd4MaxRun; n++ {
		cols := 4*n + 2
		var d [6][]float32
		for k := range d {
			d[k] = randSlice(r, cols)
		}
		vstride := n + r.IntN(5)
		size := 35*vstride + n
		inRun := func(i int) bool { return i%vstride < n }

		want := make([]float32, size)
		winograd4InputRunGeneric(want, vstride, &d, n)
		naive := make([]float32, size)
		winograd4InputRunNaive(naive, vstride, &d, n)
		for i := range size {
			if !inRun(i) {
				continue
			}
			if err := closeTo(want[i], naive[i], winograd4InputScale(&d)); err != nil {
				t.Fatalf("n=%d: generic V[%d][%d] vs the scalar code: %v", n, i/vstride, i%vstride, err)
			}
		}

		kernels := map[string]func(v []float32){
			"dispatch": func(v []float32) { winograd4InputRun(v, vstride, &d, n) },
		}
		if winogradKernels.active && n > 0 {
			kernels["asm"] = func(v []float32) { winograd4InputAsm(v, vstride, &d, n) }
		}
		for name, run := range kernels {
			v, check := guarded(size)
			run(v)
			check(t, inRun)
			for i := range size {
				if inRun(i) && !sameBits(v[i], want[i]) {
					t.Fatalf("%s n=%d: V[%d][%d] = %v, reference %v", name, n, i/vstride, i%vstride, v[i], want[i])
				}
			}
		}
	}
	for _, n := range []int{33, 40} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("winograd4InputRun did not panic on a run of %d", n)
				}
			}()
			var d [6][]float32
			for k := range d {
				d[k] = make([]float32, 4*n+2)
			}
			winograd4InputRun(make([]float32, 36*n), n, &d, n)
		}()
	}
}

// winograd4InputScale bounds the magnitude of the terms of the input
// transform: |V| sums at most 100x the largest input.
func winograd4InputScale(d *[6][]float32) float32 {
	var m float32
	for _, row := range d {
		for _, x := range row {
			m = max(m, float32(math.Abs(float64(x))))
		}
	}
	return 100 * m
}

func closeTo(got, want, scale float32) error {
	if sameBits(got, want) || math.Abs(float64(got-want)) <= winogradNaiveTol*float64(scale) {
		return nil
	}
	return fmt.Errorf("%v, want %v (scale %v)", got, want, scale)
}

func TestWinograd4OutputRunKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	// All tile counts up to 40 (every tail), and long runs whose counts
	// (times 4) cross the byte boundaries of the mask arithmetic.
	counts := []int{64, 65, 127, 256, 300}
	for n := 40; n >= 0; n-- {
		counts = append([]int{n}, counts...)
	}
	for _, n := range counts {
		mstride := n + r.IntN(7)
		m := randSlice(r, 35*mstride+n)
		ystride := 4*n + r.IntN(3)
		size := 3*ystride + 4*n
		inRun := func(i int) bool { return i%ystride < 4*n }
		bias := float32(r.NormFloat64())
		for _, relu := range []bool{false, true} {
			want := make([]float32, size)
			winograd4OutputRunGeneric(want, ystride, m, mstride, n, bias, relu)
			kernels := map[string]func(y []float32){
				"dispatch": func(y []float32) { winograd4OutputRun(y, ystride, m, mstride, n, bias, relu) },
			}
			if winogradKernels.active && n > 0 {
				kernels["asm"] = func(y []float32) { winograd4OutputAsm(y, ystride, m, mstride, n, bias, relu) }
			}
			for name, run := range kernels {
				y, check := guarded(size)
				run(y)
				check(t, inRun)
				for i := range size {
					if inRun(i) && !sameBits(y[i], want[i]) {
						t.Fatalf("%s n=%d relu=%v: Y[%d][%d] of tile %d = %v, reference %v", name, n, relu, i/ystride, i%4, i%ystride/4, y[i], want[i])
					}
				}
				if relu {
					for i := range size {
						if inRun(i) && (y[i] < 0 || math.Signbit(float64(y[i]))) {
							t.Fatalf("%s n=%d: ReLU left %v", name, n, y[i])
						}
					}
				}
			}
		}
	}
}

// TestWinograd4OutputPoolRunKernels checks the pooling output kernel
// against its reference, and the reference against the unpooled
// transform pooled here (ReLU makes every value non-negative, so the
// maxima are exact whatever the order).
func TestWinograd4OutputPoolRunKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	counts := []int{64, 65, 127, 128, 129, 300}
	for n := 40; n >= 0; n-- {
		counts = append([]int{n}, counts...)
	}
	for _, n := range counts {
		mstride := n + r.IntN(7)
		m := randSlice(r, 35*mstride+n)
		ystride := 2*n + r.IntN(3)
		size := ystride + 2*n
		inRun := func(i int) bool { return i%ystride < 2*n }
		bias := float32(r.NormFloat64())
		want := make([]float32, size)
		winograd4OutputPoolRunGeneric(want, ystride, m, mstride, n, bias)
		full := make([]float32, 4*4*n)
		winograd4OutputRunGeneric(full, 4*n, m, mstride, n, bias, true)
		for g := range n {
			for a := range 2 {
				for b := range 2 {
					v := float32(0)
					for _, q := range [4]int{2*a*4*n + 4*g + 2*b, 2*a*4*n + 4*g + 2*b + 1, (2*a+1)*4*n + 4*g + 2*b, (2*a+1)*4*n + 4*g + 2*b + 1} {
						v = max(v, full[q])
					}
					if got := want[a*ystride+2*g+b]; !sameBits(got, v) {
						t.Fatalf("n=%d: reference P[%d][%d] of tile %d = %v, pooled transform %v", n, a, b, g, got, v)
					}
				}
			}
		}
		kernels := map[string]func(y []float32){
			"dispatch": func(y []float32) { winograd4OutputPoolRun(y, ystride, m, mstride, n, bias) },
		}
		if winogradKernels.active && n > 0 {
			kernels["asm"] = func(y []float32) { winograd4OutputPoolAsm(y, ystride, m, mstride, n, bias) }
		}
		for name, run := range kernels {
			y, check := guarded(size)
			run(y)
			check(t, inRun)
			for i := range size {
				if inRun(i) && !sameBits(y[i], want[i]) {
					t.Fatalf("%s n=%d: P[%d][%d] of tile %d = %v, reference %v", name, n, i/ystride, i%2, i%ystride/2, y[i], want[i])
				}
			}
		}
	}
}

func TestWinograd2InputRunKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for n := 0; n <= winograd4MaxRun; n++ {
		var d [4][]float32
		for k := range d {
			d[k] = randSlice(r, 2*n+2)
		}
		vstride := n + r.IntN(5)
		size := 15*vstride + n
		inRun := func(i int) bool { return i%vstride < n }
		want := make([]float32, size)
		winogradInputRunGeneric(want, vstride, &d, n)
		// Only additions and subtractions: the scalar code gives the
		// same bits whatever the compiler fuses.
		naive := make([]float32, size)
		winogradInputRunNaive(naive, vstride, &d, n)
		for i := range size {
			if inRun(i) && !sameBits(want[i], naive[i]) {
				t.Fatalf("n=%d: generic V[%d][%d] = %v, scalar code %v", n, i/vstride, i%vstride, want[i], naive[i])
			}
		}
		kernels := map[string]func(v []float32){
			"dispatch": func(v []float32) { winogradInputRun(v, vstride, &d, n) },
		}
		if winogradKernels.active && n > 0 {
			kernels["asm"] = func(v []float32) { winograd2InputAsm(v, vstride, &d, n) }
		}
		for name, run := range kernels {
			v, check := guarded(size)
			run(v)
			check(t, inRun)
			for i := range size {
				if inRun(i) && !sameBits(v[i], want[i]) {
					t.Fatalf("%s n=%d: V[%d][%d] = %v, reference %v", name, n, i/vstride, i%vstride, v[i], want[i])
				}
			}
		}
	}
}

func TestWinograd2OutputRunKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	counts := []int{64, 65, 127, 128, 129, 300}
	for n := 40; n >= 0; n-- {
		counts = append([]int{n}, counts...)
	}
	for _, n := range counts {
		mstride := n + r.IntN(7)
		m := randSlice(r, 15*mstride+n)
		ystride := 2*n + r.IntN(3)
		size := ystride + 2*n
		inRun := func(i int) bool { return i%ystride < 2*n }
		bias := float32(r.NormFloat64())
		for _, relu := range []bool{false, true} {
			want := make([]float32, size)
			winograd2OutputRunGeneric(want, ystride, m, mstride, n, bias, relu)
			kernels := map[string]func(y []float32){
				"dispatch": func(y []float32) { winograd2OutputRun(y, ystride, m, mstride, n, bias, relu) },
			}
			if winogradKernels.active && n > 0 {
				kernels["asm"] = func(y []float32) { winograd2OutputAsm(y, ystride, m, mstride, n, bias, relu) }
			}
			for name, run := range kernels {
				y, check := guarded(size)
				run(y)
				check(t, inRun)
				for i := range size {
					if inRun(i) && !sameBits(y[i], want[i]) {
						t.Fatalf("%s n=%d relu=%v: Y[%d][%d] of tile %d = %v, reference %v", name, n, relu, i/ystride, i%2, i%ystride/2, y[i], want[i])
					}
				}
			}
		}
	}
}

// TestWinogradOutputMatchesScalar runs the whole output transform of a
// band (transform and placement, with and without ReLU and pooling, odd
// and even image sizes, bands starting at tile 0 and later) of F(4x4, 3x3)
// and F(2x2, 3x3) against the scalar code it replaced, bit for bit, with
// guard values in every output position the band must not write.
func TestWinogradOutputMatchesScalar(t *testing.T) {
	type outputFunc func(c *winogradPacked, dst, m []float32, h, w, tw, g0, tiles, o0, o1, ldm, mstride int)
	for _, tc := range []struct {
		wm           int
		sizes        [][2]int
		output, want outputFunc
	}{
		{4, [][2]int{{4, 4}, {7, 5}, {9, 13}, {16, 16}, {17, 30}, {36, 40}, {20, 300}}, (*winogradPacked).winograd4Output, winograd4OutputNaive},
		{2, [][2]int{{2, 2}, {7, 5}, {9, 13}, {16, 16}, {17, 30}, {36, 300}}, (*winogradPacked).winogradOutput, winogradOutputNaive},
	} {
		r := rand.New(rand.NewPCG(5, uint64(tc.wm)))
		const out = 3
		npos := (tc.wm + 2) * (tc.wm + 2)
		for _, sz := range tc.sizes {
			h, w := sz[0], sz[1]
			for _, relu := range []bool{false, true} {
				for _, pool := range []bool{false, true} {
					c := &winogradPacked{convLayer: convLayer{out: out, bias: randSlice(r, out), relu: relu, pool: pool}, wm: tc.wm}
					th, tw := c.winogradTiles(h, w)
					oh, ow := c.OutputSize(h, w)
					tiles := th * tw
					for _, g0 := range []int{0, tiles / 3} {
						nt := tiles - g0
						ldm := nt + 3
						o0, o1 := 1, out
						mstride := (o1-o0)*ldm + 5
						m := randSlice(r, npos*mstride)
						got := make([]float32, out*oh*ow)
						want := make([]float32, out*oh*ow)
						for i := range got {
							got[i], want[i] = winogradGuard, winogradGuard
						}
						tc.output(c, got, m, h, w, tw, g0, nt, o0, o1, ldm, mstride)
						tc.want(c, want, m, h, w, tw, g0, nt, o0, o1, ldm, mstride)
						written := 0
						for i := range got {
							if !sameBits(got[i], want[i]) {
								t.Fatalf("F(%dx%d) %dx%d relu=%v pool=%v g0=%d: dst[%d] = %v, scalar code %v", tc.wm, tc.wm, h, w, relu, pool, g0, i, got[i], want[i])
							}
							if !sameBits(got[i], winogradGuard) {
								written++
							}
						}
						// Channels o0..o1 from tile g0 on: everything but
						// the first channel and the first g0 tiles' area.
						if written == 0 || written > (o1-o0)*oh*ow {
							t.Fatalf("F(%dx%d) %dx%d relu=%v pool=%v g0=%d: %d values written", tc.wm, tc.wm, h, w, relu, pool, g0, written)
						}
					}
				}
			}
		}
	}
}

func BenchmarkWinograd4Kernels(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	const n = 32
	var d [6][]float32
	for k := range d {
		d[k] = randSlice(r, 4*n+2)
	}
	v := make([]float32, 36*n)
	m := randSlice(r, 36*n)
	y := make([]float32, 16*n) // 4 rows of 4n
	b.Run("input", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			winograd4InputRun(v, n, &d, n)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/tile")
	})
	b.Run("input/generic", func(b *testing.B) {
		for b.Loop() {
			winograd4InputRunGeneric(v, n, &d, n)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/tile")
	})
	b.Run("output", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			winograd4OutputRun(y, 4*n, m, n, n, 0.5, true)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/tile")
	})
	b.Run("output/generic", func(b *testing.B) {
		for b.Loop() {
			winograd4OutputRunGeneric(y, 4*n, m, n, n, 0.5, true)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/tile")
	})
}

// winograd4InputRunNaive is the scalar input transform that
// winograd4InputRun replaced, kept as a reference.
func winograd4InputRunNaive(v []float32, vstride int, d *[6][]float32, n int) {
	const maxCols = 4*32 + 2
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
		t0[k] = 4*a0 - 5*a2 + a4
		t1[k] = a3 + a4 - 4*(a1+a2)
		t2[k] = 4*(a1-a2) + a4 - a3
		t3[k] = 2*(a3-a1) + a4 - a2
		t4[k] = 2*(a1-a3) + a4 - a2
		t5[k] = 4*a1 - 5*a3 + a5
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
			w0[i] = 4*a0 - 5*a2 + a4
			w1[i] = a3 + a4 - 4*(a1+a2)
			w2[i] = 4*(a1-a2) + a4 - a3
			w3[i] = 2*(a3-a1) + a4 - a2
			w4[i] = 2*(a1-a3) + a4 - a2
			w5[i] = 4*a1 - 5*a3 + a5
		}
	}
}

// winograd4OutputNaive is the scalar output transform that
// (*winogradPacked).winograd4Output replaced, kept as a reference.
func winograd4OutputNaive(c *winogradPacked, dst, m []float32, h, w, tw, g0, tiles, o0, o1, ldm, mstride int) {
	oh, ow := c.OutputSize(h, w)
	for o := o0; o < o1; o++ {
		b := c.bias[o]
		plane := dst[o*oh*ow : (o+1)*oh*ow]
		var ms [36][]float32
		for p := range ms {
			ms[p] = m[p*mstride+(o-o0)*ldm : p*mstride+(o-o0)*ldm+tiles]
		}
		ty, tx := g0/tw, g0%tw
		for g := range tiles {
			var t [4][6]float32
			for k := range 6 {
				m0, m1, m2, m3, m4, m5 := ms[k][g], ms[6+k][g], ms[12+k][g], ms[18+k][g], ms[24+k][g], ms[30+k][g]
				t[0][k] = m0 + m1 + m2 + m3 + m4
				t[1][k] = m1 - m2 + 2*(m3-m4)
				t[2][k] = m1 + m2 + 4*(m3+m4)
				t[3][k] = m1 - m2 + 8*(m3-m4) + m5
			}
			var y [4][4]float32
			for r := range 4 {
				a0, a1, a2, a3, a4, a5 := t[r][0], t[r][1], t[r][2], t[r][3], t[r][4], t[r][5]
				y[r][0] = a0 + a1 + a2 + a3 + a4 + b
				y[r][1] = a1 - a2 + 2*(a3-a4) + b
				y[r][2] = a1 + a2 + 4*(a3+a4) + b
				y[r][3] = a1 - a2 + 8*(a3-a4) + a5 + b
			}
			if c.relu {
				for r := range 4 {
					y[r][0], y[r][1], y[r][2], y[r][3] = relu32(y[r][0]), relu32(y[r][1]), relu32(y[r][2]), relu32(y[r][3])
				}
			}
			if c.pool {
				py, px := 2*ty, 2*tx
				if py+1 < oh && px+1 < ow {
					d0 := plane[py*ow+px : py*ow+px+2 : py*ow+px+2]
					d1 := plane[(py+1)*ow+px : (py+1)*ow+px+2 : (py+1)*ow+px+2]
					d0[0] = max(max(y[0][0], y[0][1]), max(y[1][0], y[1][1]))
					d0[1] = max(max(y[0][2], y[0][3]), max(y[1][2], y[1][3]))
					d1[0] = max(max(y[2][0], y[2][1]), max(y[3][0], y[3][1]))
					d1[1] = max(max(y[2][2], y[2][3]), max(y[3][2], y[3][3]))
				} else {
					for a := range 2 {
						if py+a >= oh {
							break
						}
						for bb := range 2 {
							if px+bb >= ow {
								break
							}
							plane[(py+a)*ow+px+bb] = max(max(y[2*a][2*bb], y[2*a][2*bb+1]), max(y[2*a+1][2*bb], y[2*a+1][2*bb+1]))
						}
					}
				}
			} else {
				oy, ox := 4*ty, 4*tx
				if oy+3 < h && ox+3 < w {
					for r := range 4 {
						*(*[4]float32)(plane[(oy+r)*w+ox : (oy+r)*w+ox+4]) = y[r]
					}
				} else {
					for r := range min(4, h-oy) {
						for cc := range min(4, w-ox) {
							plane[(oy+r)*w+ox+cc] = y[r][cc]
						}
					}
				}
			}
			if tx++; tx == tw {
				tx = 0
				ty++
			}
		}
	}
}

// winogradInputRunNaive is the scalar F(2x2) input transform that
// winogradInputRun replaced, kept as a reference: it transforms n
// consecutive 4x4 patches of one channel,
// whose top-left corners are at columns 0, 2, ... of the four rows d
// (2n+2 floats each), and writes V_p of patch i to v[p*vstride+i].
func winogradInputRunNaive(v []float32, vstride int, d *[4][]float32, n int) {
	cols := 2*n + 2
	d0 := d[0][:cols]
	d1 := d[1][:cols]
	d2 := d[2][:cols]
	d3 := d[3][:cols]
	// t = Bᵀ d on whole rows, then t B per patch.
	var buf [4 * 66]float32
	if cols > 66 {
		panic("style: winogradInputRun: run longer than 32 tiles")
	}
	t0, t1, t2, t3 := buf[0:cols], buf[66:66+cols], buf[132:132+cols], buf[198:198+cols]
	for k := range d0 {
		a, b, c, e := d0[k], d1[k], d2[k], d3[k]
		t0[k] = a - c
		t1[k] = b + c
		t2[k] = c - b
		t3[k] = b - e
	}
	v0, v1, v2, v3 := v[0*vstride:0*vstride+n], v[1*vstride:1*vstride+n], v[2*vstride:2*vstride+n], v[3*vstride:3*vstride+n]
	v4, v5, v6, v7 := v[4*vstride:4*vstride+n], v[5*vstride:5*vstride+n], v[6*vstride:6*vstride+n], v[7*vstride:7*vstride+n]
	v8, v9, v10, v11 := v[8*vstride:8*vstride+n], v[9*vstride:9*vstride+n], v[10*vstride:10*vstride+n], v[11*vstride:11*vstride+n]
	v12, v13, v14, v15 := v[12*vstride:12*vstride+n], v[13*vstride:13*vstride+n], v[14*vstride:14*vstride+n], v[15*vstride:15*vstride+n]
	for i := range v0 {
		q := t0[2*i : 2*i+4 : 2*i+4]
		v0[i], v1[i], v2[i], v3[i] = q[0]-q[2], q[1]+q[2], q[2]-q[1], q[1]-q[3]
		q = t1[2*i : 2*i+4 : 2*i+4]
		v4[i], v5[i], v6[i], v7[i] = q[0]-q[2], q[1]+q[2], q[2]-q[1], q[1]-q[3]
		q = t2[2*i : 2*i+4 : 2*i+4]
		v8[i], v9[i], v10[i], v11[i] = q[0]-q[2], q[1]+q[2], q[2]-q[1], q[1]-q[3]
		q = t3[2*i : 2*i+4 : 2*i+4]
		v12[i], v13[i], v14[i], v15[i] = q[0]-q[2], q[1]+q[2], q[2]-q[1], q[1]-q[3]
	}
}

// winogradOutputNaive is the scalar output transform that
// (*winogradPacked).winogradOutput replaced, kept as a reference. It applies Y = Aᵀ M A of F(2x2, 3x3) to tiles g0 ..
// g0+tiles of one image for output channels o0..o1 (M_p of channel o,
// tile g0+g at m[p*mstride+(o-o0)*ldm+g]), adds the bias and applies ReLU
// and pooling, writing into dst (Out x oh x ow).
func winogradOutputNaive(c *winogradPacked, dst, m []float32, h, w, tw, g0, tiles, o0, o1, ldm, mstride int) {
	oh, ow := c.OutputSize(h, w)
	for o := o0; o < o1; o++ {
		b := c.bias[o]
		plane := dst[o*oh*ow : (o+1)*oh*ow]
		mo := m[(o-o0)*ldm:]
		m0 := mo[0*mstride : 0*mstride+tiles]
		m1, m2, m3 := mo[1*mstride:][:len(m0)], mo[2*mstride:][:len(m0)], mo[3*mstride:][:len(m0)]
		m4, m5, m6, m7 := mo[4*mstride:][:len(m0)], mo[5*mstride:][:len(m0)], mo[6*mstride:][:len(m0)], mo[7*mstride:][:len(m0)]
		m8, m9, m10, m11 := mo[8*mstride:][:len(m0)], mo[9*mstride:][:len(m0)], mo[10*mstride:][:len(m0)], mo[11*mstride:][:len(m0)]
		m12, m13, m14, m15 := mo[12*mstride:][:len(m0)], mo[13*mstride:][:len(m0)], mo[14*mstride:][:len(m0)], mo[15*mstride:][:len(m0)]
		ty, tx := g0/tw, g0%tw
		for g := range m0 {
			// r = Aᵀ M (2 x 4), then Y = r A.
			r00, r01, r02, r03 := m0[g]+m4[g]+m8[g], m1[g]+m5[g]+m9[g], m2[g]+m6[g]+m10[g], m3[g]+m7[g]+m11[g]
			r10, r11, r12, r13 := m4[g]-m8[g]-m12[g], m5[g]-m9[g]-m13[g], m6[g]-m10[g]-m14[g], m7[g]-m11[g]-m15[g]
			y00 := r00 + r01 + r02 + b
			y01 := r01 - r02 - r03 + b
			y10 := r10 + r11 + r12 + b
			y11 := r11 - r12 - r13 + b
			if c.pool {
				// The tile is exactly one pooling window; ReLU commutes
				// with the max.
				y := max(max(y00, y01), max(y10, y11))
				if c.relu {
					y = relu32(y)
				}
				plane[ty*ow+tx] = y
			} else {
				if c.relu {
					y00, y01, y10, y11 = relu32(y00), relu32(y01), relu32(y10), relu32(y11)
				}
				oy, ox := 2*ty, 2*tx
				plane[oy*w+ox] = y00
				if ox+1 < w {
					plane[oy*w+ox+1] = y01
				}
				if oy+1 < h {
					plane[(oy+1)*w+ox] = y10
					if ox+1 < w {
						plane[(oy+1)*w+ox+1] = y11
					}
				}
			}
			if tx++; tx == tw {
				tx = 0
				ty++
			}
		}
	}
}
