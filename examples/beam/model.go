package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/stylespace/style"
)

// ModelSpec says which model the workers load. It travels inside the DoFn,
// so every field is exported and JSON-serialisable.
type ModelSpec struct {
	// Weights is a weight file (any format style.ReadWeights reads), local
	// or on a Beam filesystem (gs://), or "generated:narrow:SEED" /
	// "generated:full:SEED" for a VGG16-shaped network with weights generated
	// from SEED (no file needed; for tests and dry runs, its features mean
	// nothing).
	Weights string
	// WeightsDivisor is the width divisor of the network in the Weights
	// file (see style.ReadWeights); 0 means 1, VGG16 itself.
	WeightsDivisor int
	// Head is an optional trained siamese head file; "" means no embedding.
	Head string
	// Workers is the number of goroutines the model uses for one batch;
	// 0 means runtime.GOMAXPROCS(0).
	Workers int
}

// Check catches a bad spec before the job is submitted: a malformed
// generated:... name, or a local weight or head file that does not exist.
// Files on Beam filesystems are only checked by the workers.
func (spec ModelSpec) Check() error {
	if spec.Workers < 0 {
		return fmt.Errorf("negative model workers %d", spec.Workers)
	}
	if rest, ok := strings.CutPrefix(spec.Weights, "generated:"); ok {
		if _, _, err := parseGenerated(rest); err != nil {
			return err
		}
	} else if err := checkLocal(spec.Weights); err != nil {
		return err
	}
	if spec.Head != "" {
		return checkLocal(spec.Head)
	}
	return nil
}

func checkLocal(name string) error {
	if strings.Contains(name, "://") {
		return nil
	}
	_, err := os.Stat(name)
	return err
}

// model is what a worker loads once: the feature extractor and the optional
// head.
type model struct {
	ext   style.FeatureExtractor
	batch func(ctx context.Context, imgs []image.Image) ([][]float32, error) // nil: one image at a time
	head  *style.SiameseHead                                                 // nil: no embedding

	headSHA256 string // hex SHA-256 of the head file, "" without a head
}

// embedBatch returns the embeddings of feats, in one batched product.
func (m *model) embedBatch(feats [][]float32) [][]float32 {
	n, out := len(feats), m.head.Dense.Out
	e := m.head.Embed(slices.Concat(feats...))
	res := make([][]float32, n)
	for i := range res {
		res[i] = e[i*out : (i+1)*out : (i+1)*out]
	}
	return res
}

// featuresBatch computes the features of imgs, in one batched forward pass
// when the extractor supports it.
func (m *model) featuresBatch(ctx context.Context, imgs []image.Image) ([][]float32, error) {
	if m.batch != nil {
		return m.batch(ctx, imgs)
	}
	out := make([][]float32, len(imgs))
	for i, img := range imgs {
		f, err := m.ext.Features(img)
		if err != nil {
			return nil, err
		}
		out[i] = f
	}
	return out, nil
}

// sharedModels holds one loaded model per spec and process: DoFn instances
// come and go with bundles, but a worker process loads the weights once.
var sharedModels struct {
	mu sync.Mutex
	m  map[ModelSpec]*modelEntry
}

type modelEntry struct {
	once sync.Once
	m    *model
	err  error
}

// modelLoads counts the models actually loaded in this process.
var modelLoads atomic.Int64

// sharedModel returns the process-wide model for spec, loading it on first
// use. A failed load is not remembered: the runner's retry of the bundle
// tries again (a weight file on a remote filesystem may have been briefly
// unreachable).
func sharedModel(ctx context.Context, spec ModelSpec) (*model, error) {
	sharedModels.mu.Lock()
	if sharedModels.m == nil {
		sharedModels.m = make(map[ModelSpec]*modelEntry)
	}
	e := sharedModels.m[spec]
	if e == nil {
		e = new(modelEntry)
		sharedModels.m[spec] = e
	}
	sharedModels.mu.Unlock()
	e.once.Do(func() {
		modelLoads.Add(1)
		e.m, e.err = loadModel(ctx, spec)
	})
	if e.err != nil {
		sharedModels.mu.Lock()
		if sharedModels.m[spec] == e {
			delete(sharedModels.m, spec)
		}
		sharedModels.mu.Unlock()
	}
	return e.m, e.err
}

// loadModel builds the model of spec.
func loadModel(ctx context.Context, spec ModelSpec) (*model, error) {
	var (
		m   *model
		err error
	)
	if rest, ok := strings.CutPrefix(spec.Weights, "generated:"); ok {
		m, err = generatedModel(rest, spec.Workers)
	} else {
		path, cleanup, ferr := localCopy(ctx, spec.Weights)
		if ferr != nil {
			return nil, ferr
		}
		defer cleanup()
		m, err = loadNetworkModel(path, max(spec.WeightsDivisor, 1), spec.Workers)
	}
	if err != nil {
		return nil, err
	}
	if spec.Head != "" {
		path, cleanup, err := localCopy(ctx, spec.Head)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		h, err := loadHead(path, m.ext)
		if err != nil {
			return nil, err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		m.head, m.headSHA256 = h, fmt.Sprintf("%x", sha256.Sum256(data))
	}
	return m, nil
}

// generatedModel builds the network of "narrow:SEED" or "full:SEED".
func generatedModel(s string, workers int) (*model, error) {
	divisor, seed, err := parseGenerated(s)
	if err != nil {
		return nil, err
	}
	w, err := style.GenerateWeights(style.VGG16, seed, divisor)
	if err != nil {
		return nil, err
	}
	return newNetworkModel(w, workers)
}

// parseGenerated parses "narrow:SEED" or "full:SEED": the width divisor of
// style.GenerateWeights (8 for the narrow test network, 1 for the full
// VGG16) and the seed.
func parseGenerated(s string) (divisor int, seed uint64, err error) {
	kind, seedStr, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("generated weights %q: want generated:narrow:SEED or generated:full:SEED", "generated:"+s)
	}
	seed, err = strconv.ParseUint(seedStr, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("generated weights %q: bad seed: %v", "generated:"+s, err)
	}
	switch kind {
	case "narrow":
		return 8, seed, nil
	case "full":
		return 1, seed, nil
	}
	return 0, 0, fmt.Errorf("generated weights %q: unknown network %q (want narrow or full)", "generated:"+s, kind)
}

// localCopy returns a local path for name: name itself for a local file, or
// a temporary copy of a file on a Beam filesystem (gs://), removed by
// cleanup.
func localCopy(ctx context.Context, name string) (path string, cleanup func(), err error) {
	if !strings.Contains(name, "://") {
		return name, func() {}, nil
	}
	fs, err := filesystem.New(ctx, name)
	if err != nil {
		return "", nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer fs.Close()
	r, err := fs.OpenRead(ctx, name)
	if err != nil {
		return "", nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer r.Close()
	f, err := os.CreateTemp("", "style-beam-*"+filepath.Ext(name))
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.Remove(f.Name()) }
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		cleanup()
		return "", nil, fmt.Errorf("copy %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}
