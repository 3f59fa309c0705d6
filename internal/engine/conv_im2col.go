package engine

import "gonum.org/v1/gonum/blas"

// The im2col engine through a caller's BLAS. A task is a band of output
// rows of one image (and a chunk of output channels when the image has
// few bands): it writes the band's im2col matrix, (In x 9) x (rows x w),
// and multiplies it by the weights with one Sgemm call, then adds the
// bias and applies ReLU and pooling.

// im2colBLAS is the im2col engine through a caller's BLAS.
type im2colBLAS struct {
	convLayer
	weight []float32 // out x (in*9), PyTorch OIHW order
	impl   blas.Float32Level3
}

func (c *im2colBLAS) forward(dst, x []float32, n, h, w int, ws *Workspace) {
	hc, rows, nb := c.bands(h, w)
	oc, osz := c.outChunks(nb)
	colN, outN := c.in*9*rows*w, 0
	if c.pool {
		outN = osz * rows * w
	}
	c.forwardBands(dst, x, n, h, w, hc, rows, nb, oc, osz, colN, outN, c.band, ws)
}

// bands splits the hc computed output rows (h, or the even part of h when
// pooling) of an h x w image into nb bands of rows rows (the last may be
// shorter). The split depends on the layer and the image shape only.
func (c *im2colBLAS) bands(h, w int) (hc, rows, nb int) {
	hc = h
	if c.pool {
		hc = h &^ 1
	}
	k := c.in * 9
	nb = max(1, (hc*w*k+convBandBudget-1)/convBandBudget)
	// Give batch-1 passes on large images enough bands to share between
	// cores, without making GEMMs thinner than about 1024 columns.
	nb = max(nb, min(hc, (hc*w)/1024))
	rows = (hc + nb - 1) / nb
	if c.pool && rows%2 == 1 {
		rows++
	}
	nb = (hc + rows - 1) / rows
	return hc, rows, nb
}

// band computes output rows y0..y1 of output channels o0..o1 of one image:
// src is In x h x w, dst is Out x oh x ow.
func (c *im2colBLAS) band(dst, src []float32, h, w, y0, y1, o0, o1 int, s *convScratch) {
	k := c.in * 9
	cols := (y1 - y0) * w
	col := s.col[:k*cols]
	im2col3x3(col, src, c.in, h, w, y0, y1)
	m := o1 - o0
	a := c.weight[o0*k : o1*k]
	if !c.pool {
		hw := h * w
		out := dst[o0*hw+y0*w : (o1-1)*hw+y1*w]
		c.impl.Sgemm(blas.NoTrans, blas.NoTrans, m, cols, k, 1, a, k, col, cols, 0, out, hw)
		for o := range m {
			biasReLU(out[o*hw:o*hw+cols], c.bias[o0+o], c.relu)
		}
		return
	}
	out := s.out[:m*cols]
	c.impl.Sgemm(blas.NoTrans, blas.NoTrans, m, cols, k, 1, a, k, col, cols, 0, out, cols)
	oh, ow := h/2, w/2
	for o := range m {
		plane := out[o*cols : (o+1)*cols]
		biasReLU(plane, c.bias[o0+o], c.relu)
		d := (o0 + o) * oh * ow
		maxPool2x2Rows(dst[d+(y0/2)*ow:d+(y1/2)*ow], plane, y1-y0, w)
	}
}

// biasReLU adds b to every element of v and, if relu, clamps it at zero.
func biasReLU(v []float32, b float32, relu bool) {
	if !relu {
		for i := range v {
			v[i] += b
		}
		return
	}
	for i, x := range v {
		x += b
		if x < 0 {
			x = 0
		}
		v[i] = x
	}
}

// maxPool2x2Rows max-pools one channel of rows x w values (rows even) into
// dst, which has rows/2 x w/2 values. An odd last column is dropped.
func maxPool2x2Rows(dst, src []float32, rows, w int) {
	ow := w / 2
	for y := 0; y < rows/2; y++ {
		r0 := src[2*y*w : 2*y*w+w]
		r1 := src[(2*y+1)*w : (2*y+1)*w+w]
		d := dst[y*ow : y*ow+ow]
		for x := range d {
			m := r0[2*x]
			if v := r0[2*x+1]; v > m {
				m = v
			}
			if v := r1[2*x]; v > m {
				m = v
			}
			if v := r1[2*x+1]; v > m {
				m = v
			}
			d[x] = m
		}
	}
}

// im2col3x3 writes the im2col matrix of output rows y0..y1 of a 3x3,
// stride 1, padding 1 convolution of src (in x h x w) into col: row
// ci*9+ky*3+kx (the OIHW weight order), column (y-y0)*w+x holds
// src[ci][y+ky-1][x+kx-1], or 0 outside the image.
func im2col3x3(col, src []float32, in, h, w, y0, y1 int) {
	cols := (y1 - y0) * w
	for ci := range in {
		plane := src[ci*h*w : (ci+1)*h*w]
		for ky := range 3 {
			for kx := range 3 {
				row := col[(ci*9+ky*3+kx)*cols : (ci*9+ky*3+kx+1)*cols]
				for y := y0; y < y1; y++ {
					d := row[(y-y0)*w : (y-y0+1)*w]
					sy := y + ky - 1
					if sy < 0 || sy >= h {
						clear(d)
						continue
					}
					s := plane[sy*w : (sy+1)*w]
					switch kx {
					case 0:
						d[0] = 0
						copy(d[1:], s[:w-1])
					case 1:
						copy(d, s)
					case 2:
						copy(d[:w-1], s[1:])
						d[w-1] = 0
					}
				}
			}
		}
	}
}
