package style

import (
	"math"
	"math/bits"
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

	charge  [4][]float64 // spread charges on the ng x ng grid
	a, b    []complex64  // charges (0+i1, 2+i3), zero padded to m x m
	kern    []float32    // kernel on the m x m circulant grid, then its FFT (real: the kernel is even)
	plan    *fftPlan
	col     [][]complex64 // per worker column buffer
	scratch [][]complex64 // per worker FFT scratch
}

const fftInterp = 3

func newFFTRepulsion(n, workers, boxesMin int) *fftRepulsion {
	f := &fftRepulsion{n: n, workers: max(workers, 1), boxesMin: boxesMin, boxWidth: 1,
		node: make([]int32, n), wx: make([]float64, n*fftInterp), wy: make([]float64, n*fftInterp)}
	f.col = make([][]complex64, f.workers)
	f.scratch = make([][]complex64, f.workers)
	return f
}

// resize sets up the grid for FFTs of length m (2^k or 3·2^k): m/6
// boxes per side, so that the ng = 3m/6 nodes per side fit the zero padding.
func (f *fftRepulsion) resize(m int) {
	if m == f.m {
		return
	}
	f.m = m
	f.nBoxes = m / (2 * fftInterp)
	f.ng = f.nBoxes * fftInterp
	mm := f.m * f.m
	for c := range f.charge {
		f.charge[c] = growFloat(f.charge[c], f.ng*f.ng)
	}
	f.a = growComplex(f.a, mm)
	f.b = growComplex(f.b, mm)
	if cap(f.kern) < mm {
		f.kern = make([]float32, mm)
	}
	f.kern = f.kern[:mm]
	f.plan = newFFTPlan(m)
	for w := range f.col {
		f.col[w] = growComplex(f.col[w], fftColBlock*m)
		f.scratch[w] = growComplex(f.scratch[w], m)
	}
	f.kernM = 0 // the kernel must be recomputed
}

func growFloat(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

func growComplex(s []complex64, n int) []complex64 {
	if cap(s) < n {
		return make([]complex64, n)
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
	// At least boxesMin boxes, and boxes no wider than boxWidth; the FFT
	// length is the next power of two, and the boxes fill it.
	need := max(f.boxesMin, int(span/f.boxWidth)+1)
	f.resize(fftLength(2 * fftInterp * need))
	if span/f.boxWidth < float64(f.boxesMin) {
		// Small embeddings (early iterations): the boxes share the span.
		f.h = span / float64(f.nBoxes) * (1 + 1e-12)
	} else {
		// Boxes of exactly boxWidth, enough to cover the span: the kernel
		// spectrum then only changes when the grid grows, and is reused
		// in between.
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
				phi[0] += w * float64(real(av))
				phi[1] += w * float64(imag(av))
				phi[2] += w * float64(real(bv))
				phi[3] += w * float64(imag(bv))
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
		plan := f.plan
		scr := f.scratch[w]
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
					arow[c] = complex(float32(f.charge[0][p]), float32(f.charge[1][p]))
					brow[c] = complex(float32(f.charge[2][p]), float32(f.charge[3][p]))
				}
				clear(arow[ng:])
				clear(brow[ng:])
			}
		case fftStageKernelRows:
			// The kernel on the circulant grid: offsets 0..ng-1 then
			// -(ng-1)..-1, zero in between.
			// Even-aligned ranges, so that each row pair below belongs to
			// one worker.
			r0, r1 := 2*(w*(m/2)/f.workers), 2*((w+1)*(m/2)/f.workers)
			for r := r0; r < r1; r++ {
				dr, rok := fftOffset(r, ng, m)
				krow := f.kern[r*m : (r+1)*m]
				for c := 0; c < m; c++ {
					dc, cok := fftOffset(c, ng, m)
					if !rok || !cok {
						krow[c] = 0
					} else {
						q := 1 / (1 + f.kernG2*float64(dr*dr+dc*dc))
						krow[c] = float32(q * q)
					}
				}
			}
			// The kernel rows are real and even, so their transforms are
			// real: transform two rows at once as the real and imaginary
			// parts of one complex sequence. Each worker transforms the
			// row pairs it filled.
			buf := f.col[w][:m]
			for r := r0; r < r1; r += 2 {
				k0, k1 := f.kern[r*m:(r+1)*m], f.kern[(r+1)*m:(r+2)*m]
				for c := range buf {
					buf[c] = complex(k0[c], k1[c])
				}
				plan.forward(buf, scr)
				for c, v := range buf {
					k0[c], k1[c] = real(v), imag(v)
				}
			}
		case fftStageKernelCols:
			// The row transforms are real and even along the columns too:
			// transform two columns at once.
			buf := f.col[w][:m]
			p0, p1 := w*(m/2)/f.workers, (w+1)*(m/2)/f.workers
			for p := p0; p < p1; p++ {
				c := 2 * p
				for r := 0; r < m; r++ {
					buf[r] = complex(f.kern[r*m+c], f.kern[r*m+c+1])
				}
				plan.forward(buf, scr)
				for r, v := range buf {
					f.kern[r*m+c], f.kern[r*m+c+1] = real(v), imag(v)
				}
			}
		case fftStageForwardRows:
			r0, r1 := w*ng/f.workers, (w+1)*ng/f.workers
			for r := r0; r < r1; r++ {
				plan.forward(f.a[r*m:(r+1)*m], scr)
				plan.forward(f.b[r*m:(r+1)*m], scr)
			}
		case fftStageInverseRows:
			r0, r1 := w*ng/f.workers, (w+1)*ng/f.workers
			for r := r0; r < r1; r++ {
				plan.inverse(f.a[r*m:(r+1)*m], scr)
				plan.inverse(f.b[r*m:(r+1)*m], scr)
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
	m, ng := f.m, f.ng
	buf := f.col
	for w := lo; w < hi; w++ {
		plan := f.plan
		cols := buf[w]
		scr := f.scratch[w]
		// Blocks of fftColBlock columns are copied out row segment by row
		// segment (whole cache lines), transformed, and copied back.
		nblk := m / fftColBlock
		b0, b1 := w*nblk/f.workers, (w+1)*nblk/f.workers
		for blk := b0; blk < b1; blk++ {
			c0 := blk * fftColBlock
			for _, arr := range [2][]complex64{f.a, f.b} {
				rows := m
				if !t.inverse {
					rows = ng // the rows below are zero padding
				}
				for r := 0; r < rows; r++ {
					seg := arr[r*m+c0 : r*m+c0+fftColBlock]
					for j, v := range seg {
						cols[j*m+r] = v
					}
				}
				for j := 0; j < fftColBlock; j++ {
					col := cols[j*m : (j+1)*m]
					if t.inverse {
						plan.inverse(col, scr)
					} else {
						clear(col[ng:])
						plan.forward(col, scr)
					}
				}
				rows = m
				if t.inverse {
					rows = ng // only the first ng rows are used
				}
				for r := 0; r < rows; r++ {
					seg := arr[r*m+c0 : r*m+c0+fftColBlock]
					for j := range seg {
						seg[j] = cols[j*m+r]
					}
				}
			}
		}
	}
}

// fftColBlock is the number of columns transformed together.
const fftColBlock = 16

// fftOffset returns the grid offset that index i of the circulant grid of
// length m stands for, and false for the unused indices between ng-1 and
// m-ng+1.
func fftOffset(i, ng, m int) (int, bool) {
	switch {
	case i < ng:
		return i, true
	case i > m-ng:
		return i - m, true
	}
	return 0, false
}

// fftPlan is an in-place radix-2 complex FFT of a fixed power-of-two
// length, with precomputed twiddle factors. It is read-only once made and
// may be used by several goroutines at once.
//
// A length 3·2^k is done by one radix-3 Cooley-Tukey step over three
// interleaved power-of-two transforms, which needs a scratch buffer of
// length n per call.
type fftPlan struct {
	n       int
	rev     []int32     // bit-reversal permutation
	tw, itw []complex64 // exp(-2 pi i k/n) and its conjugate, k < n/2
	sub     *fftPlan    // for n = 3L: the plan of length L
	tw3     []complex64 // for n = 3L: exp(-2 pi i k/n), k < 2L
}

// fftLength returns the smallest length 2^k or 3·2^k that is at least n.
func fftLength(n int) int {
	p := 1 << bits.Len(uint(n-1))
	if q := p / 4 * 3; q >= n {
		return q
	}
	return p
}

func newFFTPlan(n int) *fftPlan {
	if n%3 == 0 {
		l := n / 3
		p := &fftPlan{n: n, sub: newFFTPlan(l), tw3: make([]complex64, 2*l)}
		for k := range p.tw3 {
			s, c := math.Sincos(-2 * math.Pi * float64(k) / float64(n))
			p.tw3[k] = complex(float32(c), float32(s))
		}
		return p
	}
	if n < 2 || n&(n-1) != 0 {
		panic("style: fft length is not 2^k or 3·2^k")
	}
	p := &fftPlan{n: n, rev: make([]int32, n), tw: make([]complex64, n/2), itw: make([]complex64, n/2)}
	lg := bits.Len(uint(n)) - 1
	for i := range p.rev {
		p.rev[i] = int32(bits.Reverse(uint(i)) >> (bits.UintSize - lg))
	}
	for k := range p.tw {
		s, c := math.Sincos(-2 * math.Pi * float64(k) / float64(n))
		p.tw[k] = complex(float32(c), float32(s))
		p.itw[k] = complex(float32(c), float32(-s))
	}
	return p
}

// forward replaces x by its discrete Fourier transform
// X[k] = sum_j x[j] exp(-2 pi i jk/n), using scratch (length n) when n is
// not a power of two.
func (p *fftPlan) forward(x, scratch []complex64) {
	if p.sub != nil {
		p.radix3(x, scratch, false)
		return
	}
	p.transform(x, p.tw)
}

// inverse replaces x by sum_k x[k] exp(+2 pi i jk/n), without the 1/n.
func (p *fftPlan) inverse(x, scratch []complex64) {
	if p.sub != nil {
		p.radix3(x, scratch, true)
		return
	}
	p.transform(x, p.itw)
}

// radix3 computes X[k + Lq] = sum_r w^(r(k+Lq)) Y_r[k], q, r < 3, where
// Y_r is the length-L transform of x[3j+r] and w = exp(-+2 pi i/n).
func (p *fftPlan) radix3(x, scratch []complex64, inverse bool) {
	l := p.n / 3
	x, scratch = x[:p.n], scratch[:p.n]
	for j := 0; j < l; j++ {
		scratch[j], scratch[l+j], scratch[2*l+j] = x[3*j], x[3*j+1], x[3*j+2]
	}
	y0, y1, y2 := scratch[:l], scratch[l:2*l], scratch[2*l:]
	if inverse {
		p.sub.transform(y0, p.sub.itw)
		p.sub.transform(y1, p.sub.itw)
		p.sub.transform(y2, p.sub.itw)
	} else {
		p.sub.transform(y0, p.sub.tw)
		p.sub.transform(y1, p.sub.tw)
		p.sub.transform(y2, p.sub.tw)
	}
	// Cube roots of unity: w3 = exp(-+2 pi i/3).
	const s3 = 0.8660254037844386 // sqrt(3)/2
	w3 := complex64(complex(-0.5, -s3))
	if inverse {
		w3 = complex64(complex(-0.5, s3))
	}
	w3b := complex(real(w3), -imag(w3)) // w3^2
	for k := 0; k < l; k++ {
		t1, t2 := p.tw3[k], p.tw3[2*k]
		if inverse {
			t1 = complex(real(t1), -imag(t1))
			t2 = complex(real(t2), -imag(t2))
		}
		a := y0[k]
		b := y1[k] * t1
		c := y2[k] * t2
		x[k] = a + b + c
		x[k+l] = a + b*w3 + c*w3b
		x[k+2*l] = a + b*w3b + c*w3
	}
}

func (p *fftPlan) transform(x []complex64, tw []complex64) {
	n := p.n
	x = x[:n]
	for i, j := range p.rev {
		if i < int(j) {
			x[i], x[j] = x[j], x[i]
		}
	}
	// First two stages together as radix-4 butterflies without twiddles
	// other than -i (or +i for the inverse).
	if n >= 4 {
		rot := complex64(complex(0, -1))
		if imag(tw[n/4]) > 0 {
			rot = complex64(complex(0, 1))
		}
		for s := 0; s < n; s += 4 {
			a0, a1, a2, a3 := x[s], x[s+1], x[s+2], x[s+3]
			b0, b1 := a0+a1, a0-a1
			b2, b3 := a2+a3, (a2-a3)*rot
			x[s], x[s+2] = b0+b2, b0-b2
			x[s+1], x[s+3] = b1+b3, b1-b3
		}
	} else {
		x[0], x[1] = x[0]+x[1], x[0]-x[1]
		return
	}
	for size := 8; size <= n; size <<= 1 {
		half := size / 2
		step := n / size
		for s := 0; s < n; s += size {
			lo := x[s : s+half]
			hi := x[s+half : s+size]
			for k := range lo {
				w := tw[k*step]
				b := hi[k] * w
				a := lo[k]
				lo[k] = a + b
				hi[k] = a - b
			}
		}
	}
}
