package main

import (
	"fmt"
	"image"

	"github.com/stylespace/style"
)

// This file binds the pipeline to the library's model constructors.

// loadVGG16Model loads a VGG16 weight file.
func loadVGG16Model(path string, workers int) (*model, error) {
	return nil, fmt.Errorf("load %s: style.LoadVGG16 %w", path, errNotAvailable)
}

// newGeneratedModel builds a model from in-memory weights.
func newGeneratedModel(w *style.VGG16Weights, workers int) (*model, error) {
	// Placeholder until style.NewVGG16 exists: a deterministic stand-in.
	n := w.Layers[len(w.Layers)-1].Out
	return &model{ext: fakeExtractor{n: n}}, nil
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
	if h.In() != ext.FeatureLen() {
		return nil, fmt.Errorf("head %s takes %d features, the VGG16 gives %d", path, h.In(), ext.FeatureLen())
	}
	return h, nil
}

type fakeExtractor struct{ n int }

func (f fakeExtractor) Features(img image.Image) ([]float32, error) {
	b := img.Bounds()
	out := make([]float32, f.n*49)
	for i := range out {
		x := b.Min.X + (i*7)%b.Dx()
		y := b.Min.Y + (i*13)%b.Dy()
		r, g, bl, _ := img.At(x, y).RGBA()
		out[i] = float32(r)/65535*0.3 + float32(g)/65535*0.5 + float32(bl)/65535*0.2
	}
	return out, nil
}
func (f fakeExtractor) FeatureLen() int          { return f.n * 49 }
func (f fakeExtractor) Backbone() style.Backbone { return style.Backbone{Name: "fake"} }
