package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/stylespace/style"
)

// saveCatalog saves the embeddings as a recommendation catalogue at the
// local path.
func saveCatalog(path string, spec ModelSpec, m *model, items []Result) error {
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
	if err := c.Save(path); err != nil {
		return fmt.Errorf("catalogue: %w", err)
	}
	return nil
}

// publishDir copies the files of the local folder dir, and of its
// subfolders, to dst on a Beam filesystem, the file called last (in dir)
// after all others.
func publishDir(ctx context.Context, dir, dst, last string) error {
	fsys, err := filesystem.New(ctx, dst)
	if err != nil {
		return err
	}
	defer fsys.Close()
	var files []string
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return err
	}
	// The last file goes last: sort it after every other.
	slices.SortStableFunc(files, func(a, b string) int {
		switch {
		case a == last && b != last:
			return 1
		case b == last && a != last:
			return -1
		}
		return strings.Compare(a, b)
	})
	for _, rel := range files {
		if err := copyToFS(ctx, fsys, filepath.Join(dir, filepath.FromSlash(rel)), joinPath(dst, path.Clean(rel))); err != nil {
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
