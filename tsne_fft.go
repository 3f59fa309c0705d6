package style

import (
	"math"

	"gonum.org/v1/gonum/dsp/fourier"
)

// fftRepulsion computes the t-SNE repulsive forces in 2-D by FFT-accelerated
// interpolation (Linderman, Rachh, Hoskins, Steinerberger and Kluger,
// "Fast interpolation-based t-SNE for improved visualization of single-cell
// RNA-seq data", Nature Methods 2019). The square holding the embedding is
// cut into nBoxes x nBoxes boxes of width at most 1 (at least fftBoxesMin
// per side), each with fftInterp x fftInterp equispaced interpolation nodes,
// so that all nodes form one uniform grid. The charges of every point (1,
// x, y, x^2+y^2) are spread to the nodes of its box with Lagrange weights,
// convolved with the squared Cauchy kernel 1/(1+d^2)^2 by a zero-padded
// 2-D FFT, and the potentials are interpolated back to the points, from
// which the forces and the normalisation follow:
//
//	sum_j q_ij^2 (y_i - y_j) = y_i phi_1 - (phi_x, phi_y)
//	sum_j q_ij = (1+|y_i|^2) phi_1 - 2 y_i.(phi_x, phi_y) + phi_r - 1
type fftRepulsion struct {
	n, workers int
	boxesMin   int
	boxWidth   float64 // largest box width, in embedding units
	nBoxes     int     // boxes per side
	ng         int     // interpolation nodes per side: nBoxes * fftInterp
	m          int     // FFT length per side: 2 * ng
	lo, h      float64
	kernG2     float64 // squared node spacing of the kernel in kern
	kernM      int     // FFT length of the kernel in kern
	cx, cy     float64 // coordinates are taken relative to the centre

	node   []int32   // per point: index of the first node of its box
	wx, wy []float64 // per point: fftInterp Lagrange weights per axis

	charge [4][]float64 // spread charges on the ng x ng grid
	a, b   []complex128 // charges (0+i1, 2+i3), zero padded to m x m
	kern   []float64    // kernel on the m x m circulant grid, then its FFT (real: the kernel is even)
	ffts   []*fourier.CmplxFFT
	col    [][]complex128 // per worker column buffer
}

const fftInterp = 3

func newFFTRepulsion(n, workers, boxesMin int) *fftRepulsion {
	f := &fftRepulsion{n: n, workers: max(workers, 1), boxesMin: boxesMin, boxWidth: 1,
		node: make([]int32, n), wx: make([]float64, n*fftInterp), wy: make([]float64, n*fftInterp)}
	f.ffts = make([]*fourier.CmplxFFT, f.workers)
	f.col = make([][]complex128, f.workers)
	return f
}

// fftNiceSize returns the smallest integer >= n whose only prime factors
// are 2, 3 and 5, so that FFTs of length 6n are fast.
func fftNiceSize(n int) int {
	for ; ; n++ {
		m := n
		for _, p := range []int{2, 3, 5} {
			for m%p == 0 {
				m /= p
			}
		}
		if m == 1 {
			return n
		}
	}
}

// resize sets up the grid for a square of the given span.
func (f *fftRepulsion) resize(nBoxes int) {
	if nBoxes == f.nBoxes {
		return
	}
	f.nBoxes = nBoxes
	f.ng = nBoxes * fftInterp
	f.m = 2 * f.ng
	mm := f.m * f.m
	for c := range f.charge {
		f.charge[c] = growFloat(f.charge[c], f.ng*f.ng)
	}
	f.a = growComplex(f.a, mm)
	f.b = growComplex(f.b, mm)
	f.kern = growFloat(f.kern, mm)
	for w := range f.ffts {
		if f.ffts[w] == nil {
			f.ffts[w] = fourier.NewCmplxFFT(f.m)
		} else {
			f.ffts[w].Reset(f.m)
		}
		f.col[w] = growComplex(f.col[w], f.m)
	}
}

func growFloat(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

func growComplex(s []complex128, n int) []complex128 {
	if cap(s) < n {
		return make([]complex128, n)
	}
	return s[:n]
}

// fftRepulsive fills s.rep and s.zpart using FFT-accelerated interpolation.
func (s *tsneState) fftRepulsive() {
	f := s.fft
	y := s.y
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range y {
		lo = math.Min(lo, v)
		hi = math.Max(hi, v)
	}
	span := hi - lo
	if span <= 0 {
		span = 1e-6
	}
	if span/f.boxWidth < float64(f.boxesMin) {
		// Small embeddings (early iterations): boxesMin boxes over the span.
		f.resize(f.boxesMin)
		f.h = span / float64(f.nBoxes) * (1 + 1e-12)
	} else {
		// Boxes of exactly boxWidth, as many as cover the span rounded up
		// to a fast FFT length: the kernel spectrum then only changes
		// when the grid grows, and is reused in between.
		f.resize(fftNiceSize(int(span/f.boxWidth) + 1))
		f.h = f.boxWidth
	}
	f.lo = lo
	f.cx = lo + f.h*float64(f.nBoxes)/2
	f.cy = f.cx

	// Lagrange weights of every point.
	s.fftInT.phase = 0
	s.pool.run(&s.fftInT, s.n, 1024)

	// Spread the charges (serial: a scatter, and cheap).
	ng := f.ng
	for c := range f.charge {
		clear(f.charge[c])
	}
	for i := 0; i < s.n; i++ {
		x, yy := y[2*i]-f.cx, y[2*i+1]-f.cy
		q := [4]float64{1, x, yy, x*x + yy*yy}
		base := int(f.node[i])
		for ay := 0; ay < fftInterp; ay++ {
			wy := f.wy[i*fftInterp+ay]
			row := base + ay*ng
			for ax := 0; ax < fftInterp; ax++ {
				w := wy * f.wx[i*fftInterp+ax]
				p := row + ax
				f.charge[0][p] += w * q[0]
				f.charge[1][p] += w * q[1]
				f.charge[2][p] += w * q[2]
				f.charge[3][p] += w * q[3]
			}
		}
	}

	// Kernel on the circulant grid and the padded charges.
	m := f.m
	g := f.h / fftInterp
	s.fftRowT.stage = fftStageFill
	s.pool.run(&s.fftRowT, f.workers, 1)
	if g2 := g * g; g2 != f.kernG2 || m != f.kernM {
		f.kernG2, f.kernM = g2, m
		s.fftRowT.stage = fftStageKernelRows
		s.pool.run(&s.fftRowT, f.workers, 1)
		s.fftRowT.stage = fftStageKernelCols
		s.pool.run(&s.fftRowT, f.workers, 1)
	}
	// Forward transforms: rows (only the first ng rows are non-zero), then
	// columns.
	s.fftRowT.stage = fftStageForwardRows
	s.pool.run(&s.fftRowT, f.workers, 1)
	s.fftColT.inverse = false
	s.pool.run(&s.fftColT, f.workers, 1)
	// Multiply by the kernel spectrum (real: the kernel is even).
	for k := range f.a {
		kv := f.kern[k]
		f.a[k] *= complex(kv, 0)
		f.b[k] *= complex(kv, 0)
	}
	s.fftColT.inverse = true
	s.pool.run(&s.fftColT, f.workers, 1)
	s.fftRowT.stage = fftStageInverseRows
	s.pool.run(&s.fftRowT, f.workers, 1)
	_ = m

	// Interpolate the potentials back and form the forces.
	s.fftInT.phase = 1
	s.pool.run(&s.fftInT, s.n, 1024)
}

// fftInterpTask computes the Lagrange weights of a range of points (phase
// 0) or interpolates the potentials back to them (phase 1).
type fftInterpTask struct {
	s     *tsneState
	phase int
}

func (t *fftInterpTask) run(lo, hi int) {
	s := t.s
	f := s.fft
	y := s.y
	if t.phase == 0 {
		nb := f.nBoxes
		for i := lo; i < hi; i++ {
			ux := (y[2*i] - f.lo) / f.h
			uy := (y[2*i+1] - f.lo) / f.h
			bx := min(int(ux), nb-1)
			by := min(int(uy), nb-1)
			f.node[i] = int32(by*fftInterp*f.ng + bx*fftInterp)
			lagrange3(f.wx[i*fftInterp:i*fftInterp+fftInterp], ux-float64(bx))
			lagrange3(f.wy[i*fftInterp:i*fftInterp+fftInterp], uy-float64(by))
		}
		return
	}
	ng, m := f.ng, f.m
	norm := 1 / float64(m*m)
	for i := lo; i < hi; i++ {
		var phi [4]float64
		base := int(f.node[i])
		for ay := 0; ay < fftInterp; ay++ {
			wy := f.wy[i*fftInterp+ay]
			gy := base/ng + ay
			gx := base % ng
			for ax := 0; ax < fftInterp; ax++ {
				w := wy * f.wx[i*fftInterp+ax]
				p := gy*m + gx + ax
				av, bv := f.a[p], f.b[p]
				phi[0] += w * real(av)
				phi[1] += w * imag(av)
				phi[2] += w * real(bv)
				phi[3] += w * imag(bv)
			}
		}
		for c := range phi {
			phi[c] *= norm
		}
		x, yy := y[2*i]-f.cx, y[2*i+1]-f.cy
		s.rep[2*i] = x*phi[0] - phi[1]
		s.rep[2*i+1] = yy*phi[0] - phi[2]
		s.zpart[i] = (1+x*x+yy*yy)*phi[0] - 2*(x*phi[1]+yy*phi[2]) + phi[3] - 1
	}
}

// lagrange3 sets w to the Lagrange basis polynomials of the nodes
// (k+0.5)/3, k = 0, 1, 2, at u in [0, 1].
func lagrange3(w []float64, u float64) {
	const t0, t1, t2 = 1.0 / 6, 3.0 / 6, 5.0 / 6
	// Denominators: (t0-t1)(t0-t2) = 2/9, (t1-t0)(t1-t2) = -1/9, (t2-t0)(t2-t1) = 2/9.
	a, b, c := u-t0, u-t1, u-t2
	w[0] = b * c * 4.5
	w[1] = -a * c * 9
	w[2] = a * b * 4.5
}

const (
	fftStageFill = iota
	fftStageForwardRows
	fftStageInverseRows
	fftStageKernelRows
	fftStageKernelCols
)

// fftRowTask works on grid rows; it is run with one job per worker slot, so
// each slot uses its own FFT plan. Rows are independent, so the result does
// not depend on the number of workers.
type fftRowTask struct {
	s     *tsneState
	stage int
}

func (t *fftRowTask) run(lo, hi int) {
	f := t.s.fft
	m, ng := f.m, f.ng
	for w := lo; w < hi; w++ {
		fft := f.ffts[w]
		switch t.stage {
		case fftStageFill:
			r0, r1 := w*m/f.workers, (w+1)*m/f.workers
			for r := r0; r < r1; r++ {
				arow, brow := f.a[r*m:(r+1)*m], f.b[r*m:(r+1)*m]
				if r >= ng {
					clear(arow)
					clear(brow)
					continue
				}
				for c := 0; c < ng; c++ {
					p := r*ng + c
					arow[c] = complex(f.charge[0][p], f.charge[1][p])
					brow[c] = complex(f.charge[2][p], f.charge[3][p])
				}
				clear(arow[ng:])
				clear(brow[ng:])
			}
		case fftStageKernelRows:
			// The kernel on the circulant grid: offsets 0..ng-1 then
			// -(ng-1)..-1, with the unused offset ng set to zero.
			// Even-aligned ranges, so that each row pair below belongs to
			// one worker.
			r0, r1 := 2*(w*(m/2)/f.workers), 2*((w+1)*(m/2)/f.workers)
			for r := r0; r < r1; r++ {
				dr := r
				if r > ng {
					dr = r - m
				}
				krow := f.kern[r*m : (r+1)*m]
				for c := 0; c < m; c++ {
					dc := c
					if c > ng {
						dc = c - m
					}
					if r == ng || c == ng {
						krow[c] = 0
					} else {
						q := 1 / (1 + f.kernG2*float64(dr*dr+dc*dc))
						krow[c] = q * q
					}
				}
			}
			// The kernel rows are real and even, so their transforms are
			// real: transform two rows at once as the real and imaginary
			// parts of one complex sequence. Each worker transforms the
			// row pairs it filled.
			buf := f.col[w]
			for r := r0; r < r1; r += 2 {
				k0, k1 := f.kern[r*m:(r+1)*m], f.kern[(r+1)*m:(r+2)*m]
				for c := range buf {
					buf[c] = complex(k0[c], k1[c])
				}
				fft.Coefficients(buf, buf)
				for c, v := range buf {
					k0[c], k1[c] = real(v), imag(v)
				}
			}
		case fftStageKernelCols:
			// The row transforms are real and even along the columns too:
			// transform two columns at once.
			buf := f.col[w]
			p0, p1 := w*(m/2)/f.workers, (w+1)*(m/2)/f.workers
			for p := p0; p < p1; p++ {
				c := 2 * p
				for r := 0; r < m; r++ {
					buf[r] = complex(f.kern[r*m+c], f.kern[r*m+c+1])
				}
				fft.Coefficients(buf, buf)
				for r, v := range buf {
					f.kern[r*m+c], f.kern[r*m+c+1] = real(v), imag(v)
				}
			}
		case fftStageForwardRows:
			r0, r1 := w*ng/f.workers, (w+1)*ng/f.workers
			for r := r0; r < r1; r++ {
				fft.Coefficients(f.a[r*m:(r+1)*m], f.a[r*m:(r+1)*m])
				fft.Coefficients(f.b[r*m:(r+1)*m], f.b[r*m:(r+1)*m])
			}
		case fftStageInverseRows:
			r0, r1 := w*ng/f.workers, (w+1)*ng/f.workers
			for r := r0; r < r1; r++ {
				fft.Sequence(f.a[r*m:(r+1)*m], f.a[r*m:(r+1)*m])
				fft.Sequence(f.b[r*m:(r+1)*m], f.b[r*m:(r+1)*m])
			}
		}
	}
}

// fftColTask transforms the columns of the charge grids.
type fftColTask struct {
	s       *tsneState
	inverse bool
}

func (t *fftColTask) run(lo, hi int) {
	f := t.s.fft
	m := f.m
	for w := lo; w < hi; w++ {
		fft := f.ffts[w]
		buf := f.col[w]
		c0, c1 := w*m/f.workers, (w+1)*m/f.workers
		for c := c0; c < c1; c++ {
			for _, arr := range [2][]complex128{f.a, f.b} {
				for r := 0; r < m; r++ {
					buf[r] = arr[r*m+c]
				}
				if t.inverse {
					fft.Sequence(buf, buf)
				} else {
					fft.Coefficients(buf, buf)
				}
				for r := 0; r < m; r++ {
					arr[r*m+c] = buf[r]
				}
			}
		}
	}
}
