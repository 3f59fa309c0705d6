// Command tsne draws the style space of a catalogue of product photos: it
// embeds every photo, projects the embeddings to two dimensions with
// t-SNE and writes the map of thumbnails (the study's Figure 9) and a
// scatter plot coloured by category.
//
//	go run ./examples/tsne -images ../shared/fashion/images \
//	    -meta ../shared/fashion/styles.csv -map tsne_map.png -scatter tsne_scatter.png
//
// Without -weights the VGG16 network is generated from a formula (its
// features are not ImageNet features); without -head the raw features are
// projected, so the map groups visually similar items rather than learned
// style. The program says so in its output. The catalogue (-catalog,
// default catalog.stylecat, the same file as examples/recommend's) is
// reused and completed, and every item it holds is mapped: a second map of
// the same folder indexes nothing. As in examples/recommend, indexing is
// journaled beside the catalogue file every 1,000 images and 30 seconds,
// so that a killed run loses at most that much and the next one resumes.
package main

import (
	"context"
	"flag"
	"fmt"
	"image"
	"io"
	"math"
	"time"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/picture"
)

func main() {
	cli.Main("tsne", run)
}

// run is the whole program, callable from tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("tsne", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var (
		mf cli.ModelFlags
		cf cli.CatalogFlags
	)
	mf.Register(fl, cli.OptionalHead)
	cf.Register(fl)
	mapPath := fl.String("map", "tsne_map.png", "the map of thumbnails, a PNG `file`")
	scatterPath := fl.String("scatter", "tsne_scatter.png", "the scatter plot coloured by category, a PNG `file`; empty: none")
	width := fl.Int("width", 2000, "width of the map in pixels")
	height := fl.Int("height", 2000, "height of the map in pixels")
	thumb := fl.Int("thumb", 40, "side of the box each thumbnail is fitted into (aspect ratio kept), in pixels")
	layout := fl.String("layout", "grid", "how overlapping thumbnails are placed: grid (moved to free cells nearby) or scatter (drawn over each other)")
	plotW := fl.Int("scatter-width", 1000, "width of the scatter plot in pixels")
	plotH := fl.Int("scatter-height", 800, "height of the scatter plot in pixels")
	perplexity := fl.Float64("perplexity", 30, "t-SNE perplexity: the effective number of neighbours")
	iterations := fl.Int("iterations", 1000, "t-SNE gradient steps")
	seed := fl.Uint64("seed", 1, "t-SNE seed")
	initFlag := fl.String("init", "pca", "t-SNE initial embedding: pca or random")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: tsne -images DIR [-meta CSV] [-weights FILE] [-head FILE] [flags]\n\n")
		fl.PrintDefaults()
	}
	pos, err := cli.Parse(fl, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.Usagef("unexpected arguments %q (all settings are flags; see -h)", pos)
	}
	var lay picture.MapLayout
	switch *layout {
	case "grid":
		lay = picture.MapGrid
	case "scatter":
		lay = picture.MapScatter
	default:
		return cli.Usagef("-layout %q: want grid or scatter", *layout)
	}
	if *width <= 0 || *height <= 0 || *thumb <= 0 || *plotW <= 0 || *plotH <= 0 {
		return cli.Usagef("-width, -height, -thumb, -scatter-width and -scatter-height must be positive")
	}
	if *initFlag != "pca" && *initFlag != "random" {
		return cli.Usagef("-init %q: want pca or random", *initFlag)
	}
	if !(*perplexity > 0) || math.IsInf(*perplexity, 0) || *iterations <= 0 {
		return cli.Usagef("-perplexity and -iterations must be positive (-perplexity %v, -iterations %d)", *perplexity, *iterations)
	}
	if *mapPath == "" {
		return cli.Usagef("-map: a file name is required")
	}

	bars := cli.NewBars(stderr, mf.Quiet)
	m, err := cli.OpenModel(ctx, &mf, &cf, []string{*mapPath, *scatterPath}, stdout, stderr, bars)
	if err != nil {
		return err
	}
	defer m.Close()

	// Every item of the catalogue, as it is: a catalogue is a
	// FeatureSource, so t-SNE reads its embeddings in place.
	n, dim := m.Cat.Len(), m.Cat.Dim()
	if n < 4 || float64(n) <= *perplexity {
		return fmt.Errorf("%d images embedded: t-SNE with perplexity %g needs more (lower -perplexity or index more images)", n, *perplexity)
	}
	ids := make([]string, n)
	cats := make([]string, n)
	for i := range n {
		it := m.Cat.Item(i)
		ids[i] = it.ID
		if cats[i] = m.Category(it.ID); cats[i] == "" {
			cats[i] = it.Category
		}
	}

	initMode := style.TSNEInitPCA
	if *initFlag == "random" {
		initMode = style.TSNEInitRandom
	}
	ts := style.TSNE{Perplexity: *perplexity, Iterations: *iterations, Seed: *seed, Init: initMode, Workers: mf.Workers, Progress: bars.Update}
	start := time.Now()
	res, err := ts.Fit(ctx, m.Cat)
	bars.Finish()
	if err != nil {
		return fmt.Errorf("t-SNE: %w", err)
	}
	fmt.Fprintf(stdout, "t-SNE: %d points of %d values -> 2-D (perplexity %g, %d iterations, %s init, seed %d): KL divergence %.4f, %s\n",
		n, dim, *perplexity, res.Iterations, *initFlag, *seed, res.KL, time.Since(start).Round(time.Millisecond))

	thumbOf := func(r int) (image.Image, error) {
		img, err := style.OpenImage(ctx, m.Src, ids[r])
		if err != nil {
			fmt.Fprintf(stderr, "map: leaving out %s: %s\n", ids[r], cli.Message(err))
			return nil, nil
		}
		return img, nil
	}
	mapOpts := &picture.MapOptions{Width: *width, Height: *height, Thumb: *thumb, Layout: lay}
	start = time.Now()
	if err := picture.WriteMap(ctx, *mapPath, res.Y, thumbOf, mapOpts); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "map: %s (%dx%d pixels, %d-pixel thumbnails, %s layout), %s\n",
		*mapPath, *width, *height, *thumb, *layout, time.Since(start).Round(time.Millisecond))

	if *scatterPath != "" {
		title := "t-SNE of the style space"
		if m.Head == nil {
			title = "t-SNE of raw image features (no head)"
		}
		if err := picture.Scatter(*scatterPath, res.Y, cats, &picture.Options{Title: title, Width: *plotW, Height: *plotH}); err != nil {
			return err
		}
		what := "categories: " + cf.CatColumn
		if cf.Meta == "" {
			what = "categories stored in the catalogue"
		}
		fmt.Fprintf(stdout, "scatter plot: %s (%dx%d pixels, %s)\n", *scatterPath, *plotW, *plotH, what)
	}
	return nil
}
