package main

import (
	"context"
	"fmt"
	"image"

	"github.com/stylespace/style"
)

// loadNetworkModel loads a weight file of the given width divisor (its
// architecture told by the file).
func loadNetworkModel(path string, divisor, workers int) (*model, error) {
	w, err := style.ReadWeights(path, "", divisor)
	if err != nil {
		return nil, err
	}
	return newNetworkModel(w, workers)
}

// newNetworkModel builds the feature extractor of w, each forward pass
// using workers goroutines (0: all cores).
func newNetworkModel(w *style.Weights, workers int) (*model, error) {
	m, err := style.NewNetwork(w, &style.NetworkOptions{Workers: workers})
	if err != nil {
		return nil, err
	}
	return &model{
		ext: m,
		batch: func(ctx context.Context, imgs []image.Image) ([][]float32, error) {
			return m.FeaturesBatch(ctx, imgs)
		},
	}, nil
}

// loadHead loads a trained siamese head and checks that it was trained on
// features of ext.
func loadHead(path string, ext style.FeatureExtractor) (*style.SiameseHead, error) {
	h, err := style.LoadHead(path)
	if err != nil {
		return nil, err
	}
	if err := h.CheckBackbone(ext.Backbone()); err != nil {
		return nil, fmt.Errorf("head %s: %w", path, err)
	}
	in := h.Dense.In
	if len(h.Hidden) > 0 { // a deeper head takes its first hidden layer's input
		in = h.Hidden[0].In
	}
	if in != ext.FeatureLen() {
		return nil, fmt.Errorf("head %s takes %d features, the network gives %d", path, in, ext.FeatureLen())
	}
	return h, nil
}
