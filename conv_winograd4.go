package style

// Winograd F(4x4, 3x3) for the packed path: 6x6 input patches give 4x4
// output tiles through 36 products with K = In, 4x fewer multiply-adds
// than im2col (F(2x2, 3x3): 2.25x). The matrices are those of Lavin and
// Gray (interpolation points 0, ±1, ±2, ∞):
//
//	Bᵀ = [4  0 -5  0 1 0]   G = [ 1/4     0    0]   Aᵀ = [1 1  1 1  1 0]
//	     [0 -4 -4  1 1 0]       [-1/6 -1/6 -1/6]        [0 1 -1 2 -2 0]
//	     [0  4 -4 -1 1 0]       [-1/6  1/6 -1/6]        [0 1  1 4  4 0]
//	     [0 -2 -1  2 1 0]       [1/24 1/12  1/6]        [0 1 -1 8 -8 1]
//	     [0  2 -1 -2 1 0]       [1/24 -1/12 1/6]
//	     [0  4  0 -5 0 1]       [   0     0    1]

// winograd4Weights returns U = G g Gᵀ of F(4x4, 3x3) for every filter,
// as 36 matrices of out x in (position-major), computed in float64 and
// rounded once.
func winograd4Weights(weight []float32, out, in int) []float32 {
	G := [6][3]float64{
		{1.0 / 4, 0, 0},
		{-1.0 / 6, -1.0 / 6, -1.0 / 6},
		{-1.0 / 6, 1.0 / 6, -1.0 / 6},
		{1.0 / 24, 1.0 / 12, 1.0 / 6},
		{1.0 / 24, -1.0 / 12, 1.0 / 6},
		{0, 0, 1},
	}
	u := make([]float32, 36*out*in)
	for o := range out {
		for i := range in {
			g := weight[(o*in+i)*9 : (o*in+i)*9+9]
			var t [6][3]float64 // G g
			for r := range 6 {
				for c := range 3 {
					t[r][c] = G[r][0]*float64(g[c]) + G[r][1]*float64(g[3+c]) + G[r][2]*float64(g[6+c])
				}
			}
			for r := range 6 {
				for c := range 6 {
					x := t[r][0]*G[c][0] + t[r][1]*G[c][1] + t[r][2]*G[c][2]
					u[((r*6+c)*out+o)*in+i] = float32(x)
				}
			}
		}
	}
	return u
}

// winograd4InputRun transforms n consecutive 6x6 patches of one channel,
// whose top-left corners are at columns 0, 4, ... of the six rows d
// (4n+2 floats each), and writes V_p of patch i to v[p*vstride+i].
func winograd4InputRun(v []float32, vstride int, d *[6][]float32, n int) {
	const maxCols = 4*32 + 2
	cols := 4*n + 2
	if cols > maxCols {
		panic("style: winograd4InputRun: run longer than 32 tiles")
	}
	d0 := d[0][:cols]
	d1 := d[1][:cols]
	d2 := d[2][:cols]
	d3 := d[3][:cols]
	d4 := d[4][:cols]
	d5 := d[5][:cols]
	// t = Bᵀ d on whole rows, then t B per patch.
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

// winograd4Output applies Y = Aᵀ M A to the tiles g0 .. g0+tiles of one
// image for output channels o0..o1 (M_p of channel o, tile g0+g at
// m[p*mstride+(o-o0)*ldm+g]), adds the bias and applies ReLU and pooling,
// writing into dst (Out x oh x ow).
func (c *Conv) winograd4Output(dst, m []float32, h, w, tw, g0, tiles, o0, o1, ldm, mstride int) {
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
				// Four 2x2 pooling windows (ReLU commutes with the max).
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
