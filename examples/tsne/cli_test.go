package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
)

// TestTSNEReusesCatalogue maps a folder from inside it (-images .) twice:
// the second run reuses the catalogue (recommend's default file) and
// indexes nothing, the pictures written into the folder by the first run
// included, and t-SNE maps every item of the catalogue.
func TestTSNEReusesCatalogue(t *testing.T) {
	fashion := fashionDir(t)
	src, err := style.NewDirSource(filepath.Join(fashion, "images"))
	require.NoError(t, err)
	names, err := src.Names()
	src.Close()
	require.NoError(t, err)
	dir := t.TempDir()
	for _, n := range names[:12] {
		b, err := os.ReadFile(filepath.Join(fashion, "images", n))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), b, 0o644))
	}
	t.Chdir(dir)
	args := []string{"-images", ".", "-weights-divisor", "16", "-quiet", "-perplexity", "3", "-iterations", "100",
		"-width", "200", "-height", "200", "-scatter-width", "300", "-scatter-height", "300"}
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), cli.DefaultCatalog+": 12 items; this run indexed 12 of 12 images")
	require.FileExists(t, "tsne_map.png")
	require.FileExists(t, "tsne_scatter.png")

	stdout.Reset()
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "(reused): 12 items; this run indexed 0 of 12 images")
	assert.NoFileExists(t, cli.JournalPath(cli.DefaultCatalog), "the catalogue's journal is folded in or removed")
	assert.Regexp(t, `t-SNE: 12 points of 1568 values`, stdout.String())

	err = run(context.Background(), []string{"-h"}, &stdout, &stderr)
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, cli.ExitOK, cli.ExitCode(err, false))
	err = run(context.Background(), []string{"-images", ".", "-map", filepath.Join("none", "m.png")}, &stdout, &stderr)
	assert.ErrorContains(t, err, "cannot write "+filepath.Join("none", "m.png"))
}
