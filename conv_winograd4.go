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

// winograd4Output applies Y = Aᵀ M A to the tiles g0 .. g0+tiles of one
// image for output channels o0..o1 (M_p of channel o, tile g0+g at
// m[p*mstride+(o-o0)*ldm+g]), adds the bias and applies ReLU and pooling,
// writing into dst (Out x oh x ow).
func (c *Conv) winograd4Output(dst, m []float32, h, w, tw, g0, tiles, o0, o1, ldm, mstride int) {
	oh, ow := c.OutputSize(h, w)
	// The transform writes chunks of tiles into y, the four rows of
	// output values of each tile after those of the previous tile; then
	// winograd4Place puts them into the plane.
	const s = 4 * winograd4OutputChunk
	var y [4 * s]float32
	if c.pool && c.relu {
		// The kernel pools too: rows of 2 values per tile.
		const s = 2 * winograd4OutputChunk
		for o := o0; o < o1; o++ {
			plane := dst[o*oh*ow : (o+1)*oh*ow]
			mo := m[(o-o0)*ldm:]
			for a := 0; a < tiles; a += winograd4OutputChunk {
				n := min(winograd4OutputChunk, tiles-a)
				winograd4OutputPoolRun(y[:], s, mo[a:], mstride, n, c.bias[o])
				for g := 0; g < n; {
					// The k tiles g.. are in tile row ty.
					ty, tx := (g0+a+g)/tw, (g0+a+g)%tw
					k := min(n-g, tw-tx)
					py, px := 2*ty, 2*tx
					cols := min(2*k, ow-px)
					for r := range min(2, oh-py) {
						copy(plane[(py+r)*ow+px:(py+r)*ow+px+cols], y[r*s+2*g:r*s+2*g+cols])
					}
					g += k
				}
			}
		}
		return
	}
	for o := o0; o < o1; o++ {
		plane := dst[o*oh*ow : (o+1)*oh*ow]
		mo := m[(o-o0)*ldm:]
		for a := 0; a < tiles; a += winograd4OutputChunk {
			n := min(winograd4OutputChunk, tiles-a)
			winograd4OutputRun(y[:], s, mo[a:], mstride, n, c.bias[o], c.relu)
			c.winograd4Place(plane, &y, h, w, oh, ow, tw, g0+a, n)
		}
	}
}

// winograd4OutputChunk is the number of tiles winograd4Output transforms
// at a time.
const winograd4OutputChunk = 64

// winograd4Place writes the n output tiles g0 .. g0+n of one channel
// (Y[r][c] of tile g0+g at y[r*4*winograd4OutputChunk+4g+c]) into plane
// (oh x ow), max-pooling them if the layer pools (ReLU, applied before,
// commutes with the max).
func (c *Conv) winograd4Place(plane []float32, y *[16 * winograd4OutputChunk]float32, h, w, oh, ow, tw, g0, n int) {
	const s = 4 * winograd4OutputChunk
	for g := 0; g < n; {
		// The k tiles g.. are in tile row ty.
		ty, tx := (g0+g)/tw, (g0+g)%tw
		k := min(n-g, tw-tx)
		if c.pool {
			py, px := 2*ty, 2*tx
			cols := min(2*k, ow-px)
			for a := range min(2, oh-py) {
				y0 := y[2*a*s+4*g : 2*a*s+4*g+2*cols]
				y1 := y[(2*a+1)*s+4*g : (2*a+1)*s+4*g+2*cols]
				d := plane[(py+a)*ow+px : (py+a)*ow+px+cols]
				for j := range d {
					d[j] = max(max(y0[2*j], y0[2*j+1]), max(y1[2*j], y1[2*j+1]))
				}
			}
		} else {
			oy, ox := 4*ty, 4*tx
			cols := min(4*k, w-ox)
			for r := range min(4, h-oy) {
				copy(plane[(oy+r)*w+ox:(oy+r)*w+ox+cols], y[r*s+4*g:r*s+4*g+cols])
			}
		}
		g += k
	}
}
