package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// The raw result files, in the output directory.
const (
	manifestFile   = "manifest.json"  // resultManifest
	featuresFile   = "features.f32"   // Count x FeatureLen little-endian float32, in manifest order
	embeddingsFile = "embeddings.f32" // Count x EmbeddingLen little-endian float32, when a head was used
)

// resultManifest describes the raw result files.
type resultManifest struct {
	Weights      string   `json:"weights"`
	Head         string   `json:"head,omitempty"`
	FeatureLen   int      `json:"feature_len"`
	EmbeddingLen int      `json:"embedding_len,omitempty"`
	Images       []string `json:"images"`               // row i of the .f32 files
	Categories   []string `json:"categories,omitempty"` // category of each image, if any was given
}

// writeResults writes rs (sorted by image) to dir.
func writeResults(ctx context.Context, dir string, spec ModelSpec, rs []Result) error {
	m := resultManifest{Weights: spec.Weights, Head: spec.Head, Images: make([]string, len(rs))}
	feats := make([][]float32, len(rs))
	var embs [][]float32
	for i, r := range rs {
		m.Images[i] = r.Image
		if r.Category != "" && m.Categories == nil {
			m.Categories = make([]string, len(rs))
		}
		if m.Categories != nil {
			m.Categories[i] = r.Category
		}
		feats[i] = r.Features
		if i == 0 {
			m.FeatureLen = len(r.Features)
			m.EmbeddingLen = len(r.Embedding)
		}
		if len(r.Features) != m.FeatureLen || len(r.Embedding) != m.EmbeddingLen {
			return fmt.Errorf("result %s: %d features and %d embedding values, want %d and %d",
				r.Image, len(r.Features), len(r.Embedding), m.FeatureLen, m.EmbeddingLen)
		}
		if r.Embedding != nil {
			embs = append(embs, r.Embedding)
		}
	}
	if err := writeOutput(ctx, joinPath(dir, featuresFile), func(w io.Writer) error { return writeFloats(w, feats) }); err != nil {
		return err
	}
	if m.EmbeddingLen > 0 {
		if err := writeOutput(ctx, joinPath(dir, embeddingsFile), func(w io.Writer) error { return writeFloats(w, embs) }); err != nil {
			return err
		}
	}
	// The manifest goes last: its presence says the other files are complete.
	return writeOutput(ctx, joinPath(dir, manifestFile), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		return enc.Encode(m)
	})
}

// ReadResults reads the raw result files written to a local directory.
func ReadResults(dir string) ([]Result, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, err
	}
	var m resultManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, manifestFile), err)
	}
	feats, err := readFloats(filepath.Join(dir, featuresFile), len(m.Images), m.FeatureLen)
	if err != nil {
		return nil, err
	}
	var embs [][]float32
	if m.EmbeddingLen > 0 {
		if embs, err = readFloats(filepath.Join(dir, embeddingsFile), len(m.Images), m.EmbeddingLen); err != nil {
			return nil, err
		}
	}
	rs := make([]Result, len(m.Images))
	for i, name := range m.Images {
		rs[i] = Result{Image: name, Features: feats[i]}
		if i < len(m.Categories) {
			rs[i].Category = m.Categories[i]
		}
		if embs != nil {
			rs[i].Embedding = embs[i]
		}
	}
	return rs, nil
}

// readFloats reads n vectors of d little-endian float32 and checks the file
// holds exactly that.
func readFloats(path string, n, d int) ([][]float32, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if n < 0 || d < 0 || int64(len(data)) != int64(n)*int64(d)*4 {
		return nil, fmt.Errorf("%s: %d bytes, want %d x %d float32", path, len(data), n, d)
	}
	out := make([][]float32, n)
	for i := range out {
		v := make([]float32, d)
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(data[(i*d+j)*4:]))
		}
		out[i] = v
	}
	return out, nil
}
