package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/stylespace/style"
)

// Result files and folders, in the output directory.
const (
	featuresDir = "features"         // a style.FeatureStore (style.OpenFeatureStore)
	catalogFile = "catalog.stylecat" // a style.Catalog of the embeddings (style.LoadCatalog), with -head
)

// writeResultsFn writes all results once, from a side input: the features
// into a feature store, the embeddings into a recommendation catalogue.
type writeResultsFn struct {
	Output   string
	Model    ModelSpec
	Features bool // write the feature store
}

func (f *writeResultsFn) ProcessElement(ctx context.Context, _ []byte, iter func(*Result) bool) error {
	// The model tells the feature length and the backbone that the store
	// and the catalogue record; it is the worker's shared one.
	m, err := sharedModel(ctx, f.Model)
	if err != nil {
		return err
	}
	// The features go to the store as they arrive (the store is keyed by
	// name; its record order is not meaningful), so they are never all in
	// memory. The catalogue is small (a few hundred bytes per item): it is
	// sorted by image so that the file does not depend on how the work was
	// split.
	var store *style.FeatureStore
	storeDir, cleanup, err := localDir(f.Output, featuresDir)
	if err != nil {
		return err
	}
	defer cleanup()
	if f.Features {
		store, err = style.OpenFeatureStore(storeDir, &style.StoreOptions{Dim: m.ext.FeatureLen(), Backbone: m.ext.Backbone()})
		if err != nil {
			return err
		}
		defer store.Close()
	}
	var (
		items []Result
		dups  int
		r     Result
	)
	for iter(&r) {
		if store != nil {
			if _, err := store.Put(r.Image, r.Features); err != nil {
				if !errors.Is(err, fs.ErrExist) {
					return fmt.Errorf("feature store: %w", err)
				}
				dups++ // stored by an earlier run, or listed twice with different categories
			}
		}
		if r.Embedding != nil {
			items = append(items, Result{Image: r.Image, Category: r.Category, Embedding: r.Embedding})
		}
		r = Result{}
	}
	if dups > 0 {
		log.Infof(ctx, "feature store %s: %d images already stored, kept as they were", storeDir, dups)
	}
	if store != nil {
		if err := store.Close(); err != nil {
			return err
		}
		if err := publishDir(ctx, storeDir, joinPath(f.Output, featuresDir)); err != nil {
			return err
		}
	}
	if f.Model.Head == "" {
		return nil
	}
	return writeCatalog(ctx, f.Output, f.Model, m, sortResults(items))
}

// writeCatalog writes the embeddings as a recommendation catalogue.
func writeCatalog(ctx context.Context, output string, spec ModelSpec, m *model, items []Result) error {
	b := m.ext.Backbone()
	c := &style.Catalog{Meta: map[string]string{
		"weights":         filepath.Base(spec.Weights),
		"head":            filepath.Base(spec.Head),
		"backbone":        string(b.Arch),
		"preprocess":      string(b.Preprocess),
		"backbone_sha256": b.SHA256,
	}}
	for _, it := range items {
		if err := c.Add(style.Item{ID: it.Image, Category: it.Category, Embedding: it.Embedding}); err != nil {
			return fmt.Errorf("catalogue: %w", err)
		}
	}
	// The catalogue is saved locally, then copied to the output, which
	// may be on a Beam filesystem.
	tmp, err := os.MkdirTemp("", "style-beam-catalog-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	local := filepath.Join(tmp, catalogFile)
	if err := c.Save(local); err != nil {
		return fmt.Errorf("catalogue: %w", err)
	}
	return writeOutput(ctx, joinPath(output, catalogFile), func(w io.Writer) error {
		f, err := os.Open(local)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
}

// localDir returns a local folder for the output subfolder name: the
// folder itself for a local output, a temporary one (removed by cleanup)
// for an output on a Beam filesystem.
func localDir(output, name string) (dir string, cleanup func(), err error) {
	if !strings.Contains(output, "://") {
		dir = filepath.Join(output, name)
		return dir, func() {}, os.MkdirAll(dir, 0o755)
	}
	tmp, err := os.MkdirTemp("", "style-beam-*")
	if err != nil {
		return "", nil, err
	}
	return filepath.Join(tmp, name), func() { os.RemoveAll(tmp) }, nil
}

// publishDir copies the files of the local folder dir to dst on a Beam
// filesystem; it does nothing when dst is dir itself.
func publishDir(ctx context.Context, dir, dst string) error {
	if !strings.Contains(dst, "://") {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	fsys, err := filesystem.New(ctx, dst)
	if err != nil {
		return err
	}
	defer fsys.Close()
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == "lock" {
			continue
		}
		if err := copyToFS(ctx, fsys, filepath.Join(dir, e.Name()), joinPath(dst, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyToFS(ctx context.Context, fsys filesystem.Interface, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	w, err := fsys.OpenWrite(ctx, dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, in); err != nil {
		w.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return w.Close()
}

// sortResults sorts rs by image and category and keeps the first result of
// each image (an image listed twice with different categories is computed
// twice but kept once).
func sortResults(rs []Result) []Result {
	slices.SortFunc(rs, func(a, b Result) int {
		if c := strings.Compare(a.Image, b.Image); c != 0 {
			return c
		}
		return strings.Compare(a.Category, b.Category)
	})
	return slices.CompactFunc(rs, func(a, b Result) bool { return a.Image == b.Image })
}
