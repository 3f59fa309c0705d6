package study

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/stylespace/style"
)

// Grid lists the values of each hyper-parameter to try; the settings are
// their Cartesian product. A nil list means the one default value; a
// value itself is never a default: margins and learning rates must be
// positive and finite, embedding lengths and hidden widths positive, and
// L2 factors finite (CrossValidate returns an error before any training
// otherwise).
type Grid struct {
	Margins []float64 // contrastive-loss margins; nil means {1}
	Dims    []int     // embedding lengths; nil means {128}
	L2s     []float64 // L2 penalty factors (style.Trainer.L2: 0 the study's, negative none); nil means {0}
	Hidden  [][]int   // hidden-layer widths (style.HeadConfig.Hidden); nil means {nil}, the one-layer head
	LRs     []float64 // RMSProp learning rates; nil means {1e-3}
}

// Setting is one point of a Grid.
type Setting struct {
	Margin float64
	Dim    int
	L2     float64
	Hidden []int
	LR     float64
}

// String describes the setting, e.g. "margin 1, dim 128, l2 0, hidden -, lr 0.001".
func (s Setting) String() string {
	h := "-"
	if len(s.Hidden) > 0 {
		h = strings.Trim(strings.Join(strings.Fields(fmt.Sprint(s.Hidden)), ","), "[]")
	}
	return fmt.Sprintf("margin %g, dim %d, l2 %g, hidden %s, lr %g", s.Margin, s.Dim, s.L2, h, s.LR)
}

// weights is the number of weights of the setting's head for in features:
// the measure of simplicity that breaks ties.
func (s Setting) weights(in int) int64 {
	var n int64
	for _, w := range append(slices.Clip(s.Hidden), s.Dim) {
		n += int64(in) * int64(w)
		in = w
	}
	return n
}

// check returns an error for a value no setting may take: a margin or
// learning rate that is not a positive finite number (zero included: it
// would train with the library's default while the setting says 0), an
// embedding length or hidden width that is not positive, or an L2 factor
// that is not finite.
func (g *Grid) check() error {
	for _, m := range g.Margins {
		if !(m > 0) || math.IsInf(m, 0) {
			return fmt.Errorf("margin %v is not a positive finite number", m)
		}
	}
	for _, d := range g.Dims {
		if d <= 0 {
			return fmt.Errorf("embedding length %d is not positive", d)
		}
	}
	for _, l2 := range g.L2s {
		if math.IsNaN(l2) || math.IsInf(l2, 0) {
			return fmt.Errorf("L2 factor %v is not a finite number", l2)
		}
	}
	for _, h := range g.Hidden {
		for k, w := range h {
			if w <= 0 {
				return fmt.Errorf("hidden layer %d has width %d, want a positive width", k, w)
			}
		}
	}
	for _, lr := range g.LRs {
		if !(lr > 0) || math.IsInf(lr, 0) {
			return fmt.Errorf("learning rate %v is not a positive finite number", lr)
		}
	}
	return nil
}

// Settings returns the Cartesian product of the grid's lists, the last
// list (learning rates) varying fastest.
func (g *Grid) Settings() []Setting {
	or := func(v []float64, d float64) []float64 {
		if len(v) == 0 {
			return []float64{d}
		}
		return v
	}
	dims, hidden := g.Dims, g.Hidden
	if len(dims) == 0 {
		dims = []int{128}
	}
	if len(hidden) == 0 {
		hidden = [][]int{nil}
	}
	var out []Setting
	for _, m := range or(g.Margins, 1) {
		for _, d := range dims {
			for _, l2 := range or(g.L2s, 0) {
				for _, h := range hidden {
					for _, lr := range or(g.LRs, 1e-3) {
						out = append(out, Setting{Margin: m, Dim: d, L2: l2, Hidden: slices.Clone(h), LR: lr})
					}
				}
			}
		}
	}
	return out
}

// CVOptions configures CrossValidate.
type CVOptions struct {
	// Folds is the number of stratified folds; zero means 5. It must be
	// at least 3: see CrossValidate.
	Folds int
	// Seed seeds the folds, the heads' initial weights and the shuffling.
	Seed uint64
	// Epochs, Patience and BatchSize configure every training as in
	// style.Trainer (zero Epochs means 10, zero Patience no early stopping).
	Epochs, Patience, BatchSize int
	// Workers bounds the goroutines of all trainings together: up to
	// Workers (setting, fold) trainings run at once, sharing the workers.
	// Zero means runtime.GOMAXPROCS(0); negative is an error. The results
	// do not depend on it.
	Workers int
	// Dir, if not empty, is a folder (created if needed) where each
	// finished (setting, fold) result is appended, synced, to cv.jsonl; a
	// later run with the same pairs, folds, seed and training options
	// skips them, so an interrupted run resumes where it stopped. The
	// features themselves are not fingerprinted: use a new Dir for
	// features from another extractor.
	Dir string
	// Progress, if not nil, is called after every finished training with
	// Stage "cv", Done and Total trainings (from any goroutine, one call
	// at a time).
	Progress func(style.Progress)
}

// SettingResult is the cross-validated score of one setting.
type SettingResult struct {
	Setting Setting
	AUCs    []float64 // test AUC of each fold
	Mean    float64   // mean of AUCs
	Std     float64   // population standard deviation of AUCs
	// Epochs is, for each fold, the number of epochs up to the one early
	// stopping kept (the lowest validation loss).
	Epochs []int
}

// RefitEpochs returns the number of epochs to train the setting for on
// all the cross-validated pairs, where no validation pairs remain for
// early stopping: the median of Epochs (the mean of the two middle
// values, rounded up, for an even number of folds).
func (r SettingResult) RefitEpochs() int {
	e := slices.Sorted(slices.Values(r.Epochs))
	if len(e) == 0 {
		return 0
	}
	m := len(e) / 2
	if len(e)%2 == 1 {
		return e[m]
	}
	return (e[m-1] + e[m] + 1) / 2
}

// CVResult is the outcome of CrossValidate.
type CVResult struct {
	Results []SettingResult // in the order of Grid.Settings
	Best    int             // index in Results of the chosen setting
}

// cvRecord is one line of the cv.jsonl journal.
type cvRecord struct {
	Key    string  `json:"key"`
	Fold   int     `json:"fold"`
	AUC    float64 `json:"auc"`
	Epochs int     `json:"epochs"`
}

// CrossValidate scores every setting of g by stratified k-fold
// cross-validation over pairs (StratifiedKFold with o.Seed): for fold f,
// a head is trained on the other folds except fold f+1 (mod k), which is
// its validation set for early stopping, and its ROC AUC is measured on
// fold f, which training never sees. A setting's score is its mean AUC
// over the folds; the chosen one has the highest mean, ties going to the
// setting with fewer weights, then to the earlier one. Each result also
// records the epoch early stopping kept in each fold, from which
// SettingResult.RefitEpochs gives the length of a final training on all
// the pairs.
//
// Trainings run in parallel within o.Workers and the result is the same
// for any Workers; with o.Dir set, finished trainings are journalled and
// a rerun after an interruption gives the result an uninterrupted run
// gives. It returns ctx.Err() when cancelled, and an error for fewer than
// 3 folds, negative Workers, invalid pairs or grid values, or a journal
// it cannot read or write.
func CrossValidate(ctx context.Context, src style.FeatureSource, pairs []style.LabeledPair, g *Grid, o *CVOptions) (*CVResult, error) {
	var opt CVOptions
	if o != nil {
		opt = *o
	}
	if opt.Folds == 0 {
		opt.Folds = 5
	}
	if opt.Folds < 3 {
		return nil, fmt.Errorf("study: CrossValidate: %d folds, want at least 3 (one to test, one to validate, the rest to train)", opt.Folds)
	}
	if opt.Workers < 0 {
		return nil, fmt.Errorf("study: CrossValidate: Workers is %d, want 0 (GOMAXPROCS) or more", opt.Workers)
	}
	workers := opt.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if g == nil {
		g = &Grid{}
	}
	if err := g.check(); err != nil {
		return nil, fmt.Errorf("study: CrossValidate: grid: %w", err)
	}
	settings := g.Settings()
	folds, err := StratifiedKFold(pairs, opt.Folds, opt.Seed)
	if err != nil {
		return nil, fmt.Errorf("study: CrossValidate: %w", err)
	}
	k := opt.Folds
	// A journal record applies only to the same setting, folds, pairs
	// (hashed) and training options.
	ph := sha256.New()
	for _, p := range pairs {
		fmt.Fprintf(ph, "%d,%d,%d;", p.A, p.B, p.Label)
	}
	pairsSum := hex.EncodeToString(ph.Sum(nil))[:16]
	keys := make([]string, len(settings))
	for i, s := range settings {
		keys[i] = fmt.Sprintf("%s; folds %d, seed %d, pairs %d (%s), dim %d, epochs %d, patience %d, batch %d",
			s, k, opt.Seed, len(pairs), pairsSum, src.Dim(), opt.Epochs, opt.Patience, opt.BatchSize)
	}
	aucs := make([][]float64, len(settings))
	epochs := make([][]int, len(settings))
	for i := range aucs {
		aucs[i] = make([]float64, k)
		epochs[i] = make([]int, k)
		for f := range aucs[i] {
			aucs[i][f] = math.NaN()
		}
	}
	var journal *os.File
	if opt.Dir != "" {
		if journal, err = openJournal(opt.Dir, keys, aucs, epochs); err != nil {
			return nil, err
		}
		defer journal.Close()
	}
	type job struct{ s, f int }
	var jobs []job
	for s := range settings {
		for f := range k {
			if math.IsNaN(aucs[s][f]) {
				jobs = append(jobs, job{s, f})
			}
		}
	}
	// Each fold's split and feature scale, shared by every setting.
	parts := make([]cvSplit, k)
	if len(jobs) > 0 {
		for f := range parts {
			if parts[f], err = splitFold(ctx, src, pairs, folds, f); err != nil {
				return nil, err
			}
		}
	}
	total := len(settings) * k
	done := total - len(jobs)
	par := max(1, min(workers, len(jobs)))
	each := max(1, workers/par)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan job)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				auc, ep, err := cvFold(ctx, src, &parts[j.f], j.f, settings[j.s], &opt, each)
				mu.Lock()
				if err == nil && journal != nil {
					err = appendJournal(journal, cvRecord{Key: keys[j.s], Fold: j.f, AUC: auc, Epochs: ep})
				}
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					cancel()
				} else {
					aucs[j.s][j.f], epochs[j.s][j.f] = auc, ep
					done++
					if opt.Progress != nil {
						opt.Progress(style.Progress{Stage: "cv", Done: int64(done), Total: int64(total)})
					}
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &CVResult{}
	in := src.Dim()
	for i, s := range settings {
		r := SettingResult{Setting: s, AUCs: aucs[i], Epochs: epochs[i]}
		for _, a := range r.AUCs {
			r.Mean += a
		}
		r.Mean /= float64(k)
		for _, a := range r.AUCs {
			r.Std += (a - r.Mean) * (a - r.Mean)
		}
		r.Std = math.Sqrt(r.Std / float64(k))
		res.Results = append(res.Results, r)
		b := res.Results[res.Best]
		if r.Mean > b.Mean || (r.Mean == b.Mean && s.weights(in) < b.Setting.weights(in)) {
			res.Best = i
		}
	}
	return res, nil
}

// cvSplit is fold f's part of a cross-validation: the pairs to train on
// (the folds other than f and f+1), to early-stop on (fold f+1) and to
// test on (fold f), and the feature scale of the training pairs.
type cvSplit struct {
	train, val, test []style.LabeledPair
	scale            float64
}

// splitFold returns fold f's split of pairs.
func splitFold(ctx context.Context, src style.FeatureSource, pairs []style.LabeledPair, folds [][]int, f int) (cvSplit, error) {
	k := len(folds)
	var sp cvSplit
	for i, fold := range folds {
		for _, idx := range fold {
			switch i {
			case f:
				sp.test = append(sp.test, pairs[idx])
			case (f + 1) % k:
				sp.val = append(sp.val, pairs[idx])
			default:
				sp.train = append(sp.train, pairs[idx])
			}
		}
	}
	var err error
	if sp.scale, err = style.FeatureScale(ctx, src, sp.train); err != nil {
		return sp, fmt.Errorf("study: CrossValidate: %w", err)
	}
	return sp, nil
}

// cvFold trains a head of setting s on fold f's training pairs, with its
// validation pairs for early stopping, and returns its AUC on its test
// pairs and the number of epochs up to the one early stopping kept.
func cvFold(ctx context.Context, src style.FeatureSource, sp *cvSplit, f int, s Setting, o *CVOptions, workers int) (auc float64, epochs int, err error) {
	train, val, test := sp.train, sp.val, sp.test
	h, err := style.NewSiameseHead(&style.HeadConfig{
		In: src.Dim(), Out: s.Dim, Hidden: s.Hidden, Margin: s.Margin, Seed: o.Seed, Scale: sp.scale,
		BLAS: style.BLAS{Workers: workers},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("study: CrossValidate: setting %s: %w", s, err)
	}
	tr := &style.Trainer{
		Epochs: o.Epochs, Patience: o.Patience, BatchSize: o.BatchSize, Seed: o.Seed, L2: s.L2, Workers: workers,
		Optimizer: &style.RMSProp{LearningRate: s.LR, Workers: workers},
	}
	hist, err := tr.Fit(ctx, h, src, train, val)
	if err != nil {
		return 0, 0, err
	}
	epochs = len(hist.Loss)
	if o.Patience > 0 && hist.BestEpoch >= 0 {
		epochs = hist.BestEpoch + 1 // the weights early stopping restored
	}
	dist, err := h.PairDistances(ctx, src, test)
	if err != nil {
		return 0, 0, err
	}
	roc, err := style.ROCFromDistances(dist, pairLabels(test))
	if err != nil {
		return 0, 0, fmt.Errorf("study: CrossValidate: fold %d: %w", f, err)
	}
	return roc.AUC(), epochs, nil
}

// openJournal reads dir/cv.jsonl into aucs and epochs (records whose key
// is not one of keys are ignored, as are records without epochs, written
// by an earlier version, whose trainings are redone; a truncated last
// line, from an interrupted write, is dropped) and opens it for appending.
func openJournal(dir string, keys []string, aucs [][]float64, epochs [][]int) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("study: CrossValidate: %w", err)
	}
	path := filepath.Join(dir, "cv.jsonl")
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("study: CrossValidate: %w", err)
	}
	if n := strings.LastIndexByte(string(data), '\n'); n+1 < len(data) {
		data = data[:n+1] // drop a partial last line
		if err := os.Truncate(path, int64(len(data))); err != nil {
			return nil, fmt.Errorf("study: CrossValidate: %w", err)
		}
	}
	index := make(map[string]int, len(keys))
	for i, key := range keys {
		index[key] = i
	}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var r cvRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("study: CrossValidate: %s line %d: %v", path, line, err)
		}
		if i, ok := index[r.Key]; ok && r.Epochs != 0 {
			if r.Fold < 0 || r.Fold >= len(aucs[i]) || !(r.AUC >= 0 && r.AUC <= 1) || r.Epochs < 0 {
				return nil, fmt.Errorf("study: CrossValidate: %s line %d: fold %d, AUC %v, epochs %d out of range", path, line, r.Fold, r.AUC, r.Epochs)
			}
			aucs[i][r.Fold], epochs[i][r.Fold] = r.AUC, r.Epochs
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("study: CrossValidate: %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("study: CrossValidate: %w", err)
	}
	return f, nil
}

// appendJournal appends one record as a line and syncs the file.
func appendJournal(f *os.File, r cvRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("study: CrossValidate: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("study: CrossValidate: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("study: CrossValidate: %w", err)
	}
	return nil
}
