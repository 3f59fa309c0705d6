package style

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/stylespace/style/internal/engine"
	"gonum.org/v1/gonum/mat"
)

// TSNEMethod selects how t-SNE computes the repulsive forces of its
// gradient.
type TSNEMethod int

const (
	// TSNEAuto uses TSNEFFT for 2-D embeddings of at least 50,000 points
	// and TSNEBarnesHut otherwise. The cost of the FFT interpolation grid
	// depends on the extent of the embedding, not on N, so it pays off
	// only for large N: on 128-D data Barnes-Hut is several times faster
	// at 10,000 points and FFT interpolation is the faster one at 50,000.
	TSNEAuto TSNEMethod = iota
	// TSNEBarnesHut approximates the repulsive forces with a Barnes-Hut
	// space-partitioning tree (a quadtree in 2-D, an octree in 3-D) with the
	// opening angle TSNE.Theta: O(N log N) per iteration.
	TSNEBarnesHut
	// TSNEFFT approximates the repulsive forces by Lagrange interpolation on
	// an equispaced grid and a kernel convolution through the FFT, as
	// FIt-SNE does: O(N) per iteration plus a grid-sized FFT. 2-D only.
	TSNEFFT
	// TSNEExact computes every pairwise interaction: O(N^2) time per
	// iteration. Meant for small N and as a reference.
	TSNEExact
)

// tsneFFTMinPoints is the number of points from which TSNEAuto switches
// from Barnes-Hut to FFT-accelerated interpolation for 2-D embeddings
// (see TSNEAuto).
const tsneFFTMinPoints = 50000

// TSNEInit selects the initial embedding.
type TSNEInit int

const (
	// TSNEInitPCA starts from the first principal components of the input,
	// scaled so that the first coordinate has standard deviation 1e-4, as
	// scikit-learn's init="pca" does.
	TSNEInitPCA TSNEInit = iota
	// TSNEInitRandom starts from Gaussian noise with standard deviation
	// 1e-4 drawn from the seed.
	TSNEInitRandom
)

// TSNE configures t-distributed stochastic neighbour embedding (van der
// Maaten and Hinton 2008; Barnes-Hut: van der Maaten 2014; FFT-accelerated
// interpolation: Linderman et al. 2019). The zero value gives the usual
// defaults, those of scikit-learn's TSNE. A TSNE value is only read, never
// modified, so one value may be used by several goroutines at once.
type TSNE struct {
	// Dims is the dimension of the embedding, 2 or 3. Zero means 2.
	Dims int
	// Perplexity is the effective number of neighbours of each point; it
	// must be smaller than the number of points. Zero means 30.
	Perplexity float64
	// Theta is the Barnes-Hut opening angle: a cell of width w at distance
	// d is summarised by its centre of mass when w/d < Theta. Zero means
	// 0.5; use Method TSNEExact for exact forces.
	Theta float64
	// Iterations is the total number of gradient steps, including the early
	// exaggeration phase. Zero means 1,000.
	Iterations int
	// EarlyExaggeration multiplies the input affinities during the first
	// ExaggerationIterations steps. Zero means 12.
	EarlyExaggeration float64
	// ExaggerationIterations is the length of the early exaggeration phase,
	// run with momentum 0.5; the remaining steps use momentum 0.8. Zero
	// means 250.
	ExaggerationIterations int
	// LearningRate is the gradient-descent step size. Zero means "auto":
	// max(N / EarlyExaggeration / 4, 50), as scikit-learn.
	LearningRate float64
	// Init selects the initial embedding. The zero value is TSNEInitPCA.
	Init TSNEInit
	// Seed seeds the random initialisation.
	// The same seed and input give the same embedding for any Workers.
	Seed uint64
	// Method selects the gradient approximation. The zero value is TSNEAuto.
	Method TSNEMethod
	// Workers is the number of goroutines. Zero means runtime.GOMAXPROCS(0);
	// a negative value makes Fit return an error. The result does not
	// depend on it.
	Workers int
	// Progress, if not nil, is called after every iteration with Stage
	// "tsne", Done and Total iterations, Loss the most recent estimate of
	// the KL divergence (computed every 50 iterations and at the end) and
	// Elapsed the time since the call started (affinities included).
	Progress func(Progress)
}

// TSNEResult is the outcome of TSNE.Fit.
type TSNEResult struct {
	// Y is the N x Dims embedding, one row per input row, rounded to
	// float32 from the float64 optimisation.
	Y *Matrix
	// KL is the Kullback-Leibler divergence KL(P||Q) between the input
	// affinities and the embedding affinities at the last iteration,
	// computed over the sparse input affinities as scikit-learn does.
	KL float64
	// Iterations is the number of gradient steps run.
	Iterations int
}

// tsneConfig is a TSNE with the defaults filled in and checked.
type tsneConfig struct {
	dims        int
	perplexity  float64
	theta       float64
	iters       int
	exag        float64
	exagIters   int
	lr          float64
	init        TSNEInit
	seed        uint64
	method      TSNEMethod
	workers     int
	progress    func(Progress)
	klEvery     int
	minGain     float64
	momentum0   float64
	momentum1   float64
	leafSize    int
	fftBoxesMin int
}

func (t TSNE) config(n int) (tsneConfig, error) {
	c := tsneConfig{
		dims: t.Dims, perplexity: t.Perplexity, theta: t.Theta, iters: t.Iterations,
		exag: t.EarlyExaggeration, exagIters: t.ExaggerationIterations, lr: t.LearningRate,
		init: t.Init, seed: t.Seed, method: t.Method, workers: t.Workers, progress: t.Progress,
		klEvery: 50, minGain: 0.01, momentum0: 0.5, momentum1: 0.8, leafSize: 4, fftBoxesMin: 40,
	}
	bad := func(format string, args ...any) (tsneConfig, error) {
		return tsneConfig{}, fmt.Errorf("style: TSNE.Fit: "+format, args...)
	}
	switch {
	case c.dims == 0:
		c.dims = 2
	case c.dims != 2 && c.dims != 3:
		return bad("Dims is %d, want 2 or 3", c.dims)
	}
	switch {
	case c.perplexity == 0:
		c.perplexity = 30
	case !(c.perplexity > 0) || math.IsInf(c.perplexity, 0):
		return bad("Perplexity is %v, want a positive number", c.perplexity)
	}
	switch {
	case c.theta == 0:
		c.theta = 0.5
	case !(c.theta > 0) || math.IsInf(c.theta, 0):
		return bad("Theta is %v, want a positive number", c.theta)
	}
	switch {
	case c.iters == 0:
		c.iters = 1000
	case c.iters < 0:
		return bad("Iterations is %d, want a positive number", c.iters)
	}
	switch {
	case c.exag == 0:
		c.exag = 12
	case !(c.exag > 0) || math.IsInf(c.exag, 0):
		return bad("EarlyExaggeration is %v, want a positive number", c.exag)
	}
	switch {
	case c.exagIters == 0:
		c.exagIters = 250
	case c.exagIters < 0:
		return bad("ExaggerationIterations is %d, want a positive number", c.exagIters)
	}
	switch {
	case c.lr == 0:
		c.lr = math.Max(float64(n)/c.exag/4, 50)
	case !(c.lr > 0) || math.IsInf(c.lr, 0):
		return bad("LearningRate is %v, want a positive number", c.lr)
	}
	if c.init != TSNEInitPCA && c.init != TSNEInitRandom {
		return bad("unknown Init %d", c.init)
	}
	switch c.method {
	case TSNEAuto:
		c.method = TSNEBarnesHut
		if c.dims == 2 && n >= tsneFFTMinPoints {
			c.method = TSNEFFT
		}
	case TSNEBarnesHut, TSNEExact:
	case TSNEFFT:
		if c.dims != 2 {
			return bad("Method TSNEFFT needs Dims 2, have %d", c.dims)
		}
	default:
		return bad("unknown Method %d", c.method)
	}
	if c.workers < 0 {
		return bad("Workers is %d, want 0 (GOMAXPROCS) or more", c.workers)
	}
	c.workers = engine.Workers(c.workers)
	return c, nil
}

// Fit runs t-SNE on the rows of x (N = x.Len() points of D = x.Dim()
// features: a *Matrix, a *Catalog, a *FeatureStore, ...) and returns the
// N x Dims embedding with its final KL divergence. It reads each row once,
// into a float64 working copy.
//
// It finds the 3·Perplexity exact nearest neighbours of every point with a
// ball tree, sets each point's Gaussian bandwidth by binary search
// so that its conditional distribution has the requested perplexity
// (entropy within 1e-5 nats), symmetrises the affinities into a sparse P, and
// minimises KL(P||Q) by gradient descent with momentum and per-parameter
// gains (delta-bar-delta, minimum gain 0.01), with early exaggeration.
//
// Fit returns an error saying what is wrong when N <= Perplexity, when x
// holds a NaN or infinite value (naming its row and column), when all rows
// are identical, when PCA initialisation has fewer features than Dims, or
// for an invalid configuration (a negative Workers among them), and
// ctx.Err() when the context is cancelled; it checks the context at every
// iteration and regularly while computing the affinities. x is not
// modified.
func (t TSNE) Fit(ctx context.Context, x FeatureSource) (*TSNEResult, error) {
	start := time.Now()
	n, d := x.Len(), x.Dim()
	c, err := t.config(n)
	if err != nil {
		return nil, err
	}
	if float64(n) <= c.perplexity {
		return nil, fmt.Errorf("style: TSNE.Fit: %d points are too few for perplexity %v (need more points than the perplexity)", n, c.perplexity)
	}
	if err := checkAllEntries(ctx, x); err != nil {
		return nil, err
	}
	data := make([]float64, n*d)
	row32 := make([]float32, d)
	for i := 0; i < n; i++ {
		row := data[i*d : (i+1)*d]
		for j, v := range x.FeatureTo(row32, i) {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, fmt.Errorf("style: TSNE.Fit: row %d column %d is %v", i, j, v)
			}
			row[j] = float64(v)
		}
	}
	if zeroVariance(data, n, d) {
		return nil, fmt.Errorf("style: TSNE.Fit: all %d rows are identical (zero variance)", n)
	}
	if c.init == TSNEInitPCA && d < c.dims {
		return nil, fmt.Errorf("style: TSNE.Fit: PCA initialisation needs at least %d features, have %d (use TSNEInitRandom)", c.dims, d)
	}

	pool := newTSNEPool(c.workers)
	defer pool.close()

	k := min(n-1, int(3*c.perplexity+1))
	P, order, err := tsneAffinities(ctx, pool, data, n, d, k, c.perplexity)
	if err != nil {
		return nil, err
	}
	var y []float64
	if c.init == TSNEInitPCA {
		y = pcaInit(data, n, d, c.dims)
	} else {
		rng := rand.New(rand.NewPCG(c.seed, 0x7453_4e45))
		y = make([]float64, n*c.dims)
		for i := range y {
			y[i] = 1e-4 * rng.NormFloat64()
		}
	}
	data = nil

	// Optimise with the points in ball-tree order: the neighbours of a
	// point then have nearby indices, so the attractive forces read the
	// embedding with far fewer cache misses.
	P = P.permute(order)
	P.setPLogP()
	yp := make([]float64, len(y))
	for a, i := range order {
		copy(yp[a*c.dims:(a+1)*c.dims], y[int(i)*c.dims:(int(i)+1)*c.dims])
	}
	s := newTSNEState(c, P, yp, n, pool)
	kl, iters, err := s.optimize(ctx, start)
	if err != nil {
		return nil, err
	}
	res := &TSNEResult{Y: &Matrix{Rows: n, Cols: c.dims, Data: make([]float32, n*c.dims)}, KL: kl, Iterations: iters}
	for a, i := range order {
		for k, v := range s.y[a*c.dims : (a+1)*c.dims] {
			res.Y.Data[int(i)*c.dims+k] = float32(v)
		}
	}
	return res, nil
}

func zeroVariance(data []float64, n, d int) bool {
	for i := 1; i < n; i++ {
		for j := 0; j < d; j++ {
			if data[i*d+j] != data[j] {
				return false
			}
		}
	}
	return true
}

// pcaInit projects the centred data on its first dims principal components
// and scales the result so that the first coordinate has standard deviation
// 1e-4, as scikit-learn's init="pca". The sign of each component is fixed so
// that its largest-magnitude loading is positive.
func pcaInit(data []float64, n, d, dims int) []float64 {
	mean := make([]float64, d)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			mean[j] += data[i*d+j]
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	xc := mat.NewDense(n, d, nil)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			xc.Set(i, j, data[i*d+j]-mean[j])
		}
	}
	comps := principalComponents(xc, dims)
	y := make([]float64, n*dims)
	for _, v := range comps {
		big := 0.0
		for _, x := range v {
			if math.Abs(x) > math.Abs(big) {
				big = x
			}
		}
		if big < 0 {
			for j := range v {
				v[j] = -v[j]
			}
		}
	}
	for i := 0; i < n; i++ {
		row := xc.RawRowView(i)
		for a := 0; a < dims; a++ {
			s := 0.0
			for j, v := range comps[a] {
				s += row[j] * v
			}
			y[i*dims+a] = s
		}
	}
	var m, ss float64
	for i := 0; i < n; i++ {
		m += y[i*dims]
	}
	m /= float64(n)
	for i := 0; i < n; i++ {
		dv := y[i*dims] - m
		ss += dv * dv
	}
	std := math.Sqrt(ss / float64(n))
	if std == 0 {
		std = 1
	}
	for i := range y {
		y[i] = y[i] / std * 1e-4
	}
	return y
}

// tsneState holds the optimisation state and every buffer reused across
// iterations, so that a steady-state iteration does not allocate.
type tsneState struct {
	c    tsneConfig
	n    int
	dims int
	P    *sparseP
	pool *tsnePool

	y, grad, update, gains []float64
	attr, rep              []float64 // per point: attractive and repulsive forces
	zpart, klpart          []float64 // per point partial sums
	exag                   float64
	z                      float64 // sum of unnormalised q over all pairs
	momentum               float64

	bh  *bhTree
	fft *fftRepulsion

	gradT   tsneGradTask
	updT    tsneUpdateTask
	klT     tsneKLTask
	normT   tsneNormTask
	exactT  tsneExactTask
	bhT     tsneBHTask
	fftInT  fftInterpTask
	fftRowT fftRowTask
	fftColT fftColTask
}

func newTSNEState(c tsneConfig, P *sparseP, y []float64, n int, pool *tsnePool) *tsneState {
	nd := n * c.dims
	s := &tsneState{
		c: c, n: n, dims: c.dims, P: P, pool: pool, y: y,
		grad: make([]float64, nd), update: make([]float64, nd), gains: make([]float64, nd),
		attr: make([]float64, nd), rep: make([]float64, nd),
		zpart: make([]float64, n), klpart: make([]float64, n),
	}
	s.gradT.s, s.updT.s, s.klT.s, s.normT.s, s.exactT.s, s.bhT.s = s, s, s, s, s, s
	switch c.method {
	case TSNEBarnesHut:
		s.bh = newBHTree(n, c.dims, c.leafSize)
	case TSNEFFT:
		s.fft = newFFTRepulsion(n, c.workers, c.fftBoxesMin)
		s.fftInT.s, s.fftRowT.s, s.fftColT.s = s, s, s
	}
	return s
}

// optimize runs the gradient descent and returns the final KL divergence.
func (s *tsneState) optimize(ctx context.Context, start time.Time) (float64, int, error) {
	c := s.c
	kl := math.NaN()
	for it := 0; it < c.iters; it++ {
		if err := ctx.Err(); err != nil {
			return 0, it, err
		}
		if it == 0 || it == c.exagIters {
			// scikit-learn restarts the momentum and the gains when the
			// exaggeration phase ends.
			for i := range s.update {
				s.update[i] = 0
				s.gains[i] = 1
			}
		}
		if it < c.exagIters {
			s.exag, s.momentum = c.exag, c.momentum0
		} else {
			s.exag, s.momentum = 1, c.momentum1
		}
		s.gradient()
		if (it+1)%c.klEvery == 0 || it == c.iters-1 {
			kl = s.klDivergence()
		}
		s.pool.run(&s.updT, s.n, 512)
		if c.progress != nil {
			c.progress(Progress{Stage: "tsne", Done: int64(it + 1), Total: int64(c.iters), Loss: kl, Elapsed: time.Since(start)})
		}
	}
	return kl, c.iters, nil
}

// gradient fills s.grad with the KL gradient at s.y, with the current
// exaggeration, and s.z with the normalisation sum.
func (s *tsneState) gradient() {
	switch s.c.method {
	case TSNEExact:
		s.pool.run(&s.exactT, s.n, 64)
	case TSNEBarnesHut:
		s.bh.build(s.y)
		s.pool.run(&s.bhT, s.n, 256)
	case TSNEFFT:
		s.fftRepulsive()
	}
	s.pool.run(&s.gradT, s.n, 512)
	z := 0.0
	for _, v := range s.zpart {
		z += v
	}
	s.z = z
	s.pool.run(&s.normT, s.n, 1024)
}

// tsneGradTask computes the attractive forces over the sparse P.
type tsneGradTask struct{ s *tsneState }

func (t *tsneGradTask) run(lo, hi int) {
	s := t.s
	P, y, dims, ex := s.P, s.y, s.dims, s.exag
	if dims == 2 {
		for i := lo; i < hi; i++ {
			var fx, fy float64
			xi, yi := y[2*i], y[2*i+1]
			cols := P.col[P.rowPtr[i]:P.rowPtr[i+1]]
			vals := P.val[P.rowPtr[i]:P.rowPtr[i+1]]
			vals = vals[:len(cols)]
			for e, j := range cols {
				dx, dy := xi-y[2*j], yi-y[2*j+1]
				w := vals[e] / (1 + dx*dx + dy*dy)
				fx += w * dx
				fy += w * dy
			}
			s.attr[2*i], s.attr[2*i+1] = ex*fx, ex*fy
		}
		return
	}
	for i := lo; i < hi; i++ {
		var f [3]float64
		yi := y[i*dims : i*dims+dims]
		for e := P.rowPtr[i]; e < P.rowPtr[i+1]; e++ {
			j := int(P.col[e])
			yj := y[j*dims : j*dims+dims]
			d2 := 0.0
			var df [3]float64
			for a := 0; a < dims; a++ {
				df[a] = yi[a] - yj[a]
				d2 += df[a] * df[a]
			}
			w := P.val[e] / (1 + d2)
			for a := 0; a < dims; a++ {
				f[a] += w * df[a]
			}
		}
		for a := 0; a < dims; a++ {
			s.attr[i*dims+a] = ex * f[a]
		}
	}
}

// tsneNormTask combines the forces into the gradient.
type tsneNormTask struct{ s *tsneState }

func (t *tsneNormTask) run(lo, hi int) {
	s := t.s
	invZ := 1 / s.z
	for k := lo * s.dims; k < hi*s.dims; k++ {
		s.grad[k] = 4 * (s.attr[k] - s.rep[k]*invZ)
	}
}

// tsneUpdateTask applies one step of gradient descent with momentum and
// gains, exactly as scikit-learn's _gradient_descent.
type tsneUpdateTask struct{ s *tsneState }

func (t *tsneUpdateTask) run(lo, hi int) {
	s := t.s
	lr, mom, minGain := s.c.lr, s.momentum, s.c.minGain
	for k := lo * s.dims; k < hi*s.dims; k++ {
		g := s.grad[k]
		u := s.update[k]
		gain := s.gains[k]
		if u*g < 0 {
			gain += 0.2
		} else {
			gain *= 0.8
		}
		if gain < minGain {
			gain = minGain
		}
		s.gains[k] = gain
		u = mom*u - lr*gain*g
		s.update[k] = u
		s.y[k] += u
	}
}

// klDivergence returns KL(P||Q) over the non-zero entries of P (without
// exaggeration), with Q normalised by s.z, as scikit-learn's Barnes-Hut
// error.
func (s *tsneState) klDivergence() float64 {
	s.pool.run(&s.klT, s.n, 512)
	kl := 0.0
	for _, v := range s.klpart {
		kl += v
	}
	return kl
}

type tsneKLTask struct{ s *tsneState }

func (t *tsneKLTask) run(lo, hi int) {
	s := t.s
	P, y, dims := s.P, s.y, s.dims
	logZ := math.Log(s.z)
	// p log(p/q) with q = 1/((1+d2) Z): one logarithm per entry, the
	// entropy term sum p log p being computed once.
	for i := lo; i < hi; i++ {
		sum := 0.0
		for e := P.rowPtr[i]; e < P.rowPtr[i+1]; e++ {
			j := int(P.col[e])
			d2 := 0.0
			for a := 0; a < dims; a++ {
				df := y[i*dims+a] - y[j*dims+a]
				d2 += df * df
			}
			sum += P.val[e] * (math.Log1p(d2) + logZ)
		}
		s.klpart[i] = P.plogp[i] + sum
	}
}

// tsneExactTask computes the exact repulsive forces, O(N^2).
type tsneExactTask struct{ s *tsneState }

func (t *tsneExactTask) run(lo, hi int) {
	s := t.s
	y, dims, n := s.y, s.dims, s.n
	for i := lo; i < hi; i++ {
		var f [3]float64
		z := 0.0
		for j := 0; j < n; j++ {
			if j == i {
				continue
			}
			d2 := 0.0
			var df [3]float64
			for a := 0; a < dims; a++ {
				df[a] = y[i*dims+a] - y[j*dims+a]
				d2 += df[a] * df[a]
			}
			q := 1 / (1 + d2)
			z += q
			q2 := q * q
			for a := 0; a < dims; a++ {
				f[a] += q2 * df[a]
			}
		}
		copy(s.rep[i*dims:i*dims+dims], f[:dims])
		s.zpart[i] = z
	}
}

// tsneTask is a unit of parallel work over the index range [lo, hi). Tasks
// write only to outputs indexed by their range, so the result does not
// depend on how the range is split.
type tsneTask interface {
	run(lo, hi int)
}

// tsnePool runs the parallel loops of one Fit call on an engine.Team,
// whose goroutines live for the call, so that an iteration does not start
// goroutines or allocate.
type tsnePool struct {
	workers int
	team    *engine.Team
	// The loop in progress: task t over [0, n) in chunks of chunk
	// indices. body is runChunk, bound once.
	t        tsneTask
	n, chunk int
	body     func(w, i int)
}

func newTSNEPool(workers int) *tsnePool {
	p := &tsnePool{workers: workers}
	if workers > 1 {
		p.team = engine.NewTeam(workers)
		p.body = p.runChunk
	}
	return p
}

// run calls t.run over [0, n) in chunks of about chunk indices and waits.
func (p *tsnePool) run(t tsneTask, n, chunk int) {
	if p.workers <= 1 || n <= chunk {
		t.run(0, n)
		return
	}
	if c := (n + 4*p.workers - 1) / (4 * p.workers); c < chunk {
		chunk = max(c, 16)
	}
	p.t, p.n, p.chunk = t, n, chunk
	p.team.For((n+chunk-1)/chunk, p.body)
	p.t = nil
}

// runChunk runs chunk i of the loop in progress.
func (p *tsnePool) runChunk(_, i int) {
	lo := i * p.chunk
	p.t.run(lo, min(lo+p.chunk, p.n))
}

func (p *tsnePool) close() {
	if p.team != nil {
		p.team.Close()
	}
}

// pcaExactMaxDim is the largest dimension whose covariance matrix
// principalComponents decomposes exactly; above it, subspace iteration
// finds the leading components in O(n·d) per step instead of O(d³).
const pcaExactMaxDim = 256

// principalComponents returns the first k principal axes (unit vectors of
// length d, largest variance first) of the centred n x d matrix xc.
func principalComponents(xc *mat.Dense, k int) [][]float64 {
	n, d := xc.Dims()
	comps := make([][]float64, k)
	if d <= pcaExactMaxDim {
		var cov mat.SymDense
		cov.SymOuterK(1, xc.T())
		var eig mat.EigenSym
		if eig.Factorize(&cov, true) {
			var vecs mat.Dense
			eig.VectorsTo(&vecs)
			// Eigenvalues are in ascending order: take the last k columns.
			for a := range comps {
				comps[a] = mat.Col(nil, d-1-a, &vecs)
			}
			return comps
		}
	}
	// Block subspace iteration with a few extra vectors, started from a
	// fixed pseudo-random basis so the result is deterministic, followed
	// by a Rayleigh-Ritz step. The gap between the leading variances and
	// the rest makes it converge in a few steps; the components only seed
	// the optimisation, so a direction good to ~1e-6 is plenty.
	p := min(k+8, d, n)
	rng := rand.New(rand.NewPCG(0x9ca, 1))
	q := mat.NewDense(d, p, nil)
	for i := 0; i < d; i++ {
		for j := 0; j < p; j++ {
			q.Set(i, j, rng.NormFloat64())
		}
	}
	orthonormalize(q)
	var b mat.Dense
	for range 12 {
		b.Mul(xc, q)
		q.Mul(xc.T(), &b)
		orthonormalize(q)
	}
	b.Mul(xc, q)
	var s mat.SymDense
	s.SymOuterK(1, b.T())
	var eig mat.EigenSym
	if !eig.Factorize(&s, true) {
		for a := range comps {
			comps[a] = mat.Col(nil, a, q)
		}
		return comps
	}
	var w mat.Dense
	eig.VectorsTo(&w)
	for a := range comps {
		var v mat.VecDense
		v.MulVec(q, w.ColView(p-1-a))
		comps[a] = v.RawVector().Data
	}
	return comps
}

// orthonormalize makes the columns of q orthonormal in place by modified
// Gram-Schmidt, run twice for accuracy. A column that vanishes (q of
// lower rank) is left at zero.
func orthonormalize(q *mat.Dense) {
	d, p := q.Dims()
	col := make([][]float64, p)
	for j := range col {
		col[j] = mat.Col(nil, j, q)
	}
	for range 2 {
		for j := range col {
			for i := range j {
				dot := 0.0
				for r := range d {
					dot += col[i][r] * col[j][r]
				}
				for r := range d {
					col[j][r] -= dot * col[i][r]
				}
			}
			norm := 0.0
			for _, x := range col[j] {
				norm += x * x
			}
			norm = math.Sqrt(norm)
			for r := range col[j] {
				if norm > 0 {
					col[j][r] /= norm
				} else {
					col[j][r] = 0
				}
			}
		}
	}
	for j := range col {
		q.SetCol(j, col[j])
	}
}
