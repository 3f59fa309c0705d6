package style

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stylespace/style/internal/engine"
	"gonum.org/v1/gonum/blas"
)

// defaultL2 is the study's L2 penalty factor on the head's kernel, the
// default of Trainer.L2.
const defaultL2 = 1.25e-4

// Trainer trains a SiameseHead on labelled pairs of stored feature vectors
// with the contrastive loss (margin from the head), an L2 penalty on the
// kernel and an Optimizer, in shuffled mini-batches, with early stopping on
// the validation loss. The zero value is the study's setup: batches of 128,
// RMSProp with Keras' defaults, L2 1.25e-4.
//
// Each step gathers the features of a mini-batch from the FeatureSource
// (both items of every pair, divided by the head's Scale), embeds them with
// one matrix product, and back-propagates with a second; no more than one
// mini-batch of features is held in float32 at a time.
//
// Training is deterministic: the same Seed, data and settings give
// bit-identical weights and history, whatever Workers is.
type Trainer struct {
	// Epochs is the maximum number of passes over the training pairs;
	// zero means 10.
	Epochs int
	// BatchSize is the number of pairs per mini-batch; zero means 128.
	BatchSize int
	// Seed seeds the shuffling of the training pairs, reshuffled every
	// epoch.
	Seed uint64
	// Patience enables early stopping when positive and there are
	// validation pairs: training stops after Patience epochs in a row
	// without a validation loss strictly below the best so far, and at the
	// end of training (stopped early or not) the head gets the weights of
	// the epoch with the lowest validation loss back. Zero means no early
	// stopping: all Epochs run and the last weights are kept.
	Patience int
	// L2 is the penalty factor on the sum of squared kernel weights: the
	// loss gains L2·sum(W²); the bias is not penalised. Zero means the
	// study's 1.25e-4 and a negative value means no penalty.
	L2 float64
	// Optimizer updates the weights; nil means a new RMSProp with Keras'
	// defaults and the Trainer's Workers for each Fit. A given Optimizer
	// keeps its state across Fit calls unless Reset, and its own
	// parallelism (RMSProp.Workers).
	Optimizer Optimizer
	// Workers bounds the goroutines of every parallel part of training:
	// gathering the features, the matrix products, the L2 penalty pass and
	// the default RMSProp's step. The matrix products run on the head's
	// Dense.BLAS when it is set (as configured there) and otherwise on the
	// package's BLAS with Workers goroutines. Zero means
	// runtime.GOMAXPROCS(0); a negative value makes Fit return an error.
	// It does not change the results.
	Workers int
	// Progress, if not nil, is called after every epoch with Stage "train",
	// Done and Total epochs, the epoch's training loss and its validation
	// loss.
	Progress func(Progress)
}

// History is the learning curve of a training run.
type History struct {
	Loss    []float64 // mean training loss (with the L2 penalty) of each epoch, over its mini-batches
	ValLoss []float64 // validation loss (with the L2 penalty) after each epoch; nil without validation pairs
	// BestEpoch is the 0-based epoch with the lowest validation loss, -1
	// without validation pairs.
	BestEpoch int
	// Stopped reports whether early stopping ended the run before Epochs.
	Stopped bool
}

func (t *Trainer) settings() (epochs, batch int, l2 float64, workers int) {
	epochs, batch, l2 = t.Epochs, t.BatchSize, t.L2
	if epochs <= 0 {
		epochs = 10
	}
	if batch <= 0 {
		batch = 128
	}
	if l2 == 0 {
		l2 = defaultL2
	} else if l2 < 0 {
		l2 = 0
	}
	return epochs, batch, l2, engine.Workers(t.Workers)
}

// Fit trains h on the train pairs of features from src and, after each
// epoch, measures the loss on the val pairs (which may be empty). It
// returns the learning curve.
//
// Fit checks ctx before every mini-batch and returns ctx.Err() when it is
// cancelled; h then holds the weights after the last completed mini-batch.
// It returns an error if Workers (or that of the head's BLAS) is
// negative, src.Dim() is not h.Dense.In, there are no training pairs, or a
// pair has an index out of range or a label other than 0 or 1.
func (t *Trainer) Fit(ctx context.Context, h *SiameseHead, src FeatureSource, train, val []LabeledPair) (*History, error) {
	if t.Workers < 0 {
		return nil, fmt.Errorf("style: Trainer.Fit: Workers is %d, want 0 (GOMAXPROCS) or more", t.Workers)
	}
	epochs, batch, l2, workers := t.settings()
	h.checkLayers("Fit")
	if src.Dim() != h.inputLen() {
		return nil, fmt.Errorf("style: Trainer.Fit: features have %d values, the head expects %d", src.Dim(), h.inputLen())
	}
	if len(train) == 0 {
		return nil, errors.New("style: Trainer.Fit: no training pairs")
	}
	if err := checkPairs(train, src.Len(), "training"); err != nil {
		return nil, err
	}
	if err := checkPairs(val, src.Len(), "validation"); err != nil {
		return nil, err
	}
	if err := checkFeatures(ctx, src, train, val); err != nil {
		return nil, err
	}
	if err := checkHeadParams(h.Scale, h.Margin, h.Cutoff); err != nil {
		return nil, fmt.Errorf("style: Trainer.Fit: %v", err)
	}
	if w, ok := blasWorkers(h.Dense.BLAS); ok && w < 0 {
		return nil, fmt.Errorf("style: Trainer.Fit: the head's BLAS has Workers %d, want 0 (GOMAXPROCS) or more", w)
	}
	opt := t.Optimizer
	if opt == nil {
		opt = &RMSProp{Workers: workers}
	}
	layers := h.layers()
	start := time.Now()
	rng := rand.New(rand.NewPCG(t.Seed, 0xbb67ae8584caa73b))
	order := make([]int, len(train))
	ws := newHeadWorkspace(h, min(batch, len(train)), true, workers)
	hist := &History{BestEpoch: -1}
	best := make([][]float32, 2*len(layers)) // kernel and bias of each layer at the best epoch
	saved := false
	bestLoss := math.Inf(1)
	wait := 0
	for e := 0; e < epochs; e++ {
		for i := range order {
			order[i] = i
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		var sum float64
		for lo := 0; lo < len(order); lo += batch {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			hi := min(lo+batch, len(order))
			ws.pairs = ws.pairs[:0]
			for _, k := range order[lo:hi] {
				ws.pairs = append(ws.pairs, train[k])
			}
			ws.gather(src, ws.pairs)
			sum += ws.step(h, l2, opt) * float64(hi-lo)
		}
		hist.Loss = append(hist.Loss, sum/float64(len(train)))
		var vl float64
		if len(val) > 0 {
			var err error
			if vl, _, err = h.evalPairs(ctx, src, val, ws, l2, true); err != nil {
				return nil, err
			}
			hist.ValLoss = append(hist.ValLoss, vl)
			if vl < bestLoss {
				bestLoss, hist.BestEpoch, wait = vl, e, 0
				if t.Patience > 0 {
					for k, l := range layers {
						best[2*k] = append(best[2*k][:0], l.W...)
						best[2*k+1] = append(best[2*k+1][:0], l.B...)
					}
					saved = true
				}
			} else {
				wait++
			}
		}
		if t.Progress != nil {
			t.Progress(Progress{Stage: "train", Done: int64(e + 1), Total: int64(epochs),
				Loss: hist.Loss[e], ValLoss: vl, Elapsed: time.Since(start)})
		}
		if t.Patience > 0 && len(val) > 0 && wait >= t.Patience {
			hist.Stopped = e+1 < epochs
			break
		}
	}
	if saved && hist.BestEpoch != len(hist.Loss)-1 {
		for k, l := range layers {
			copy(l.W, best[2*k])
			copy(l.B, best[2*k+1])
		}
	}
	return hist, nil
}

// PairDistances returns the distance between the embeddings of the two
// items of each pair, in batches of 128 pairs. With the labels, the
// distances give the head's ROC curve (ROCFromDistances).
//
// Its parallelism is the head's: the matrix products run on h.Dense.BLAS
// (nil means the package's BLAS), and the features are read on as many
// goroutines as that BLAS uses, its Workers if it is a BLAS of this
// package and runtime.GOMAXPROCS(0) otherwise. It returns an error if that
// Workers is negative, src.Dim() is not the number of features the head
// takes (h.Dense.In, or h.Hidden[0].In with hidden layers), a pair refers to an
// entry out of range, or ctx is cancelled (ctx.Err(), checked between
// batches).
func (h *SiameseHead) PairDistances(ctx context.Context, src FeatureSource, pairs []LabeledPair) ([]float64, error) {
	w, _ := blasWorkers(h.Dense.BLAS)
	if w < 0 {
		return nil, fmt.Errorf("style: SiameseHead.PairDistances: the head's BLAS has Workers %d, want 0 (GOMAXPROCS) or more", w)
	}
	h.checkLayers("PairDistances")
	if src.Dim() != h.inputLen() {
		return nil, fmt.Errorf("style: SiameseHead.PairDistances: features have %d values, the head expects %d", src.Dim(), h.inputLen())
	}
	for k, p := range pairs {
		if p.A < 0 || p.A >= src.Len() || p.B < 0 || p.B >= src.Len() {
			return nil, fmt.Errorf("style: SiameseHead.PairDistances: pair %d refers to entries %d and %d of %d", k, p.A, p.B, src.Len())
		}
	}
	if len(pairs) == 0 {
		return nil, nil
	}
	if err := checkFeatures(ctx, src, pairs); err != nil {
		return nil, err
	}
	ws := newHeadWorkspace(h, min(128, len(pairs)), false, engine.Workers(w))
	_, dist, err := h.evalPairs(ctx, src, pairs, ws, 0, false)
	return dist, err
}

func checkPairs(pairs []LabeledPair, n int, what string) error {
	for k, p := range pairs {
		if p.A < 0 || p.A >= n || p.B < 0 || p.B >= n {
			return fmt.Errorf("style: %s pair %d refers to entries %d and %d of %d", what, k, p.A, p.B, n)
		}
		if p.Label != 0 && p.Label != 1 {
			return fmt.Errorf("style: %s pair %d has label %d, want 0 or 1", what, k, p.Label)
		}
	}
	return nil
}

// headWorkspace holds the buffers of one mini-batch of at most cap pairs,
// and the parallelism of a run: workers goroutines for the gather and the
// L2 pass, bl for the matrix products.
type headWorkspace struct {
	cap     int
	workers int
	bl      blas.Float32Level3
	pairs   []LabeledPair
	labels  []int
	x       []float32 // 2n x In: first items, then second items
	h       []float32 // 2n x Out embeddings
	dh      []float32 // 2n x Out loss gradient
	gW, gB  []float32
	dist    []float64
	// Hidden layers, for a head that has them: act[k] holds hidden layer
	// k's outputs (2n x its width), dact[k] their gradients, gHid[2k] and
	// gHid[2k+1] its kernel and bias gradients.
	act, dact [][]float32
	gHid      [][]float32
	// params and grads are the slices given to the Optimizer: each layer's
	// kernel and bias, in layer order, and their gradients.
	params, grads [][]float32
}

// newHeadWorkspace allocates the buffers for batches of capacity pairs,
// with the gradient buffers only if train is set, for a run on workers
// (resolved) goroutines: the matrix products use the head's BLAS if it
// has one, else the package's with workers goroutines.
func newHeadWorkspace(h *SiameseHead, capacity int, train bool, workers int) *headWorkspace {
	in, out := h.inputLen(), h.Dense.Out
	bl := h.Dense.BLAS
	if bl == nil {
		bl = BLAS{Workers: workers}
	}
	ws := &headWorkspace{
		cap:     capacity,
		workers: workers,
		bl:      bl,
		pairs:   make([]LabeledPair, 0, capacity),
		labels:  make([]int, capacity),
		x:       make([]float32, 2*capacity*in),
		h:       make([]float32, 2*capacity*out),
		dist:    make([]float64, capacity),
	}
	ws.act = h.hiddenBuffers(2 * capacity)
	if train {
		ws.dh = make([]float32, 2*capacity*out)
		ws.gW = make([]float32, h.Dense.In*out)
		ws.gB = make([]float32, out)
		ws.dact = h.hiddenBuffers(2 * capacity)
		for _, l := range h.Hidden {
			g := [2][]float32{make([]float32, l.In*l.Out), make([]float32, l.Out)}
			ws.gHid = append(ws.gHid, g[0], g[1])
			ws.params = append(ws.params, l.W, l.B)
		}
		ws.grads = append(slices.Clip(ws.gHid), ws.gW, ws.gB)
		ws.params = append(ws.params, h.Dense.W, h.Dense.B)
	}
	return ws
}

// gather copies the features of pairs into ws.x (row p the first item of
// pair p, row n+p its second item) and their labels into ws.labels. Rows are
// spread over at most ws.workers goroutines (one per four rows); each row
// is written by exactly one, so the result does not depend on workers.
func (ws *headWorkspace) gather(src FeatureSource, pairs []LabeledPair) {
	n, dim := len(pairs), src.Dim()
	for p, pr := range pairs {
		ws.labels[p] = pr.Label
	}
	rows := 2 * n
	engine.For(min(ws.workers, rows/4), rows, func(_, r int) {
		p := pairs[r%n]
		i := p.A
		if r >= n {
			i = p.B
		}
		src.FeatureTo(ws.x[r*dim:(r+1)*dim], i)
	})
}

// step runs one training step on the gathered batch of n = len(ws.pairs)
// pairs and returns its loss (data loss plus the L2 penalty on every
// kernel). On return ws.dist holds the distances and ws.gW, ws.gB (and
// ws.gHid for hidden layers) the gradients that were applied. ws must
// have been made for h.
func (ws *headWorkspace) step(h *SiameseHead, l2 float64, opt Optimizer) float64 {
	d := h.Dense
	n := len(ws.pairs)
	rows := 2 * n
	x, hh, dh := ws.x[:rows*h.inputLen()], ws.h[:rows*d.Out], ws.dh[:rows*d.Out]
	alpha := h.alpha()
	h.forward(ws.bl, hh, x, rows, alpha, ws.act)
	loss := contrastiveEval(h.Margin, dh[:n*d.Out], dh[n*d.Out:], hh[:n*d.Out], hh[n*d.Out:], ws.labels[:n], ws.dist[:n])
	// Back-propagate from the embedding layer to the first: layer k's
	// input gradient is the output gradient of layer k-1; the first
	// layer's input gradient is not needed. Only the first layer's input
	// is scaled by alpha.
	nh := len(h.Hidden)
	in, gx, a := x, []float32(nil), alpha
	if nh > 0 {
		in, gx, a = ws.act[nh-1][:rows*d.In], ws.dact[nh-1][:rows*d.In], 1
	}
	d.backward(ws.bl, ws.gW, ws.gB, gx, in, hh, dh, rows, 2, a)
	for k := nh - 1; k >= 0; k-- {
		l := h.Hidden[k]
		in, gx, a = x, nil, alpha
		if k > 0 {
			in, gx, a = ws.act[k-1][:rows*l.In], ws.dact[k-1][:rows*l.In], 1
		}
		l.backward(ws.bl, ws.gHid[2*k], ws.gHid[2*k+1], gx, in, ws.act[k][:rows*l.Out], ws.dact[k][:rows*l.Out], rows, 2, a)
	}
	for k, l := range h.Hidden {
		loss += l2Penalty(ws.gHid[2*k], l.W, l2, ws.workers)
	}
	loss += l2Penalty(ws.gW, d.W, l2, ws.workers)
	opt.Step(ws.params, ws.grads)
	return loss
}

// evalPairs embeds the pairs in batches of ws.cap and returns the mean
// contrastive loss plus the L2 penalty (if wantLoss) and the distances.
func (h *SiameseHead) evalPairs(ctx context.Context, src FeatureSource, pairs []LabeledPair, ws *headWorkspace, l2 float64, wantLoss bool) (float64, []float64, error) {
	d := h.Dense
	out := d.Out
	dist := make([]float64, len(pairs))
	var sum float64
	for lo := 0; lo < len(pairs); lo += ws.cap {
		if err := ctx.Err(); err != nil {
			return 0, nil, err
		}
		hi := min(lo+ws.cap, len(pairs))
		n := hi - lo
		ws.gather(src, pairs[lo:hi])
		hh := ws.h[:2*n*out]
		h.forward(ws.bl, hh, ws.x[:2*n*h.inputLen()], 2*n, h.alpha(), ws.act)
		if wantLoss {
			sum += contrastiveEval[float32](h.Margin, nil, nil, hh[:n*out], hh[n*out:], ws.labels[:n], dist[lo:hi]) * float64(n)
		} else {
			for p := 0; p < n; p++ {
				dist[lo+p] = pairDistance(hh[p*out:(p+1)*out], hh[(n+p)*out:(n+p+1)*out])
			}
		}
	}
	if !wantLoss {
		return 0, dist, nil
	}
	penalty := 0.0
	for _, l := range h.Hidden {
		penalty += l2Penalty(nil, l.W, l2, ws.workers)
	}
	return sum/float64(len(pairs)) + penalty + l2Penalty(nil, d.W, l2, ws.workers), dist, nil
}
