// Command train reproduces the study: it trains a style evaluator (a siamese
// head over VGG16 features) on labelled pairs of product photos and writes
// the trained head, its charts and a Markdown report.
//
// With no flags it runs the study as published: the pair list
// amazon_pairs.csv in the current folder (35,000 pairs), the images from
// https://m.media-amazon.com/images/I/, and torchvision's ImageNet VGG16
// weights downloaded into the user cache folder. Features are kept in a
// store under the output folder, so an interrupted run (Ctrl-C) resumes
// where it stopped when started again.
//
// Usage:
//
//	go run ./examples/train [flags]
//
// Quick run on the first 2,000 pairs:
//
//	go run ./examples/train -limit 2000 -out quick
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/study"
)

// StudyImages is where the study's images are served.
const StudyImages = "https://m.media-amazon.com/images/I/"

func main() {
	cli.Main("train", "interrupted; run the same command again to resume (features already computed are kept)", run)
}

// wrapExtractor, if not nil, wraps the feature extractor (tests count and
// interrupt the extraction through it).
var wrapExtractor func(style.FeatureExtractor) style.FeatureExtractor

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		pairsPath    = fs.String("pairs", "amazon_pairs.csv", "pair list `file or URL`: image1;image2;label rows (label 1 = go well together)")
		images       = fs.String("images", StudyImages, "image `folder or URL prefix`")
		imageCache   = fs.String("image-cache", "", "`folder` keeping downloaded images (default OUT/images; only for a URL prefix)")
		weights      = fs.String("weights", "", "VGG16 weight `file` (default: torchvision's VGG16, downloaded once into the cache)")
		weightsCache = fs.String("weights-cache", "", "`folder` for the downloaded weights (default: the user cache folder)")
		out          = fs.String("out", "style-study", "output `folder`: head, charts, report")
		store        = fs.String("store", "", "feature store `folder` (default OUT/features)")
		limit        = fs.Int("limit", 0, "use only the first `N` pairs (0: all)")
		epochs       = fs.Int("epochs", 50, "maximum training epochs")
		patience     = fs.Int("patience", 5, "stop after this many epochs without a better validation loss (0: never)")
		seed         = fs.Uint64("seed", 1, "seed of the split, the initial weights and the shuffling")
		workers      = fs.Int("workers", 0, "images processed at once (0: one per CPU)")
		downloads    = fs.Int("downloads", 16, "image downloads at once (URL prefix only)")
		timeout      = fs.Duration("timeout", 30*time.Second, "timeout of each download")
		quiet        = fs.Bool("quiet", false, "no progress bars")
		conv         = fs.String("conv", "auto", cli.ConvUsage)
		divisor      = fs.Int("weights-divisor", 1, "width divisor of the -weights network: 1 for VGG16, 2 to 64 for a narrow test network")
	)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: train [flags]\n\nTrains a style evaluator on labelled pairs of product photos and writes the head, charts and report.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (all settings are flags; see -h)", fs.Args())
	}
	if *store == "" {
		*store = filepath.Join(*out, "features")
	}
	bars := cli.NewBars(stderr, *quiet)
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

	cfg := &study.Config{
		Pairs:    pairs,
		Limit:    *limit,
		StoreDir: *store,
		OutDir:   *out,
		Seed:     *seed,
		Workers:  *workers,
		Trainer:  &style.Trainer{Epochs: *epochs, Patience: *patience, Seed: *seed, Workers: *workers},
		Progress: bars.Update,
	}
	if cli.IsURL(*images) {
		if *imageCache == "" {
			*imageCache = filepath.Join(*out, "images")
		}
		src, err := style.NewURLSource(*images, &style.URLOptions{CacheDir: *imageCache, Timeout: *timeout, Concurrent: *downloads})
		if err != nil {
			return err
		}
		cfg.Images, cfg.Prefetch, cfg.PrefetchConcurrent = src, true, *downloads
	} else {
		src, err := style.NewDirSource(*images)
		if err != nil {
			return fmt.Errorf("images: %w", err)
		}
		defer src.Close()
		cfg.Images = src
	}

	wpath, err := cli.Weights(ctx, *weights, *weightsCache, bars)
	if err != nil {
		return err
	}
	vgg, err := cli.LoadNetwork(wpath, *conv, *divisor)
	if err != nil {
		return err
	}
	cfg.Extractor = vgg
	if wrapExtractor != nil {
		cfg.Extractor = wrapExtractor(vgg)
	}

	res, err := study.Run(ctx, cfg)
	bars.Finish()
	if err != nil {
		return err
	}
	printSummary(stdout, res)
	return nil
}

func printSummary(w io.Writer, r *study.Result) {
	ex := r.Extraction
	fmt.Fprintf(w, "Pairs: %d used of %d (train %d, validation %d, test %d); %d dropped\n",
		len(r.Train)+len(r.Val)+len(r.Test), r.Pairs, len(r.Train), len(r.Val), len(r.Test), len(r.Dropped))
	fmt.Fprintf(w, "Images: %d distinct: %d extracted now, %d from the feature store, %d failed\n",
		ex.Total, ex.Done, ex.Skipped, len(ex.Failed))
	fmt.Fprintf(w, "Training: %d epochs in %s (best epoch %d)\n", len(r.History.Loss), r.TrainTime.Round(time.Millisecond), r.History.BestEpoch+1)
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
