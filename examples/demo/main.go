// Command demo runs the whole style pipeline offline, in about ten seconds, on
// data and weights it generates itself: product images drawn in code, a
// VGG16 network with seeded weights, labelled pairs from the hidden styles
// of the drawn products. It extracts features, trains the siamese head with
// early stopping, evaluates it with ROC/AUC and cutoffs, draws the learning
// curves, ROC and distance densities, recommends compatible items from the
// generated catalogue with a contact sheet, and maps the style space with
// t-SNE. Everything is written into one folder, which it names at the end.
//
// The numbers it prints are real measurements of a real run, but on
// generated data: they show the pipeline working, not the study's result.
// Pass -weights FILE (or -download) to use real VGG16 weights. The model
// flags are those of every other program: the head it writes works with
// examples/evaluate, recommend and tsne given the same -weights, or for the
// default generated network the same -weights-seed and -weights-divisor
// (their defaults).
//
// With -compare it runs the pipeline once per backbone (VGG16, then
// ResNet-50) on the same generated data, each into its own folder of -out,
// and prints and writes (comparison.md) the test AUC, the extraction time
// per image and the feature store's bytes per item side by side.
//
// Usage:
//
//	go run ./examples/demo [-out style-demo] [-items 600] [-pair-count 4000] [-seed 1] [-compare] [model flags]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/picture"
	"github.com/stylespace/style/study"
)

func main() { cli.Main("demo", run) }

// imageSize is the side of the generated product images, in pixels.
const imageSize = 128

// synthSource is an ImageSource that draws the generated products on
// demand, as PNG files, so the pipeline reads them exactly as it reads
// photos from a folder or a URL.
type synthSource struct {
	items map[string]item
	seed  uint64
}

func (s *synthSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	it, ok := s.items[name]
	if !ok {
		return nil, fmt.Errorf("demo image %q: %w", name, fs.ErrNotExist)
	}
	img := s.draw(it)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}

// draw renders an item, with jitter seeded by its ID so every call gives
// the same picture.
func (s *synthSource) draw(it item) image.Image {
	n, _ := strconv.Atoi(strings.TrimPrefix(it.ID, "item"))
	return it.draw(imageSize, rand.New(rand.NewPCG(s.seed, uint64(n))))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("demo", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var mf cli.ModelFlags
	mf.Register(fl, cli.NoHead)
	var (
		out     = fl.String("out", "style-demo", "output `folder`")
		nItems  = fl.Int("items", 600, "generated products")
		nPairs  = fl.Int("pair-count", 4000, "generated labelled pairs")
		seed    = fl.Uint64("seed", 1, "seed of the generated products, pairs, split and training")
		epochs  = fl.Int("epochs", 40, "maximum training epochs")
		compare = fl.Bool("compare", false, "run the pipeline with each backbone (vgg16, resnet50) on the same data, each into its own folder of -out, and compare AUC, time per image and feature bytes per item")
	)
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: demo [flags]\n\nRuns the whole style pipeline offline on generated products and writes every result into -out.\n\n")
		fl.PrintDefaults()
	}
	pos, err := cli.Parse(fl, args)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if len(pos) > 0 {
		return cli.Usagef("unexpected arguments %q (all settings are flags; see -h)", pos)
	}
	if *nItems < 20 || *nPairs < 50 {
		return cli.Usagef("need at least 20 -items and 50 -pair-count (got %d and %d)", *nItems, *nPairs)
	}
	if *epochs <= 0 {
		return cli.Usagef("-epochs %d: must be positive", *epochs)
	}
	if err := mf.Check(); err != nil {
		return err
	}
	if err := cli.CheckFolder(*out); err != nil {
		return err
	}
	if *compare && (mf.Weights != "" || set["backbone"]) {
		return cli.Usagef("-compare runs every backbone, each with its generated or -download weights: it excludes -weights and -backbone")
	}
	start := time.Now()
	bars := cli.NewBars(stderr, mf.Quiet)
	defer bars.Finish()

	// The data: products with hidden styles, and pairs labelled by them.
	rng := rand.New(rand.NewPCG(*seed, 0x5eed))
	items := makeItems(*nItems, rng)
	src := &synthSource{items: map[string]item{}, seed: *seed}
	for _, it := range items {
		src.items[it.ID] = it
	}
	a, b, labels := makePairs(items, *nPairs, rng)
	pairs := make([]style.Pair, len(a))
	for i := range a {
		pairs[i] = style.Pair{A: items[a[i]].ID, B: items[b[i]].ID, Label: labels[i]}
	}

	fmt.Fprintf(stdout, "style demo: %d generated products (%d categories x %d styles), %d labelled pairs.\n",
		len(items), len(categories), len(palettes)*len(patterns), len(pairs))
	fmt.Fprintln(stdout, "The images are drawn by the demo: the results show the pipeline at work, not the study's numbers.")
	d := &demo{items: items, src: src, pairs: pairs, seed: *seed, epochs: *epochs, workers: mf.Workers,
		stdout: stdout, bars: bars}
	if !*compare {
		if _, err := d.pipeline(ctx, mf, *out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Done in %s.\n", time.Since(start).Round(100*time.Millisecond))
		return nil
	}

	// The same data through each backbone, each into its own folder.
	var runs []*summary
	for _, arch := range compared {
		m := mf
		m.Backbone = string(arch)
		fmt.Fprintf(stdout, "\n=== %s ===\n", arch)
		s, err := d.pipeline(ctx, m, filepath.Join(*out, string(arch)))
		if err != nil {
			return fmt.Errorf("%s: %w", arch, err)
		}
		runs = append(runs, s)
	}
	table := comparison(runs)
	fmt.Fprintf(stdout, "\nSide by side, on the same %d products and %d pairs:\n\n%s", len(items), len(pairs), table)
	cmpPath := filepath.Join(*out, comparisonFile)
	if err := writeComparison(cmpPath, runs, len(items), len(pairs)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nWrote %s.\n", cmpPath)
	fmt.Fprintf(stdout, "Done in %s.\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// compared are the backbones -compare runs, in the order of its table.
var compared = []style.Arch{style.VGG16, style.ResNet50}

// demo is the generated data and the settings every pipeline run shares.
type demo struct {
	items   []item
	src     *synthSource
	pairs   []style.Pair
	seed    uint64
	epochs  int
	workers int
	stdout  io.Writer
	bars    *cli.Bars
}

// summary is what one pipeline run measured, for the side-by-side table.
type summary struct {
	backbone   style.Backbone
	featureLen int
	images     int           // images whose features were computed by this run
	extraction time.Duration // reading, decoding and the forward passes
	storeBytes int64         // the feature store's files
	stored     int           // images in the feature store, from this run or an earlier one
	untrained  float64       // test AUC of the untrained head
	trained    float64       // test AUC of the trained head
	trainTime  time.Duration
}

// pipeline runs the whole pipeline with the backbone mf selects and writes
// every result into out.
func (d *demo) pipeline(ctx context.Context, mf cli.ModelFlags, out string) (*summary, error) {
	stdout, bars, items, src := d.stdout, d.bars, d.items, d.src
	// The backbone: the same flags as every other program, so that the
	// head written here works with evaluate, recommend and tsne given the
	// same -weights or -weights-seed/-weights-divisor.
	net, err := mf.Network(ctx, stdout, bars)
	if err != nil {
		return nil, err
	}

	// Features, split, training, evaluation, charts, report.
	cfg := &study.Config{
		Pairs:     d.pairs,
		Images:    src,
		Extractor: net,
		StoreDir:  filepath.Join(out, "features"),
		OutDir:    out,
		Seed:      d.seed,
		Workers:   d.workers,
		Trainer:   &style.Trainer{Epochs: d.epochs, Patience: 5, Seed: d.seed, Workers: d.workers},
		Progress:  bars.Update,
	}
	res, err := study.Run(ctx, cfg)
	bars.Finish()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "\nTraining: %d epochs (best %d), %d/%d/%d train/validation/test pairs.\n",
		len(res.History.Loss), res.History.BestEpoch+1, len(res.Train), len(res.Val), len(res.Test))
	fmt.Fprintf(stdout, "Test AUC: %.3f untrained -> %.3f trained.\n", res.UntrainedROC.AUC(), res.ROC.AUC())
	fmt.Fprintf(stdout, "Cutoff: distance <= %.3f (test TPR %.0f%%, FPR %.0f%%).\n",
		res.Cutoff.Threshold, 100*res.Cutoff.TPR, 100*res.Cutoff.FPR)
	sum := &summary{
		backbone:   net.Backbone(),
		featureLen: net.FeatureLen(),
		images:     res.Extraction.Done,
		extraction: res.Extraction.Elapsed,
		untrained:  res.UntrainedROC.AUC(),
		trained:    res.ROC.AUC(),
		trainTime:  res.TrainTime,
	}
	if sum.storeBytes, err = folderSize(cfg.StoreDir); err != nil {
		return nil, err
	}

	// The catalogue: every product embedded by the trained head.
	store, err := style.OpenFeatureStore(cfg.StoreDir, &style.StoreOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	sum.stored = store.Len()
	cat, err := buildCatalog(store, res.Head, items)
	if err != nil {
		return nil, err
	}
	catPath := filepath.Join(out, cli.DefaultCatalog)
	if err := cat.Save(catPath); err != nil {
		return nil, err
	}

	// Recommendations for one product, with a contact sheet.
	query := items[0]
	matches, err := cat.RecommendItem(query.ID, 6, &style.RecommendOptions{ExcludeID: query.ID, ExcludeSameCategory: true})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "\nMost compatible with %s (%s %s), other categories only:\n", query.ID, query.styleName(), query.Category)
	var thumbs []image.Image
	var recs []recommendation
	captions := []string{"query " + query.ID + "\n" + query.Category}
	distances := make([]float64, len(matches))
	hits := 0
	for i, m := range matches {
		it := src.items[m.ID]
		r := recommendation{item: it, distance: m.Distance, verdict: res.Head.Verdict(m.Distance), sameStyle: it.Style == query.Style}
		recs = append(recs, r)
		same := ""
		if r.sameStyle {
			same = "  (same hidden style)"
			hits++
		}
		fmt.Fprintf(stdout, "  %s  distance %.3f  %s %s  %s%s\n", m.ID, m.Distance, it.styleName(), it.Category,
			r.verdict, same)
		thumbs = append(thumbs, src.draw(it))
		captions = append(captions, it.ID+"\n"+it.Category)
		distances[i] = m.Distance
	}
	fmt.Fprintf(stdout, "  %d of %d share the query's hidden style.\n", hits, len(matches))
	sheetPath := filepath.Join(out, "recommendations.png")
	sheetOpts := &picture.SheetOptions{Distances: distances, Cutoff: res.Head.Cutoff}
	if err := picture.WriteContactSheet(sheetPath, src.draw(query), thumbs, captions, sheetOpts); err != nil {
		return nil, err
	}

	// The style-space map.
	mapFiles, err := styleMap(ctx, out, cat, src, d.seed, d.workers, bars)
	if err != nil {
		return nil, err
	}
	bars.Finish()
	rel := func(p string) string { return filepath.Base(p) }
	var mapNames []string
	for _, p := range mapFiles {
		mapNames = append(mapNames, rel(p))
	}
	if err := appendReport(res.Files[study.ReportFile], demoReport(query, recs, res.Head.Cutoff, rel(sheetPath), mapNames)); err != nil {
		return nil, err
	}

	where, err := filepath.Abs(out)
	if err != nil {
		where = out
	}
	fmt.Fprintf(stdout, "\nWrote, in %s:\n", where)
	for _, name := range []string{study.ReportFile, study.HeadFile, study.LearningCurvesFile,
		study.ROCFile, study.DensitiesFile} {
		if p, ok := res.Files[name]; ok {
			fmt.Fprintf(stdout, "  %s\n", filepath.Base(p))
		}
	}
	for _, p := range append([]string{catPath, sheetPath}, mapFiles...) {
		fmt.Fprintf(stdout, "  %s\n", filepath.Base(p))
	}
	return sum, nil
}

// buildCatalog embeds every product's stored features with the head.
func buildCatalog(store *style.FeatureStore, head *style.SiameseHead, items []item) (*style.Catalog, error) {
	cat := &style.Catalog{Meta: map[string]string{"source": "style demo: generated products"}}
	feat := make([]float32, store.Dim())
	for _, it := range items {
		idx, ok := store.Index(it.ID)
		if !ok {
			continue // an item no pair uses has no features
		}
		emb := head.Embed(store.FeatureTo(feat, idx))
		if err := cat.Add(style.Item{ID: it.ID, Category: it.Category, Embedding: emb}); err != nil {
			return nil, err
		}
	}
	return cat, nil
}
