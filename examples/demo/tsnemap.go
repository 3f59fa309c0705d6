package main

import (
	"context"
	"path/filepath"

	"github.com/stylespace/style/examples/internal/cli"
)

// styleMap draws the style space; it is filled in once t-SNE is available.
func styleMap(ctx context.Context, out string, items []item, embeddings [][]float32, src *synthSource, seed uint64, workers int, bars *cli.Bars) ([]string, error) {
	_ = filepath.Join
	return nil, nil
}
