package main

import (
	"context"
	"fmt"
	"image"

	"github.com/stylespace/style"
)

// loadVGG16Model loads a VGG16 weight file of the given width divisor.
func loadVGG16Model(path string, divisor, workers int) (*model, error) {
	w, err := style.ReadVGG16Weights(path, divisor)
	if err != nil {
		return nil, err
	}
	return newVGG16Model(w, workers)
}

// newVGG16Model builds the feature extractor of w, each forward pass using
// workers goroutines (0: all cores).
func newVGG16Model(w *style.VGG16Weights, workers int) (*model, error) {
	m, err := style.NewVGG16(w, &style.VGG16Options{Workers: workers})
	if err != nil {
		return nil, err
	}
	return &model{
		ext: m,
		batch: func(_ context.Context, imgs []image.Image) ([][]float32, error) {
			return m.FeaturesBatch(imgs)
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
	if h.Dense.In != ext.FeatureLen() {
		return nil, fmt.Errorf("head %s takes %d features, the VGG16 gives %d", path, h.Dense.In, ext.FeatureLen())
	}
	return h, nil
}
