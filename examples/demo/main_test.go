package main

import (
	"bytes"
	"context"
	"flag"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
)

// TestDemo runs the demo at a small size and checks that it learns the
// hidden styles and writes every file it announces.
func TestDemo(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-out", out, "-items", "150", "-pair-count", "900", "-epochs", "15", "-quiet"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	m := regexp.MustCompile(`Test AUC: ([0-9.]+) untrained -> ([0-9.]+) trained`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no AUC line in:\n%s", stdout.String())
	}
	before, _ := strconv.ParseFloat(m[1], 64)
	after, _ := strconv.ParseFloat(m[2], 64)
	// The hidden styles are easy to see for a trained head: a trained AUC
	// below 0.9, or no clear gain, means the pipeline is broken.
	if after < 0.9 || after < before+0.1 {
		t.Errorf("test AUC %.3f untrained -> %.3f trained", before, after)
	}
	for _, name := range []string{"report.md", "head.safetensors", "catalog.stylecat"} {
		if fi, err := os.Stat(filepath.Join(out, name)); err != nil || fi.Size() == 0 {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"learning_curves.png", "roc.png", "distances.png", "recommendations.png", "style_map.png", "style_scatter.png"} {
		f, err := os.Open(filepath.Join(out, name))
		if err != nil {
			t.Error(err)
			continue
		}
		cfg, err := png.DecodeConfig(f)
		f.Close()
		if err != nil || cfg.Width < 200 || cfg.Height < 100 {
			t.Errorf("%s: %v, %dx%d", name, err, cfg.Width, cfg.Height)
		}
	}
	// The report embeds every picture the demo writes, by relative path,
	// and states the recommendation result printed above.
	report, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"learning_curves.png", "roc.png", "distances.png", "recommendations.png", "style_map.png", "style_scatter.png"} {
		if !regexp.MustCompile(`!\[[^\]]+\]\(` + regexp.QuoteMeta(name) + `\)`).Match(report) {
			t.Errorf("report.md does not embed %s", name)
		}
	}
	hits := regexp.MustCompile(`  (\d+) of (\d+) share the query's hidden style`).FindStringSubmatch(stdout.String())
	if hits == nil {
		t.Fatalf("no recommendation result in:\n%s", stdout.String())
	}
	if want := "**" + hits[1] + " of " + hits[2] + " recommendations share the query's hidden style**"; !bytes.Contains(report, []byte(want)) {
		t.Errorf("report.md does not state %q:\n%s", want, report)
	}
	if stderr.Len() != 0 {
		t.Errorf("-quiet still wrote to stderr:\n%s", stderr.String())
	}
}

func TestDemoBadFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-items", "3"}, &stdout, &stderr); err == nil {
		t.Error("3 items accepted")
	}
	if err := run(context.Background(), []string{"extra"}, &stdout, &stderr); err == nil {
		t.Error("a stray argument accepted")
	}
}

// TestDemoHeadFitsDefaultModel checks that the head the demo writes
// records the generated network of the shared default model flags, so
// that evaluate, recommend and tsne accept it with their defaults, and
// that the demo accepts flags in any order and -h.
func TestDemoHeadFitsDefaultModel(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-items", "60", "-pair-count", "300", "-epochs", "2", "-quiet", "-out", out}
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "generated vgg16 (seed 1, width divisor 8")
	head, err := style.LoadHead(filepath.Join(out, "head.safetensors"))
	require.NoError(t, err)

	// The network evaluate builds from its default flags.
	fl := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	var mf cli.ModelFlags
	mf.Register(fl, cli.RequiredHead)
	_, err = cli.Parse(fl, nil)
	require.NoError(t, err)
	net, err := mf.Network(context.Background(), io.Discard, cli.NewBars(io.Discard, true))
	require.NoError(t, err)
	assert.NoError(t, cli.CheckHead("head.safetensors", head, net))
	assert.Equal(t, style.Backbone{Arch: style.VGG16, Preprocess: style.PreprocessCaffe, Seed: 1, Divisor: 8}, head.Backbone)

	// Another seed is refused, naming both backbones.
	_, err = cli.Parse(fl, []string{"-weights-seed", "5"})
	require.NoError(t, err)
	other, err := mf.Network(context.Background(), io.Discard, cli.NewBars(io.Discard, true))
	require.NoError(t, err)
	err = cli.CheckHead("head.safetensors", head, other)
	assert.ErrorIs(t, err, style.ErrBackboneMismatch)
	assert.ErrorContains(t, err, "seed 1")
	assert.ErrorContains(t, err, "seed 5")

	err = run(context.Background(), []string{"-h"}, &stdout, &stderr)
	assert.Equal(t, cli.ExitOK, cli.ExitCode(err, false))
	err = run(context.Background(), []string{"-items", "3"}, &stdout, &stderr)
	assert.Equal(t, cli.ExitUsage, cli.ExitCode(err, false))
	notDir := filepath.Join(out, "head.safetensors", "x")
	err = run(context.Background(), []string{"-out", notDir}, &stdout, &stderr)
	assert.ErrorContains(t, err, notDir)
}

// TestDemoReport checks the recommendation result is counted from the
// hidden styles and the verdicts, and the pictures are linked by the
// relative names given.
func TestDemoReport(t *testing.T) {
	query := item{ID: "item0000", Category: "shirt", Style: 5}
	recs := []recommendation{
		{item: item{ID: "item0001", Category: "hat", Style: 5}, distance: 0.2, verdict: style.Compatible, sameStyle: true},
		{item: item{ID: "item0002", Category: "bag", Style: 7}, distance: 0.5, verdict: style.Compatible},
		{item: item{ID: "item0003", Category: "shoe", Style: 5}, distance: 0.9, verdict: style.Incompatible, sameStyle: true},
	}
	md := demoReport(query, recs, 0.6, "recommendations.png", []string{"style_map.png", "style_scatter.png"})
	for _, want := range []string{
		"**2 of 3 recommendations share the query's hidden style** (rust/stripes)",
		"2 of 3 are within the cutoff 0.6000.",
		"| item0002 | bag | rust/checks | 0.5000 | yes |",
		"| item0003 | shoe | rust/stripes (same) | 0.9000 | no |",
		"![Recommendations for item0000](recommendations.png)",
		"![style map](style_map.png)",
		"![style scatter](style_scatter.png)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report section lacks %q:\n%s", want, md)
		}
	}
}

// TestDemoCompare runs both backbones on the same small data and checks
// the side-by-side table against what each run wrote: one row per
// backbone, its feature length, the store's size on disk per item, a
// positive time per image, and each folder's head recording its own
// backbone.
func TestDemoCompare(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"-compare", "-out", out, "-items", "100", "-pair-count", "600", "-epochs", "8", "-quiet"}
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "Side by side, on the same 100 products and 600 pairs")

	md, err := os.ReadFile(filepath.Join(out, "comparison.md"))
	require.NoError(t, err)
	row := regexp.MustCompile(`(?m)^\| generated (\w+) \(seed 1, width divisor 8[^|]*\| (\d+) \| (\d+) \| ([0-9.]+ ms|reused) \| ([0-9.]+) \| ([0-9.]+) \|`)
	rows := row.FindAllStringSubmatch(string(md), -1)
	require.Len(t, rows, 2, "comparison.md:\n%s", md)
	want := map[string]int{"vgg16": 3136, "resnet50": 256} // 512 / 8 x 7 x 7 and 2,048 / 8 floats
	for i, r := range rows {
		arch := r[1]
		assert.Equal(t, string(compared[i]), arch, "row order")
		features, _ := strconv.Atoi(r[2])
		assert.Equal(t, want[arch], features, arch)

		// The store on disk: per stored image, a record of a 256-byte
		// header (the name, checks) and the float16 features, plus the
		// image's entry in index.json (under 64 bytes for these names).
		perItem, _ := strconv.Atoi(r[3])
		store, err := style.OpenFeatureStore(filepath.Join(out, arch, "features"), &style.StoreOptions{ReadOnly: true})
		require.NoError(t, err)
		n := store.Len()
		require.NoError(t, store.Close())
		size, err := folderSize(filepath.Join(out, arch, "features"))
		require.NoError(t, err)
		assert.InDelta(t, float64(size)/float64(n), float64(perItem), 0.5, arch)
		assert.GreaterOrEqual(t, perItem, 2*features+256, arch)
		assert.Less(t, perItem, 2*features+256+64, arch)

		ms, err := strconv.ParseFloat(strings.TrimSuffix(r[4], " ms"), 64)
		require.NoError(t, err, "%s: extraction per image %q on the first run", arch, r[4])
		assert.Greater(t, ms, 0.0, arch)
		for _, auc := range r[5:7] {
			v, _ := strconv.ParseFloat(auc, 64)
			assert.True(t, v >= 0 && v <= 1, "%s AUC %s", arch, auc)
		}

		head, err := style.LoadHead(filepath.Join(out, arch, "head.safetensors"))
		require.NoError(t, err)
		assert.Equal(t, style.Arch(arch), head.Backbone.Arch)
		assert.FileExists(t, filepath.Join(out, arch, "report.md"))
		assert.FileExists(t, filepath.Join(out, arch, "catalog.stylecat"))
	}
	// The generated styles are easy for VGG16's features: the trained
	// head must see them (as in TestDemo).
	vggAUC, _ := strconv.ParseFloat(rows[0][6], 64)
	assert.Greater(t, vggAUC, 0.9)

	// A second run into the same folder reuses the feature stores and
	// computes no features: the bytes per item are still the store's
	// size over the images in it.
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	md, err = os.ReadFile(filepath.Join(out, "comparison.md"))
	require.NoError(t, err)
	again := row.FindAllStringSubmatch(string(md), -1)
	require.Len(t, again, 2, "comparison.md after a second run:\n%s", md)
	for i := range rows {
		assert.Equal(t, rows[i][3], again[i][3], "%s: bytes per item after a second run", rows[i][1])
		assert.Equal(t, "reused", again[i][4], "%s: extraction per image when no features were computed", rows[i][1])
	}

	// -compare runs every backbone: a weight file or a backbone is a
	// usage error.
	for _, bad := range [][]string{{"-compare", "-weights", "w.safetensors"}, {"-compare", "-backbone", "resnet50"}} {
		err := run(context.Background(), append(bad, "-out", t.TempDir()), &stdout, &stderr)
		assert.Equal(t, cli.ExitUsage, cli.ExitCode(err, false), "%v: %v", bad, err)
	}
}
