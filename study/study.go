package study

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stylespace/style"
	"github.com/stylespace/style/internal/atomicfile"
	"github.com/stylespace/style/picture"
)

// Files Run writes into the output folder.
const (
	HeadFile           = "head.safetensors"    // the trained head (style.SiameseHead.Save)
	ReportFile         = "report.md"           // the Markdown report tying the results together
	LearningCurvesFile = "learning_curves.png" // training and validation loss per epoch
	ROCFile            = "roc.png"             // test ROC curve, AUC and chosen cutoff
	DensitiesFile      = "distances.png"       // test pair distances before and after training
	FailedImagesFile   = "failed_images.tsv"   // images left out and why (only if some failed)
)

// KerasFeatureScale is the feature scale of the original study: the
// global maximum of the VGG16 pool5 features of its training images with
// the original Keras (caffe-preprocessed) VGG16 weights. Features from
// other weights or preprocessing have another maximum; compute it with
// style.FeatureScale, as Run does.
const KerasFeatureScale = 844.34

// Config configures a study: from labelled pairs of image names to a
// trained, evaluated and saved style.SiameseHead with its pictures and a
// report. Run does, in order:
//
//  1. take the first Limit pairs (all if Limit is 0);
//  2. compute the features of every distinct image once, into the feature
//     store in StoreDir (style.ExtractFeatures), after reading every image
//     once through Prefetch if asked; images that fail are reported
//     and their pairs dropped;
//  3. split the remaining pairs 60/20/20, stratified by label
//     (style.StratifiedSplit with Seed);
//  4. compute the MinMax feature scale on the training pairs only
//     (style.FeatureScale);
//  5. measure the untrained head on the test pairs (the "before" picture);
//  6. train with Trainer (early stopping on the validation pairs);
//  7. evaluate the trained head on the test pairs: ROC, AUC, and the
//     cutoff table at 5%, 10% and 20% false positives;
//  8. choose the head's cutoff as the distance maximising Youden's J =
//     TPR - FPR on the validation pairs (so that the test pairs, which
//     measure the result, play no part in choosing it), and report the
//     rates that cutoff reaches on the test pairs;
//  9. save the head (with its cutoff, scale and backbone) and write the
//     charts and report (see the *File constants) into OutDir.
//
// A Config is a plain value: Run does not modify it, and the zero value of
// each field documented as optional selects its default.
type Config struct {
	// Pairs are the labelled pairs of image names, as read by
	// style.ReadPairs. Required.
	Pairs []style.Pair
	// Limit, if positive, keeps only the first Limit pairs, for quick
	// runs. The study's pair list is in random order, so its first pairs
	// are a fair sample.
	Limit int

	// Images opens the images the pairs name. Required.
	Images style.ImageSource
	// Prefetch reads every image not yet in the feature store from Images
	// once before the extraction starts (see Prefetch), with
	// PrefetchConcurrent requests at once: use it with a caching
	// style.URLSource, whose downloads need more concurrency than the
	// feature extraction. Images that fail here are reported without being
	// tried again.
	Prefetch bool
	// PrefetchConcurrent bounds the images read at once by the prefetch;
	// 0 means 16.
	PrefetchConcurrent int

	// Extractor computes the features of an image, typically a
	// *style.Network. Required.
	Extractor style.FeatureExtractor
	// StoreDir is the folder of the feature store (see
	// style.OpenFeatureStore), created if needed. Required. Reusing it
	// across runs, or across pair lists with the same Extractor, skips
	// images already done; a store made with another backbone is refused.
	StoreDir string
	// OutDir is the folder the head, the charts and the report are written
	// to, created if needed. Required.
	OutDir string

	// Seed seeds the stratified split and the head's initial weights.
	Seed uint64
	// HeadOut is the embedding length; 0 means 128 (see style.HeadConfig).
	HeadOut int
	// HeadHidden lists the widths of hidden Dense+ReLU layers before the
	// embedding layer (style.HeadConfig.Hidden); nil means the study's
	// one-layer head.
	HeadHidden []int
	// Grid, if not nil, selects the head's margin, embedding length, L2
	// penalty, hidden layers and learning rate by CrossValidate over the
	// training and validation pairs (the test pairs stay unseen), with
	// CVFolds folds (0 means 5), the Trainer's Epochs, Patience and
	// BatchSize, and a journal in OutDir/cv so that an interrupted run
	// resumes. The chosen setting replaces HeadOut, Margin, HeadHidden and
	// the Trainer's L2 and Optimizer (an RMSProp with the chosen rate).
	// The head is then refit on the training and validation pairs together
	// (the feature scale taken from them), for the setting's
	// RefitEpochs without early stopping, and tested once; its cutoff is
	// chosen by Youden's J on those pairs, as no held-out pairs remain but
	// the test pairs.
	Grid    *Grid
	CVFolds int
	// Margin is the contrastive-loss margin; 0 means 1.
	Margin float64
	// Trainer trains the head; nil means
	// &style.Trainer{Epochs: 50, Patience: 5, Seed: Seed, Workers: Workers}.
	// Its Progress, if nil, is set to Config.Progress for the run (the
	// caller's Trainer is not modified).
	Trainer *style.Trainer

	// Workers bounds the images run through Extractor at once and the
	// goroutines of the default Trainer; 0 means runtime.GOMAXPROCS(0).
	Workers int
	// Progress, if not nil, receives the progress of each long stage:
	// "download" (prefetch, in images), "features" (in distinct images)
	// and "train" (in epochs, with the losses). It is called on the
	// goroutine running the stage, one call at a time.
	Progress func(style.Progress)
}

// Result holds what a study produced.
type Result struct {
	// Pairs is the number of pairs considered (after Limit).
	Pairs int
	// Dropped are the pairs left out because an image failed.
	Dropped []style.Pair
	// Extraction summarises the feature extraction of this run. Its
	// Failed list also holds the images that failed during the prefetch.
	Extraction *style.ExtractReport
	// Backbone is the extractor's identity, recorded in the head.
	Backbone style.Backbone
	// Scale is the MinMax feature scale: the largest training feature
	// (with a Grid, of the training and validation pairs).
	Scale float64
	// Train, Val and Test are the split of the usable pairs, as indices
	// into the feature store.
	Train, Val, Test []style.LabeledPair
	// History is the learning curve of the training.
	History *style.History
	// TrainTime is the duration of the training.
	TrainTime time.Duration
	// UntrainedDistances and Distances are the test-pair distances given
	// by the head before and after training, in the order of Test.
	UntrainedDistances, Distances []float64
	// UntrainedROC and ROC are the ROC curves of those distances.
	UntrainedROC, ROC *style.ROC
	// Table is the test ROC at 5%, 10% and 20% false positives (ROC.AtFPR
	// at each rate).
	Table []style.ROCPoint
	// Cutoff is the head's cutoff: Threshold is the distance chosen by
	// Youden's J on the validation pairs (with a Grid, on the training and
	// validation pairs the head was refit on), FPR and TPR the rates it
	// reaches on the test pairs. CutoffChosen is false if no cutoff beat
	// chance on those pairs; the head then keeps the default cutoff
	// Margin/2.
	Cutoff       style.ROCPoint
	CutoffChosen bool
	// Head is the trained head, as saved.
	Head *style.SiameseHead
	// CV is the cross-validation of Config.Grid, nil without a grid.
	CV *CVResult
	// Files are the paths of the files written, keyed by the *File
	// names.
	Files map[string]string
	// Elapsed is the duration of the whole run.
	Elapsed time.Duration
}

// tableFPRs are the false positive rates of Result.Table.
var tableFPRs = [...]float64{0.05, 0.10, 0.20}

// Run runs the study cfg describes; see Config for the steps. A nil cfg is
// the zero Config, which lacks the required fields. Run returns an error
// for a missing required field, an empty pair list, a feature store that
// cannot be opened or belongs to another backbone, too few usable pairs to
// split (each of the training, validation and test sets needs both
// labels), and errors writing the outputs. When ctx is cancelled it
// returns an error wrapping ctx.Err(), after making the features stored so
// far durable.
//
// Run is safe to interrupt: cancelling ctx (or killing the process) keeps
// every feature already stored, so running the same study again resumes
// the extraction where it stopped without recomputing anything, and every
// output file is written atomically (a reader sees the previous version or
// the complete new one).
func Run(ctx context.Context, cfg *Config) (*Result, error) {
	start := time.Now()
	var c Config
	if cfg != nil {
		c = *cfg
	}
	switch {
	case c.Images == nil:
		return nil, errors.New("study: no Images source")
	case c.Extractor == nil:
		return nil, errors.New("study: no Extractor")
	case c.StoreDir == "":
		return nil, errors.New("study: no StoreDir")
	case c.OutDir == "":
		return nil, errors.New("study: no OutDir")
	case c.Limit < 0 || c.HeadOut < 0 || c.Workers < 0 || c.PrefetchConcurrent < 0:
		return nil, fmt.Errorf("study: negative Limit, HeadOut, Workers or PrefetchConcurrent")
	}
	if c.Grid != nil {
		// Checked here too, so that a bad value stops the run before the
		// extraction rather than after it.
		if err := c.Grid.check(); err != nil {
			return nil, fmt.Errorf("study: Grid: %w", err)
		}
	}
	pairs := c.Pairs
	if c.Limit > 0 && c.Limit < len(pairs) {
		pairs = pairs[:c.Limit]
	}
	if len(pairs) == 0 {
		return nil, errors.New("study: no pairs")
	}
	if err := os.MkdirAll(c.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	res := &Result{Pairs: len(pairs), Backbone: c.Extractor.Backbone(), Files: map[string]string{}}

	store, err := style.OpenFeatureStore(c.StoreDir, &style.StoreOptions{Dim: c.Extractor.FeatureLen(), Backbone: res.Backbone})
	if err != nil {
		return nil, fmt.Errorf("study: feature store: %w", err)
	}
	defer store.Close()

	if err := c.extract(ctx, store, pairs, res); err != nil {
		return nil, err
	}
	labeled, dropped := store.LabeledPairs(pairs)
	res.Dropped = dropped
	res.Train, res.Val, res.Test = style.StratifiedSplit(labeled, c.Seed)
	for _, set := range []struct {
		name  string
		pairs []style.LabeledPair
	}{{"training", res.Train}, {"validation", res.Val}, {"test", res.Test}} {
		pos := countCompatible(set.pairs)
		if pos == 0 || pos == len(set.pairs) {
			return nil, fmt.Errorf("study: the %s set has %d pairs, %d of them compatible: it needs both labels (%d usable pairs of %d; use more pairs)",
				set.name, len(set.pairs), pos, len(labeled), len(pairs))
		}
	}

	var tr style.Trainer
	if c.Trainer != nil {
		tr = *c.Trainer
	} else {
		tr = style.Trainer{Epochs: 50, Patience: 5, Seed: c.Seed, Workers: c.Workers}
	}
	if tr.Progress == nil {
		tr.Progress = c.Progress
	}
	hidden, out, margin := c.HeadHidden, c.HeadOut, c.Margin
	// The pairs the head is fitted to, those early stopping watches and
	// those the cutoff is chosen on.
	fitTrain, fitVal, cutoffPairs := res.Train, res.Val, res.Val
	if c.Grid != nil {
		trainVal := slices.Concat(res.Train, res.Val)
		cv, err := CrossValidate(ctx, store, trainVal, c.Grid, &CVOptions{
			Folds: c.CVFolds, Seed: c.Seed, Epochs: tr.Epochs, Patience: tr.Patience, BatchSize: tr.BatchSize,
			Workers: c.Workers, Dir: filepath.Join(c.OutDir, "cv"), Progress: c.Progress,
		})
		if err != nil {
			return nil, err
		}
		chosen := cv.Results[cv.Best]
		best := chosen.Setting
		hidden, out, margin = best.Hidden, best.Dim, best.Margin
		tr.L2 = best.L2
		tr.Optimizer = &style.RMSProp{LearningRate: best.LR, Workers: tr.Workers}
		tr.Epochs, tr.Patience = chosen.RefitEpochs(), 0
		res.CV = cv
		fitTrain, fitVal, cutoffPairs = trainVal, nil, trainVal
	}
	// The feature scale of the pairs the head is fitted to.
	if res.Scale, err = style.FeatureScale(ctx, store, fitTrain); err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	head, err := style.NewSiameseHead(&style.HeadConfig{
		In: store.Dim(), Hidden: hidden, Out: out, Margin: margin, Seed: c.Seed,
		Scale: res.Scale, Backbone: res.Backbone,
	})
	if err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	if res.UntrainedDistances, err = head.PairDistances(ctx, store, res.Test); err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	if res.UntrainedROC, err = style.ROCFromDistances(res.UntrainedDistances, pairLabels(res.Test)); err != nil {
		return nil, fmt.Errorf("study: untrained head: %w", err)
	}

	trainStart := time.Now()
	if res.History, err = tr.Fit(ctx, head, store, fitTrain, fitVal); err != nil {
		return nil, fmt.Errorf("study: training: %w", err)
	}
	res.TrainTime = time.Since(trainStart)

	if res.Distances, err = head.PairDistances(ctx, store, res.Test); err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	testLabels := pairLabels(res.Test)
	if res.ROC, err = style.ROCFromDistances(res.Distances, testLabels); err != nil {
		return nil, fmt.Errorf("study: trained head: %w", err)
	}
	for _, fpr := range tableFPRs {
		res.Table = append(res.Table, res.ROC.AtFPR(fpr))
	}
	valDist, err := head.PairDistances(ctx, store, cutoffPairs)
	if err != nil {
		return nil, fmt.Errorf("study: %w", err)
	}
	valROC, err := style.ROCFromDistances(valDist, pairLabels(cutoffPairs))
	if err != nil {
		return nil, fmt.Errorf("study: validation: %w", err)
	}
	if y := valROC.Youden(); y.TPR > y.FPR && !math.IsInf(y.Threshold, 0) {
		head.Cutoff = y.Threshold
		res.CutoffChosen = true
	}
	res.Cutoff = ratesAtCutoff(res.Distances, testLabels, head.Cutoff)
	res.Head = head

	if err := c.writeOutputs(res); err != nil {
		return nil, err
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// extract fills the store with the features of the images of pairs.
func (c *Config) extract(ctx context.Context, store *style.FeatureStore, pairs []style.Pair, res *Result) error {
	names := style.UniqueNames(pairs)
	var prefailed []style.ImageFailure
	if c.Prefetch {
		var todo []string
		for _, n := range names {
			if _, ok := store.Index(n); !ok {
				todo = append(todo, n)
			}
		}
		var err error
		prefailed, err = Prefetch(ctx, c.Images, todo, &PrefetchOptions{Concurrent: c.PrefetchConcurrent, Progress: c.Progress})
		if err != nil {
			return fmt.Errorf("study: prefetch: %w", err)
		}
		if len(prefailed) > 0 {
			bad := make(map[string]bool, len(prefailed))
			for _, f := range prefailed {
				bad[f.Name] = true
			}
			names = slices.DeleteFunc(names, func(n string) bool { return bad[n] })
		}
	}
	rep, err := style.ExtractFeatures(ctx, store, c.Images, c.Extractor, names,
		&style.ExtractOptions{Workers: c.Workers, Progress: c.Progress})
	if err != nil {
		return fmt.Errorf("study: feature extraction: %w", err)
	}
	if len(prefailed) > 0 {
		rep.Total += len(prefailed)
		rep.Failed = append(prefailed, rep.Failed...)
	}
	res.Extraction = rep
	return nil
}

// ratesAtCutoff returns the rates at which the rule "compatible when the
// distance is <= cutoff" calls pairs compatible.
func ratesAtCutoff(dist []float64, labels []int, cutoff float64) style.ROCPoint {
	var tp, fp, pos, neg int
	for i, d := range dist {
		if labels[i] == 1 {
			pos++
			if d <= cutoff {
				tp++
			}
		} else {
			neg++
			if d <= cutoff {
				fp++
			}
		}
	}
	return style.ROCPoint{FPR: float64(fp) / float64(max(neg, 1)), TPR: float64(tp) / float64(max(pos, 1)), Threshold: cutoff}
}

func pairLabels(pairs []style.LabeledPair) []int {
	l := make([]int, len(pairs))
	for i, p := range pairs {
		l[i] = p.Label
	}
	return l
}

func countCompatible(pairs []style.LabeledPair) int {
	n := 0
	for _, p := range pairs {
		n += p.Label
	}
	return n
}

// writeOutputs saves the head and writes the charts and the report.
func (c *Config) writeOutputs(res *Result) error {
	path := func(name string) string {
		p := filepath.Join(c.OutDir, name)
		res.Files[name] = p
		return p
	}
	wrap := func(err error) error { return fmt.Errorf("study: %w", err) }
	if err := res.Head.Save(path(HeadFile)); err != nil {
		return wrap(err)
	}
	if err := picture.LearningCurves(path(LearningCurvesFile), res.History.Loss, res.History.ValLoss, nil); err != nil {
		return wrap(err)
	}
	if err := picture.ROC(path(ROCFile), res.ROC.FPR, res.ROC.TPR, res.ROC.AUC(), res.Cutoff.FPR, res.Cutoff.TPR,
		&picture.Options{Title: fmt.Sprintf("Test ROC: AUC %.3f (untrained head %.3f)", res.ROC.AUC(), res.UntrainedROC.AUC())}); err != nil {
		return wrap(err)
	}
	split := func(dist []float64) (comp, incomp []float64) {
		for i, d := range dist {
			if res.Test[i].Label == 1 {
				comp = append(comp, d)
			} else {
				incomp = append(incomp, d)
			}
		}
		return comp, incomp
	}
	bc, bi := split(res.UntrainedDistances)
	ac, ai := split(res.Distances)
	panels := []picture.DensityPanel{
		{Title: fmt.Sprintf("Before training (AUC %.3f)", res.UntrainedROC.AUC()), Compatible: bc, Incompatible: bi},
		{Title: fmt.Sprintf("After training (AUC %.3f)", res.ROC.AUC()), Compatible: ac, Incompatible: ai, Cutoff: res.Head.Cutoff},
	}
	if err := picture.Densities(path(DensitiesFile), panels, &picture.Options{Title: "Test pair distances"}); err != nil {
		return wrap(err)
	}
	if len(res.Extraction.Failed) == 0 {
		// No failures now: drop the list of an earlier run.
		if err := os.Remove(filepath.Join(c.OutDir, FailedImagesFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return wrap(err)
		}
	} else {
		err := atomicfile.Write(path(FailedImagesFile), func(w io.Writer) error {
			if _, err := io.WriteString(w, "image\terror\n"); err != nil {
				return err
			}
			for _, f := range res.Extraction.Failed {
				msg := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(f.Err.Error())
				if _, err := fmt.Fprintf(w, "%s\t%s\n", f.Name, msg); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return wrap(err)
		}
	}
	err := atomicfile.Write(path(ReportFile), func(w io.Writer) error {
		_, err := io.WriteString(w, res.report())
		return err
	})
	if err != nil {
		return wrap(err)
	}
	return nil
}

// report returns the Markdown report of a finished study.
func (res *Result) report() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	ex := res.Extraction
	usable := len(res.Train) + len(res.Val) + len(res.Test)
	sha := res.Backbone.SHA256
	if sha == "" {
		sha = "none (generated in memory)"
	}

	p("# Style evaluator: training report\n\n")
	p("A siamese head (%s, ReLU) trained with the contrastive loss (margin %g) to map product photos into a style space where a small distance means the items go well together.\n\n",
		headShape(res.Head), res.Head.Margin)
	p("## Data\n\n")
	p("- Pairs: %d considered, %d usable (%d compatible, %.1f%%), %d dropped because an image failed.\n",
		res.Pairs, usable, countCompatible(res.Train)+countCompatible(res.Val)+countCompatible(res.Test),
		100*float64(countCompatible(res.Train)+countCompatible(res.Val)+countCompatible(res.Test))/float64(max(usable, 1)),
		len(res.Dropped))
	p("- Images: %d distinct; %d features computed by this run, %d already in the feature store, %d failed",
		ex.Total, ex.Done, ex.Skipped, len(ex.Failed))
	if len(ex.Failed) > 0 {
		p(" (all listed in `%s`)", FailedImagesFile)
	}
	p(".\n")
	if ex.Done > 0 {
		p("- Feature extraction: %s for %d images (%.0f ms per image).\n", ex.Elapsed.Round(time.Millisecond), ex.Done,
			float64(ex.Elapsed.Milliseconds())/float64(ex.Done))
	}
	p("- Backbone: %s, preprocessing %q, weights SHA-256 %s, seed %d, width divisor %d.\n",
		res.Backbone.Arch, res.Backbone.Preprocess, sha, res.Backbone.Seed, res.Backbone.Divisor)
	p("- Feature scale (largest training feature, MinMax): %.6g.\n", res.Scale)
	p("- Split (stratified 60/20/20): training %d pairs (%d compatible), validation %d (%d), test %d (%d).\n\n",
		len(res.Train), countCompatible(res.Train), len(res.Val), countCompatible(res.Val), len(res.Test), countCompatible(res.Test))

	h := res.History
	if res.CV != nil {
		k := len(res.CV.Results[0].AUCs)
		p("## Model selection\n\n")
		p("Stratified %d-fold cross-validation over the %d training and validation pairs (each fold tested once, the next fold used for early stopping, the test pairs unseen):\n\n", k, len(res.Train)+len(res.Val))
		p("| setting | mean AUC | ± std |\n|---|---|---|\n")
		for i, r := range res.CV.Results {
			mark := ""
			if i == res.CV.Best {
				mark = " **(chosen)**"
			}
			p("| %s%s | %.4f | %.4f |\n", r.Setting, mark, r.Mean, r.Std)
		}
		chosen := res.CV.Results[res.CV.Best]
		p("\nChosen: %s. It was refit on all %d training and validation pairs for %d epochs, the median of the epochs early stopping kept in the folds (%s); its test AUC is below.\n\n",
			chosen.Setting, len(res.Train)+len(res.Val), chosen.RefitEpochs(), strings.Trim(fmt.Sprint(chosen.Epochs), "[]"))
	}
	p("## Training\n\n")
	p("%d epochs", len(h.Loss))
	if h.Stopped {
		p(", stopped early")
	}
	if h.BestEpoch >= 0 {
		p("; the weights of epoch %d (lowest validation loss, %.5f) were kept", h.BestEpoch+1, h.ValLoss[h.BestEpoch])
	}
	p("; training loss of the last epoch %.5f; %s.\n\n", h.Loss[len(h.Loss)-1], res.TrainTime.Round(time.Millisecond))
	p("![Learning curves](%s)\n\n", LearningCurvesFile)

	p("## Results on the %d test pairs\n\n", len(res.Test))
	p("| head | AUC |\n|---|---|\n| untrained (random weights) | %.4f |\n| trained | %.4f |\n\n", res.UntrainedROC.AUC(), res.ROC.AUC())
	on := "the validation pairs"
	if res.CV != nil {
		on = "the training and validation pairs the head was refit on (no other pairs remain but the test pairs)"
	}
	if res.CutoffChosen {
		p("Cutoff: a pair goes well together when its distance is at most **%.4f**, the distance maximising TPR - FPR (Youden's J) on %s. On the test pairs it finds %.1f%% of the compatible pairs (TPR) and calls %.1f%% of the incompatible ones compatible (FPR).\n\n",
			res.Cutoff.Threshold, on, 100*res.Cutoff.TPR, 100*res.Cutoff.FPR)
	} else {
		p("Cutoff: no distance separated %s better than chance, so the head keeps the default cutoff %.4f (half the margin). On the test pairs it reaches TPR %.1f%% at FPR %.1f%%.\n\n",
			on, res.Cutoff.Threshold, 100*res.Cutoff.TPR, 100*res.Cutoff.FPR)
	}
	p("Cutoffs for a tolerated false positive rate (test ROC):\n\n| FPR at most | FPR | TPR | cutoff distance |\n|---|---|---|---|\n")
	for i, pt := range res.Table {
		target := []float64{0.05, 0.10, 0.20}[min(i, 2)]
		p("| %.0f%% | %.1f%% | %.1f%% | %s |\n", 100*target, 100*pt.FPR, 100*pt.TPR, formatCutoff(pt.Threshold))
	}
	p("\n![ROC curve](%s)\n\n", ROCFile)
	p("Distances of compatible and incompatible test pairs before and after training (the vertical line is the cutoff):\n\n![Distance densities](%s)\n\n", DensitiesFile)

	p("## Files\n\n- `%s`: the trained head (scale, margin, cutoff and backbone recorded in its metadata).\n", HeadFile)
	p("- `%s`, `%s`, `%s`: the charts above.\n", LearningCurvesFile, ROCFile, DensitiesFile)
	if len(ex.Failed) > 0 {
		p("\n## Failed images\n\n%d images could not be used", len(ex.Failed))
		const show = 10
		if len(ex.Failed) > show {
			p(" (the first %d below, all in `%s`)", show, FailedImagesFile)
		}
		p(":\n\n")
		for _, f := range ex.Failed[:min(len(ex.Failed), show)] {
			p("- `%s`: %s\n", f.Name, strings.ReplaceAll(f.Err.Error(), "\n", " "))
		}
	}
	return b.String()
}

// formatCutoff prints a cutoff distance; -Inf (nothing called compatible)
// is printed as "none".
func formatCutoff(t float64) string {
	if math.IsInf(t, -1) {
		return "none"
	}
	return fmt.Sprintf("%.4f", t)
}

// headShape describes the layers of a head: "25088 features -> 128", or
// with hidden layers "25088 features -> 512 -> 128".
func headShape(h *style.SiameseHead) string {
	var b strings.Builder
	in := h.Dense.In
	if len(h.Hidden) > 0 {
		in = h.Hidden[0].In
	}
	fmt.Fprintf(&b, "%d features", in)
	for _, l := range h.Hidden {
		fmt.Fprintf(&b, " -> %d", l.Out)
	}
	fmt.Fprintf(&b, " -> %d", h.Dense.Out)
	return b.String()
}
