package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
)

// TestMain runs the program itself when the test binary is re-executed
// by TestRecommendSIGTERM.
func TestMain(m *testing.M) {
	cli.RunAsMain("RECOMMEND_TEST_MAIN", "recommend", main)
	os.Exit(m.Run())
}

// TestRecommendJSONAndNames checks -json (flags after others in any
// order), and the product names of -meta in the text and JSON results.
func TestRecommendJSONAndNames(t *testing.T) {
	fashion := fashionDir(t)
	images := filepath.Join(fashion, "images")
	styles := filepath.Join(fashion, "styles.csv")
	meta, err := style.ReadMetadata(styles, "id")
	require.NoError(t, err)
	names := imageNames(t, images)
	dir := t.TempDir()
	catalog := filepath.Join(dir, "c.stylecat")
	common := []string{"-images", images, "-meta", styles, "-catalog", catalog, "-limit", "30", "-weights-divisor", "16", "-quiet", "-sheet", ""}

	out := runOK(t, append(common, "-query", names[3], "-k", "4")...)
	got := parseMatches(t, out)
	require.Len(t, got, 4)
	for _, g := range got {
		want := meta.Value(g.id, "productDisplayName")
		require.NotEmpty(t, want)
		assert.Equal(t, want, g.name, g.id)
	}
	assert.Contains(t, out, "query: catalogue item "+names[3]+" ("+meta.Value(names[3], "articleType")+"): "+meta.Value(names[3], "productDisplayName"))

	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), append([]string{"-json"}, append(common, "-query", names[3], "-k", "4")...), &stdout, &stderr), stderr.String())
	var res Output
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &res), "stdout holds only JSON: %s", stdout.String())
	assert.Equal(t, names[3], res.Query.ID)
	assert.Equal(t, meta.Value(names[3], "productDisplayName"), res.Query.Name)
	require.Len(t, res.Matches, 4)
	for i, m := range res.Matches {
		assert.Equal(t, i+1, m.Rank)
		assert.Equal(t, got[i].id, m.ID)
		assert.Equal(t, got[i].name, m.Name)
		require.NotNil(t, m.Distance)
		assert.InDelta(t, got[i].dist, *m.Distance, 5e-5)
	}
	assert.Contains(t, stderr.String(), "catalogue: ", "messages go to stderr with -json")

	// -name-column "" shows no names; an unknown column is a usage error.
	out = runOK(t, append(common, "-query", names[3], "-k", "2", "-name-column", "")...)
	for _, g := range parseMatches(t, out) {
		assert.Empty(t, g.name)
	}
	err = run(context.Background(), append(common, "-name-column", "nope"), &stdout, &stderr)
	assert.Equal(t, cli.ExitUsage, cli.ExitCode(err, false), "%v", err)
	assert.ErrorContains(t, err, `-name-column "nope"`)

	// Non-finite distances are written as null, never failing the encoder.
	b, err := json.Marshal(Entry{ID: "x", Distance: finite(float64(0) / func() float64 { return 0 }())})
	require.NoError(t, err)
	assert.Equal(t, `{"id":"x"}`, string(b))
}

// TestRecommendCommandLine checks -h, unwritable outputs, a missing image
// folder, and that outputs written into the image folder are not indexed.
func TestRecommendCommandLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &stdout, &stderr)
	assert.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, cli.ExitOK, cli.ExitCode(err, false))
	assert.Contains(t, stderr.String(), "-name-column")

	dir := t.TempDir()
	missing := filepath.Join(dir, "photos")
	err = run(context.Background(), []string{"-images", missing}, &stdout, &stderr)
	assert.EqualError(t, err, "image folder "+missing+" does not exist")

	fashion := fashionDir(t)
	images := imageNames(t, filepath.Join(fashion, "images"))[:6]
	photos := filepath.Join(dir, "shop")
	require.NoError(t, os.Mkdir(photos, 0o777))
	for _, n := range images {
		b, err := os.ReadFile(filepath.Join(fashion, "images", n))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(photos, n), b, 0o644))
	}
	noDir := filepath.Join(dir, "none", "c.stylecat")
	err = run(context.Background(), []string{"-images", photos, "-catalog", noDir}, &stdout, &stderr)
	assert.ErrorContains(t, err, "cannot write "+noDir+": folder "+filepath.Dir(noDir)+" does not exist")
	noSheet := filepath.Join(dir, "none", "s.png")
	err = run(context.Background(), []string{"-images", photos, "-query", images[0], "-sheet", noSheet}, &stdout, &stderr)
	assert.ErrorContains(t, err, "cannot write "+noSheet)

	// Everything in the image folder, run from it with -images ".": the
	// contact sheet written by the first run is not indexed by the second.
	t.Chdir(photos)
	args := []string{"-images", ".", "-weights-divisor", "16", "-quiet", "-query", images[0], "-k", "2"}
	out := runOK(t, args...)
	assert.Contains(t, out, "6 items; this run indexed 6 of 6 images")
	require.FileExists(t, "recommend.png")
	require.FileExists(t, cli.DefaultCatalog)
	out = runOK(t, args...)
	assert.Contains(t, out, "(reused): 6 items; this run indexed 0 of 6 images", "the contact sheet was indexed")
}

// TestRecommendFailureReport indexes a folder whose images are all broken:
// the failure report is written and summarised by cause, and the error
// names it.
func TestRecommendFailureReport(t *testing.T) {
	dir := t.TempDir()
	photos := filepath.Join(dir, "photos")
	require.NoError(t, os.Mkdir(photos, 0o777))
	for i := range 3 {
		require.NoError(t, os.WriteFile(filepath.Join(photos, fmt.Sprintf("%d.jpg", i)), []byte("not a photo"), 0o644))
	}
	catalog := filepath.Join(dir, "out.stylecat")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-images", photos, "-catalog", catalog, "-weights-divisor", "16", "-quiet"}, &stdout, &stderr)
	report := filepath.Join(dir, cli.FailuresFile)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no image of "+photos+" could be indexed (see "+report+")")
	assert.Contains(t, stderr.String(), "failed: 3 of 3 images not readable as images")
	assert.Contains(t, stderr.String(), "all 3 listed in "+report)
	b, rerr := os.ReadFile(report)
	require.NoError(t, rerr)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	assert.Len(t, lines, 4)
	assert.True(t, strings.HasPrefix(lines[1], "0.jpg\t"), lines[1])
}

// TestRecommendSIGTERM runs the program as a subprocess, stops it with
// SIGTERM while it indexes, and checks the exit status 130, the message,
// and that the next run resumes from the catalogue saved on the way out.
func TestRecommendSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the program twice")
	}
	fashion := fashionDir(t)
	dir := t.TempDir()
	catalog := filepath.Join(dir, "c.stylecat")
	args := fmt.Sprintf("-images %s -catalog %s -limit 300 -weights-divisor 8 -workers 1 -sheet %s", filepath.Join(fashion, "images"), catalog, filepath.Join(dir, "s.png"))
	code, errOut, signalled, err := cli.Terminate("RECOMMEND_TEST_MAIN", args, func(line string) bool {
		return strings.Contains(line, "(10%)") // plain progress lines: not a terminal
	})
	require.NoError(t, err)
	require.True(t, signalled, "no progress seen:\n%s", errOut)
	assert.Equal(t, cli.ExitInterrupted, code, errOut)
	assert.Contains(t, errOut, "recommend: interrupted; run the same command again")
	require.FileExists(t, catalog, "nothing saved on the way out")
	assert.NoFileExists(t, cli.JournalPath(catalog), "the journal is folded into the file saved on the way out")

	start := time.Now()
	var out, errs bytes.Buffer
	require.NoError(t, run(context.Background(), append(strings.Fields(args), "-quiet"), &out, &errs), errs.String())
	assert.Regexp(t, `\(reused\): 300 items; this run indexed \d+ of 300 images in \S+, [1-9]\d* already there`, out.String())
	t.Logf("resumed in %s", time.Since(start))
}

// TestRecommendSIGKILL kills the program while it indexes, past the first
// checkpoint of the catalogue's journal (every 1,000 items): the catalogue
// file and its journal hold what was indexed until then, and the next run
// replays the journal, resumes from it, and folds it into the file.
func TestRecommendSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the program twice")
	}
	fashion := fashionDir(t)
	dir := t.TempDir()
	catalog := filepath.Join(dir, "c.stylecat")
	journal := cli.JournalPath(catalog)
	// 2,000 images through the narrowest network take about 3 s here;
	// the kill comes at 60%, past 1,000 items, with 800 to go.
	const total = 2000
	args := fmt.Sprintf("-images %s -catalog %s -limit %d -weights-divisor 64", filepath.Join(fashion, "images"), catalog, total)
	code, errOut, signalled, err := cli.Signal("RECOMMEND_TEST_MAIN", args, syscall.SIGKILL, func(line string) bool {
		return strings.Contains(line, "(60%)") // plain progress lines: not a terminal
	})
	require.NoError(t, err)
	require.True(t, signalled, "no progress seen:\n%s", errOut)
	require.Equal(t, -1, code, "killed, not exited: %s", errOut)
	require.FileExists(t, catalog, "the catalogue file is created before indexing")
	require.FileExists(t, journal)
	c, err := style.LoadCatalog(catalog)
	require.NoError(t, err)
	kept := c.Len()
	assert.GreaterOrEqual(t, kept, 1000, "items of the journal's checkpoints")
	assert.Less(t, kept, total, "the run was killed before the end")

	var out, errs bytes.Buffer
	require.NoError(t, run(context.Background(), append(strings.Fields(args), "-quiet"), &out, &errs), errs.String())
	assert.Contains(t, out.String(), fmt.Sprintf("(reused): %d items; this run indexed %d of %d images", total, total-kept, total))
	assert.Contains(t, out.String(), fmt.Sprintf(", %d already there", kept))
	assert.NoFileExists(t, journal, "folded into the file by Save")
	c, err = style.LoadCatalog(catalog)
	require.NoError(t, err)
	assert.Equal(t, total, c.Len())

	// A run with nothing to index leaves neither a journal nor a
	// rewritten file.
	fi, err := os.Stat(catalog)
	require.NoError(t, err)
	out.Reset()
	require.NoError(t, run(context.Background(), append(strings.Fields(args), "-quiet"), &out, &errs), errs.String())
	assert.Contains(t, out.String(), fmt.Sprintf("(reused): %d items; this run indexed 0 of %d images", total, total))
	assert.NoFileExists(t, journal)
	fi2, err := os.Stat(catalog)
	require.NoError(t, err)
	assert.Equal(t, fi.ModTime(), fi2.ModTime(), "the catalogue was rewritten")
}

// TestRecommendHeadMismatch gives a head trained on another generated
// network next to an existing catalogue: the error is about the head and
// the weights, naming both backbones, not about the catalogue.
func TestRecommendHeadMismatch(t *testing.T) {
	fashion := fashionDir(t)
	dir := t.TempDir()
	catalog := filepath.Join(dir, "c.stylecat")
	base := []string{"-images", filepath.Join(fashion, "images"), "-catalog", catalog, "-limit", "4", "-weights-divisor", "16", "-quiet"}
	runOK(t, base...)
	w, err := style.GenerateWeights(style.VGG16, 9, 16)
	require.NoError(t, err)
	net, err := style.NewNetwork(w, nil)
	require.NoError(t, err)
	head, err := style.NewSiameseHead(&style.HeadConfig{In: net.FeatureLen(), Out: 8, Scale: 100, Backbone: net.Backbone()})
	require.NoError(t, err)
	hp := filepath.Join(dir, "h.safetensors")
	require.NoError(t, head.Save(hp))

	var stdout, stderr bytes.Buffer
	err = run(context.Background(), append(base, "-head", hp), &stdout, &stderr)
	require.ErrorIs(t, err, style.ErrBackboneMismatch)
	assert.Contains(t, err.Error(), "head "+hp+" was trained on generated vgg16 (seed 9, width divisor 16")
	assert.Contains(t, err.Error(), "these weights are generated vgg16 (seed 1, width divisor 16")
	assert.NotContains(t, err.Error(), "catalogue")
}
