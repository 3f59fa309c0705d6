package main

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"path/filepath"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/picture"
)

// styleMap projects the catalogue's embeddings to 2-D with t-SNE and draws
// the style space twice: as a map of product thumbnails (the study's
// Figure 9) and as a scatter plot coloured by hidden style palette.
func styleMap(ctx context.Context, out string, cat *style.Catalog, src *synthSource, seed uint64, workers int, bars *cli.Bars) ([]string, error) {
	n := cat.Len()
	if n < 10 {
		return nil, fmt.Errorf("only %d products have features: too few for a map", n)
	}
	items := make([]item, n) // the product of each catalogue row
	for r := range items {
		items[r] = src.items[cat.Item(r).ID]
	}
	perplexity := min(30, float64(n-1)/3)
	ts := style.TSNE{Perplexity: perplexity, Seed: seed, Workers: workers, Progress: bars.Update}
	res, err := ts.Fit(ctx, cat)
	if err != nil {
		return nil, err
	}
	bars.Finish()

	mapPath := filepath.Join(out, "style_map.png")
	thumb := func(r int) (image.Image, error) { return src.draw(items[r]), nil }
	if err := picture.WriteMap(ctx, mapPath, res.Y, thumb, &picture.MapOptions{Width: 1600, Height: 1200, Thumb: 48}); err != nil {
		return nil, err
	}
	// Each point in the main colour of its hidden palette, so that the
	// legend's names and colours agree.
	labels := make([]string, n)
	colours := map[string]color.Color{}
	for r, it := range items {
		pl := palettes[it.Style/len(patterns)]
		labels[r] = pl.name
		colours[pl.name] = pl.main
	}
	scatterPath := filepath.Join(out, "style_scatter.png")
	err = picture.Scatter(scatterPath, res.Y, labels, &picture.Options{
		Title:  "Style space (t-SNE of the 128-D embeddings), coloured by hidden palette",
		Colors: colours,
	})
	if err != nil {
		return nil, err
	}
	return []string{mapPath, scatterPath}, nil
}
