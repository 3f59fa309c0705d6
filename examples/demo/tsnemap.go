package main

import (
	"context"
	"fmt"
	"image"
	"path/filepath"

	"gonum.org/v1/gonum/mat"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
)

// styleMap projects the embedded products to 2-D with t-SNE and draws the
// style space twice: as a map of product thumbnails (the study's Figure 9)
// and as a scatter plot coloured by hidden style palette.
func styleMap(ctx context.Context, out string, items []item, embeddings [][]float32, src *synthSource, seed uint64, workers int, bars *cli.Bars) ([]string, error) {
	var rows []int
	for i, e := range embeddings {
		if e != nil {
			rows = append(rows, i)
		}
	}
	if len(rows) < 10 {
		return nil, fmt.Errorf("only %d products have features: too few for a map", len(rows))
	}
	dim := len(embeddings[rows[0]])
	x := mat.NewDense(len(rows), dim, nil)
	for r, i := range rows {
		for j, v := range embeddings[i] {
			x.Set(r, j, float64(v))
		}
	}
	perplexity := min(30, float64(len(rows)-1)/3)
	ts := style.TSNE{Perplexity: perplexity, Seed: seed, Workers: workers, Progress: bars.Update}
	y, err := ts.Embed(ctx, x)
	if err != nil {
		return nil, err
	}
	bars.Finish()

	mapPath := filepath.Join(out, "style_map.png")
	thumb := func(r int) (image.Image, error) { return src.draw(items[rows[r]]), nil }
	if err := style.WriteTSNEMap(ctx, mapPath, y, thumb, &style.TSNEMapOptions{Width: 1600, Height: 1200, Thumb: 48}); err != nil {
		return nil, err
	}
	labels := make([]string, len(rows))
	for r, i := range rows {
		// Numbered, so the plot's colours are not read as the palette's.
		pi := items[i].Style / len(patterns)
		labels[r] = fmt.Sprintf("palette %d (%s)", pi+1, palettes[pi].name)
	}
	scatterPath := filepath.Join(out, "style_scatter.png")
	err = style.PlotScatter(scatterPath, y, labels, &style.PlotOptions{
		Title: "Style space (t-SNE of the 128-D embeddings), coloured by hidden palette",
	})
	if err != nil {
		return nil, err
	}
	return []string{mapPath, scatterPath}, nil
}
