// Command train reproduces the study: it trains a style evaluator (a siamese
// head over VGG16 features) on labelled pairs of product photos and writes
// the trained head, its charts and a Markdown report.
//
// With -download it runs the study as published: the pair list
// amazon_pairs.csv in the current folder (35,000 pairs), the images from
// https://m.media-amazon.com/images/I/, and torchvision's ImageNet VGG16
// weights downloaded once into the user cache folder. Without -download or
// -weights it uses a generated network (and says so): the pipeline runs
// offline, but its features are not ImageNet features. Features are kept
// in a store under the output folder, so an interrupted run (Ctrl-C or
// SIGTERM) resumes where it stopped when started again.
//
// Usage:
//
//	go run ./examples/train [flags]
//
// Quick run on the first 2,000 pairs:
//
//	go run ./examples/train -download -limit 2000 -out quick
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/study"
)

// StudyImages is where the study's images are served.
const StudyImages = "https://m.media-amazon.com/images/I/"

func main() {
	cli.Main("train", run)
}

// wrapExtractor, if not nil, wraps the feature extractor (tests count and
// interrupt the extraction through it).
var wrapExtractor func(style.FeatureExtractor) style.FeatureExtractor

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var mf cli.ModelFlags
	mf.Register(fs, cli.NoHead)
	var (
		pairsPath  = fs.String("pairs", "amazon_pairs.csv", "pair list `file or URL`: image1;image2;label rows (label 1 = go well together)")
		images     = fs.String("images", StudyImages, "image `folder or URL prefix`")
		imageCache = fs.String("image-cache", "", "`folder` keeping downloaded images (default OUT/images; only for a URL prefix)")
		out        = fs.String("out", "style-study", "output `folder`: head, charts, report")
		store      = fs.String("store", "", "feature store `folder` (default OUT/features)")
		limit      = fs.Int("limit", 0, "use only the first `N` pairs (0: all)")
		epochs     = fs.Int("epochs", 50, "maximum training epochs")
		patience   = fs.Int("patience", 5, "stop after this many epochs without a better validation loss (0: never)")
		seed       = fs.Uint64("seed", 1, "seed of the split, the initial weights and the shuffling")
		cvFolds    = fs.Int("cv-folds", 5, "folds of the cross-validation when a -grid-* flag is given (at least 3)")
		gridMargin = fs.String("grid-margin", "", "comma-separated margins to cross-validate")
		gridDim    = fs.String("grid-dim", "", "comma-separated embedding lengths to cross-validate")
		gridL2     = fs.String("grid-l2", "", "comma-separated L2 factors to cross-validate (0: the study's)")
		gridHidden = fs.String("grid-hidden", "", `semicolon-separated hidden-layer width lists to cross-validate, e.g. ";512;512,256" ("" is the one-layer head)`)
		gridLR     = fs.String("grid-lr", "", "comma-separated learning rates to cross-validate")
		hidden     = fs.String("hidden", "", "comma-separated `widths` of hidden Dense+ReLU layers before the embedding layer (empty: the study's one-layer head)")
		downloads  = fs.Int("downloads", 16, "image downloads at once (URL prefix only)")
		timeout    = fs.Duration("timeout", 30*time.Second, "timeout of each download")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: train [flags]\n\nTrains a style evaluator on labelled pairs of product photos and writes the head, charts and report.\n\n")
		fs.PrintDefaults()
	}
	pos, err := cli.Parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.Usagef("unexpected arguments %q (all settings are flags; see -h)", pos)
	}
	if err := mf.Check(); err != nil {
		return err
	}
	if *limit < 0 || *epochs <= 0 || *patience < 0 || *downloads <= 0 {
		return cli.Usagef("-limit and -patience must not be negative, -epochs and -downloads must be positive")
	}
	if *timeout <= 0 {
		return cli.Usagef("-timeout %v: must be positive", *timeout)
	}
	widths, err := parseWidths(*hidden)
	if err != nil {
		return cli.Usagef("-hidden %q: %v", *hidden, err)
	}
	grid, err := parseGrid(*gridMargin, *gridDim, *gridL2, *gridHidden, *gridLR)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	if grid != nil && *cvFolds < 3 {
		return cli.Usagef("-cv-folds %d: want at least 3", *cvFolds)
	}
	if *store == "" {
		*store = filepath.Join(*out, "features")
	}
	bars := cli.NewBars(stderr, mf.Quiet)
	defer bars.Finish()

	rctx, cancel := context.WithTimeout(ctx, *timeout)
	pairs, err := style.ReadPairs(rctx, *pairsPath)
	cancel()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%w\n(pass the study's pair list, amazon_pairs.csv, or your own with -pairs FILE)", err)
		}
		return err
	}
	// The outputs, before any long work.
	for _, dir := range []string{*out, *store} {
		if err := cli.CheckFolder(dir); err != nil {
			return err
		}
	}

	cfg := &study.Config{
		Pairs:      pairs,
		Limit:      *limit,
		StoreDir:   *store,
		OutDir:     *out,
		Seed:       *seed,
		HeadHidden: widths,
		Grid:       grid,
		CVFolds:    *cvFolds,
		Workers:    mf.Workers,
		Trainer:    &style.Trainer{Epochs: *epochs, Patience: *patience, Seed: *seed, Workers: mf.Workers},
		Progress:   bars.Update,
	}
	where := *images
	var src style.ImageSource
	if cli.IsURL(*images) {
		if *imageCache == "" {
			*imageCache = filepath.Join(*out, "images")
		}
		u, err := style.NewURLSource(*images, &style.URLOptions{CacheDir: *imageCache, Timeout: *timeout, Concurrent: *downloads})
		if err != nil {
			return err
		}
		src, cfg.Prefetch, cfg.PrefetchConcurrent = u, true, *downloads
	} else {
		if err := cli.CheckImageFolder(*images); err != nil {
			return err
		}
		d, err := style.NewDirSource(*images)
		if err != nil {
			return err
		}
		defer d.Close()
		src = d
	}
	rec := &recorder{ImageSource: src}
	cfg.Images = rec

	net, err := mf.Network(ctx, stdout, bars)
	if err != nil {
		return err
	}
	cfg.Extractor = net
	if wrapExtractor != nil {
		cfg.Extractor = wrapExtractor(net)
	}

	res, err := study.Run(ctx, cfg)
	bars.Finish()
	if err != nil && ctx.Err() != nil && stored(*store) {
		return cli.Resumable(err, "run the same command again to resume (features already computed are kept in "+*store+")")
	}
	if err != nil {
		if ctx.Err() == nil && len(rec.failed) > 0 {
			// The study stopped (too few usable pairs, say) before writing
			// its report: write the failures it met, which usually say why.
			used := pairs
			if *limit > 0 && *limit < len(pairs) {
				used = pairs[:*limit]
			}
			total := len(style.UniqueNames(used))
			if rerr := cli.ReportFailures(stderr, filepath.Join(*out, study.FailedImagesFile), rec.failures(), total, where); rerr != nil {
				fmt.Fprintln(stderr, cli.Message(rerr))
			}
		}
		return err
	}
	printSummary(stdout, res)
	for _, line := range cli.Summary(res.Extraction.Failed, res.Extraction.Total, where) {
		fmt.Fprintf(stderr, "failed: %s (listed in %s)\n", line, res.Files[study.FailedImagesFile])
	}
	return nil
}

// stored reports whether the feature store in dir holds anything.
func stored(dir string) bool {
	st, err := style.OpenFeatureStore(dir, &style.StoreOptions{ReadOnly: true})
	if err != nil {
		return false
	}
	defer st.Close()
	return st.Len() > 0
}

// recorder is an ImageSource that records the images it fails to open.
type recorder struct {
	style.ImageSource
	mu     sync.Mutex
	failed map[string]error
}

func (r *recorder) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := r.ImageSource.Open(ctx, name)
	if err != nil && ctx.Err() == nil {
		r.mu.Lock()
		if r.failed == nil {
			r.failed = map[string]error{}
		}
		r.failed[name] = err
		r.mu.Unlock()
	}
	return rc, err
}

// failures returns the recorded failures in name order.
func (r *recorder) failures() []style.ImageFailure {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]style.ImageFailure, 0, len(r.failed))
	for n, err := range r.failed {
		out = append(out, style.ImageFailure{Name: n, Err: err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func printSummary(w io.Writer, r *study.Result) {
	ex := r.Extraction
	fmt.Fprintf(w, "Pairs: %d used of %d (train %d, validation %d, test %d); %d dropped\n",
		len(r.Train)+len(r.Val)+len(r.Test), r.Pairs, len(r.Train), len(r.Val), len(r.Test), len(r.Dropped))
	fmt.Fprintf(w, "Images: %d distinct: %d extracted now, %d from the feature store, %d failed\n",
		ex.Total, ex.Done, ex.Skipped, len(ex.Failed))
	if r.CV != nil {
		best := r.CV.Results[r.CV.Best]
		fmt.Fprintf(w, "Model selection: %s chosen, mean validation AUC %.4f ± %.4f over %d folds\n",
			best.Setting, best.Mean, best.Std, len(best.AUCs))
		fmt.Fprintf(w, "Training: refit on the %d training and validation pairs for %d epochs in %s\n",
			len(r.Train)+len(r.Val), len(r.History.Loss), r.TrainTime.Round(time.Millisecond))
	} else {
		fmt.Fprintf(w, "Training: %d epochs in %s (best epoch %d)\n", len(r.History.Loss), r.TrainTime.Round(time.Millisecond), r.History.BestEpoch+1)
	}
	fmt.Fprintf(w, "Test AUC: %.4f untrained, %.4f trained\n", r.UntrainedROC.AUC(), r.ROC.AUC())
	fmt.Fprintf(w, "Cutoff: distance <= %.4f (test TPR %.1f%%, FPR %.1f%%)\n", r.Cutoff.Threshold, 100*r.Cutoff.TPR, 100*r.Cutoff.FPR)
	fmt.Fprintf(w, "FPR at most   TPR      cutoff\n")
	for i, p := range r.Table {
		c := "none"
		if p.Threshold > -1e300 {
			c = fmt.Sprintf("%.4f", p.Threshold)
		}
		fmt.Fprintf(w, "%10.0f%%  %5.1f%%  %10s\n", 100*[]float64{0.05, 0.10, 0.20}[min(i, 2)], 100*p.TPR, c)
	}
	for _, name := range []string{study.HeadFile, study.ReportFile, study.LearningCurvesFile,
		study.ROCFile, study.DensitiesFile, study.FailedImagesFile} {
		if p, ok := r.Files[name]; ok {
			fmt.Fprintf(w, "Wrote %s\n", p)
		}
	}
}

// parseWidths parses a comma-separated list of positive layer widths; ""
// gives nil.
func parseWidths(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var w []int
	for k, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("width %d (%q) is not a positive integer", k+1, f)
		}
		w = append(w, n)
	}
	return w, nil
}

// parseGrid builds the grid of the -grid-* flags, nil if all are empty.
func parseGrid(margin, dim, l2, hidden, lr string) (*study.Grid, error) {
	if margin == "" && dim == "" && l2 == "" && hidden == "" && lr == "" {
		return nil, nil
	}
	g := &study.Grid{}
	// Margins and learning rates of 0 mean the study's; a negative L2
	// means none. A negative learning rate would climb the loss and still
	// give a head, so it is refused here with the non-finite numbers.
	for _, f := range []struct {
		name, v    string
		dst        *[]float64
		negativeOK bool
	}{{"-grid-margin", margin, &g.Margins, false}, {"-grid-l2", l2, &g.L2s, true}, {"-grid-lr", lr, &g.LRs, false}} {
		if f.v == "" {
			continue
		}
		for _, x := range strings.Split(f.v, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			switch {
			case err != nil || math.IsNaN(v) || math.IsInf(v, 0):
				return nil, fmt.Errorf("%s %q: %q is not a finite number", f.name, f.v, x)
			case v < 0 && !f.negativeOK:
				return nil, fmt.Errorf("%s %q: %q is negative", f.name, f.v, x)
			}
			*f.dst = append(*f.dst, v)
		}
	}
	if dim != "" {
		w, err := parseWidths(dim)
		if err != nil {
			return nil, fmt.Errorf("-grid-dim %q: %v", dim, err)
		}
		g.Dims = w
	}
	if hidden != "" {
		for _, h := range strings.Split(hidden, ";") {
			w, err := parseWidths(h)
			if err != nil {
				return nil, fmt.Errorf("-grid-hidden %q: %v", hidden, err)
			}
			g.Hidden = append(g.Hidden, w)
		}
	}
	return g, nil
}
