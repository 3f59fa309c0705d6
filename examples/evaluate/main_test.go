package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
)

const photos = "../../../shared/images"

// setup returns the narrow VGG16 and the expected distance between the two
// "matching" photos under a head made for it (seed 1, scale 5), computed
// through the library directly.
func setup(t *testing.T) (vgg *style.Network, img1, img2 string, head *style.SiameseHead, dist float64) {
	t.Helper()
	for _, p := range []string{photos, cli.NarrowWeights} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("reference data %s absent: %v", p, err)
		}
	}
	vgg, err := cli.LoadNetwork(cli.NarrowWeights, "auto", 8)
	if err != nil {
		t.Fatal(err)
	}
	head, err = style.NewSiameseHead(&style.HeadConfig{In: vgg.FeatureLen(), Seed: 1, Scale: 5, Backbone: vgg.Backbone()})
	if err != nil {
		t.Fatal(err)
	}
	img1, img2 = filepath.Join(photos, "matching_1.jpg"), filepath.Join(photos, "matching_2.jpg")
	var f [2][]float32
	for i, p := range []string{img1, img2} {
		im, err := style.LoadImage(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		if f[i], err = vgg.Features(im); err != nil {
			t.Fatal(err)
		}
	}
	dist, _, err = head.Compare(f[0], f[1])
	if err != nil {
		t.Fatal(err)
	}
	return vgg, img1, img2, head, dist
}

func saveHead(t *testing.T, h *style.SiameseHead) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "head.safetensors")
	if err := h.Save(p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEvaluateVerdicts checks the distance and both verdicts, in text and
// JSON, with the images given as files and as URLs of a test server.
func TestEvaluateVerdicts(t *testing.T) {
	_, img1, img2, head, dist := setup(t)
	srv := httptest.NewServer(http.FileServer(http.Dir(photos)))
	defer srv.Close()

	for _, tc := range []struct {
		cutoff float64
		want   style.Verdict
	}{{dist * 1.5, style.Compatible}, {dist / 2, style.Incompatible}} {
		head.Cutoff = tc.cutoff
		hp := saveHead(t, head)
		base := []string{"-head", hp, "-weights", cli.NarrowWeights, "-weights-divisor", "8"}

		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), append(base, img1, img2), &stdout, &stderr); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		want := fmt.Sprintf("Distance: %.4f (cutoff %.4f: compatible at or below)\n%s\n", dist, tc.cutoff, tc.want)
		if stdout.String() != want {
			t.Errorf("output %q, want %q", stdout.String(), want)
		}

		stdout.Reset()
		u1, u2 := srv.URL+"/matching_1.jpg", srv.URL+"/matching_2.jpg"
		if err := run(context.Background(), append(base, "-json", u1, u2), &stdout, &stderr); err != nil {
			t.Fatalf("-json with URLs: %v\n%s", err, stderr.String())
		}
		var got Result
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatalf("-json output %q does not parse: %v", stdout.String(), err)
		}
		// The same bytes decode to the same image and features, so the
		// distance is bit-identical to the file-path run.
		wantRes := Result{Image1: u1, Image2: u2, Distance: dist, Cutoff: tc.cutoff,
			Compatible: tc.want == style.Compatible, Verdict: tc.want.String()}
		if got != wantRes {
			t.Errorf("-json: got %+v, want %+v", got, wantRes)
		}
	}
}

// TestEvaluateErrors checks the messages for a missing head, a head trained
// on another backbone, unreadable images and a wrong argument count.
func TestEvaluateErrors(t *testing.T) {
	_, img1, img2, head, _ := setup(t)
	good := saveHead(t, head)
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	notImage := filepath.Join(t.TempDir(), "notes.jpg")
	os.WriteFile(notImage, []byte("these are not pixels"), 0o644)

	other := *head
	other.Backbone = style.Backbone{Arch: "vgg16", Preprocess: style.PreprocessCaffe, SHA256: strings.Repeat("ab", 32)}
	wrong := saveHead(t, &other)

	missing := filepath.Join(t.TempDir(), "none.safetensors")
	for _, tc := range []struct {
		name   string
		args   []string
		is     error
		phrase []string
	}{
		{"missing head", []string{"-head", missing, img1, img2}, nil, []string{"no trained head at " + missing, "-head"}},
		{"other backbone", []string{"-head", wrong, "-weights", cli.NarrowWeights, "-weights-divisor", "8", img1, img2}, style.ErrBackboneMismatch, []string{"head " + wrong + " was trained on vgg16 weight file with SHA-256 abababababab", "these weights are", "caffe"}},
		{"corrupt image", []string{"-head", good, "-weights", cli.NarrowWeights, img1, notImage}, style.ErrFormat, []string{"cannot read image " + notImage}},
		{"missing image", []string{"-head", good, "-weights", cli.NarrowWeights, filepath.Join(photos, "nope.jpg"), img2}, os.ErrNotExist, []string{"nope.jpg"}},
		{"image URL 404", []string{"-head", good, "-weights", cli.NarrowWeights, img1, srv.URL + "/x.jpg"}, nil, []string{"cannot read image " + srv.URL + "/x.jpg", "404"}},
		{"one image", []string{"-head", good, img1}, nil, []string{"want two images"}},
		{"not a head", []string{"-head", cli.NarrowWeights, img1, img2}, style.ErrFormat, []string{cli.NarrowWeights}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("no error; output %q", stdout.String())
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not match %v", err, tc.is)
			}
			for _, p := range tc.phrase {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("error %q does not say %q", err, p)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("printed a result despite the error: %q", stdout.String())
			}
		})
	}
}

// TestEvaluateHelpAndFlagOrder checks that -h is not an error for the exit
// status, and that flags are accepted after the image arguments.
func TestEvaluateHelpAndFlagOrder(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, &stdout, &stderr)
	require.ErrorIs(t, err, flag.ErrHelp)
	assert.Equal(t, cli.ExitOK, cli.ExitCode(err, false))
	assert.Contains(t, stderr.String(), "Usage: evaluate")
	assert.Contains(t, stderr.String(), "-weights-seed")

	err = run(context.Background(), []string{"a.jpg", "-nope"}, &stdout, &stderr)
	assert.Equal(t, cli.ExitUsage, cli.ExitCode(err, false), "%v", err)

	_, img1, img2, head, dist := setup(t)
	hp := saveHead(t, head)
	stdout.Reset()
	args := []string{img1, img2, "-json", "-head", hp, "-weights", cli.NarrowWeights, "-weights-divisor", "8"}
	require.NoError(t, run(context.Background(), args, &stdout, &stderr), stderr.String())
	var got Result
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got), stdout.String())
	assert.Equal(t, dist, got.Distance)
	assert.Equal(t, img1, got.Image1)
}

// generatedHead returns a head trained (here: made) on the generated
// network of the given seed, width divisor 8, as examples/demo records it.
func generatedHead(t *testing.T, seed uint64) (string, *style.Network) {
	t.Helper()
	w, err := style.GenerateWeights(style.VGG16, seed, 8)
	require.NoError(t, err)
	net, err := style.NewNetwork(w, nil)
	require.NoError(t, err)
	head, err := style.NewSiameseHead(&style.HeadConfig{In: net.FeatureLen(), Seed: 1, Scale: 5, Backbone: net.Backbone()})
	require.NoError(t, err)
	return saveHead(t, head), net
}

// TestEvaluateGeneratedNetwork runs offline without -weights: a head made
// on the generated network of the default flags (seed 1, divisor 8, those
// of examples/demo) is accepted, and one made on another seed is refused
// with both backbones named.
func TestEvaluateGeneratedNetwork(t *testing.T) {
	img1, img2 := filepath.Join(photos, "matching_1.jpg"), filepath.Join(photos, "matching_2.jpg")
	if _, err := os.Stat(img1); err != nil {
		t.Skipf("reference photos absent: %v", err)
	}
	hp, _ := generatedHead(t, 1)
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-head", hp, img1, img2}, &stdout, &stderr), stderr.String())
	assert.Contains(t, stdout.String(), "Distance: ")
	assert.Contains(t, stderr.String(), "generated vgg16 (seed 1, width divisor 8")
	assert.Contains(t, stderr.String(), "not\n  learned on ImageNet", "the generated network is not announced as such")

	other, _ := generatedHead(t, 2)
	stdout.Reset()
	err := run(context.Background(), []string{"-head", other, img1, img2}, &stdout, &stderr)
	require.ErrorIs(t, err, style.ErrBackboneMismatch)
	assert.Contains(t, err.Error(), "head "+other+" was trained on generated vgg16 (seed 2, width divisor 8")
	assert.Contains(t, err.Error(), "these weights are generated vgg16 (seed 1, width divisor 8")
	assert.Empty(t, stdout.String())
	// The same head with its own seed is accepted.
	require.NoError(t, run(context.Background(), []string{"-head", other, "-weights-seed", "2", img1, img2}, &stdout, &stderr))
}

// TestEvaluateTimeoutFlag: a timeout that leaves no time is a usage error
// naming the flag, not a failure blamed on the first image.
func TestEvaluateTimeoutFlag(t *testing.T) {
	for _, v := range []string{"0", "-1s"} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"-timeout", v, "a.jpg", "b.jpg"}, &stdout, &stderr)
		require.Error(t, err, "-timeout %s", v)
		assert.ErrorContains(t, err, "-timeout")
		assert.NotContains(t, err.Error(), "a.jpg")
	}
}

// TestEvaluateDeepHead scores a pair with a head that has hidden layers:
// the programs check the features the head takes (its first hidden
// layer's input), not its embedding layer's, and the distance is the
// library's.
func TestEvaluateDeepHead(t *testing.T) {
	img1, img2 := filepath.Join(photos, "matching_1.jpg"), filepath.Join(photos, "matching_2.jpg")
	if _, err := os.Stat(img1); err != nil {
		t.Skipf("reference photos absent: %v", err)
	}
	w, err := style.GenerateWeights(style.VGG16, 1, 8)
	require.NoError(t, err)
	net, err := style.NewNetwork(w, nil)
	require.NoError(t, err)
	head, err := style.NewSiameseHead(&style.HeadConfig{In: net.FeatureLen(), Hidden: []int{64}, Out: 16, Seed: 1, Scale: 5, Backbone: net.Backbone()})
	require.NoError(t, err)
	hp := saveHead(t, head)
	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-json", "-head", hp, img1, img2}, &stdout, &stderr), stderr.String())
	var got struct{ Distance float64 }
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got), stdout.String())
	a, err := style.LoadImage(context.Background(), img1)
	require.NoError(t, err)
	b, err := style.LoadImage(context.Background(), img2)
	require.NoError(t, err)
	fa, err := net.Features(a)
	require.NoError(t, err)
	fb, err := net.Features(b)
	require.NoError(t, err)
	want, _, err := head.Compare(fa, fb)
	require.NoError(t, err)
	assert.InEpsilon(t, want, got.Distance, 1e-9, "distance of the deep head")
}

// TestEvaluatePairs scores a pair list in one run, as CSV and as JSON
// lines, with one pair naming a missing image: the rows keep the input
// order, the good pairs have exactly the distances of single runs, and the
// bad pair has an error and no distance.
func TestEvaluatePairs(t *testing.T) {
	_, _, _, head, dist := setup(t)
	hp := saveHead(t, head)
	dir := t.TempDir()
	list := filepath.Join(dir, "pairs.csv")
	require.NoError(t, os.WriteFile(list, []byte("pic1;pic2;score\nmatching_1.jpg;matching_2.jpg;1\nnot_matching_1.jpg;gone.jpg;0\nmatching_2.jpg;matching_1.jpg;1\n"), 0o644))
	base := []string{"-pairs", list, "-images", photos, "-head", hp, "-weights", cli.NarrowWeights, "-weights-divisor", "8", "-workers", "2", "-quiet"}

	var stdout, stderr bytes.Buffer
	require.NoError(t, run(context.Background(), base, &stdout, &stderr), stderr.String())
	recs, err := csv.NewReader(&stdout).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 4)
	assert.Equal(t, csvHeader, recs[0])
	assert.Equal(t, []string{"2", "matching_1.jpg", "matching_2.jpg", "1"}, recs[1][:4])
	assert.Equal(t, strconv.FormatFloat(dist, 'g', -1, 64), recs[1][4])
	assert.Equal(t, recs[1][4], recs[3][4], "the distance is symmetric")
	assert.Equal(t, "gone.jpg", recs[2][2])
	assert.Empty(t, recs[2][4])
	assert.Contains(t, recs[2][8], "gone.jpg")
	assert.Empty(t, recs[1][8])
	assert.Contains(t, stderr.String(), "scored 2 of 3 pairs")
	assert.Contains(t, stderr.String(), "failed: 1 of 4 images not found in "+photos)

	// JSON lines to a file, the flags after -pairs' value in any order.
	out := filepath.Join(dir, "rows.jsonl")
	stdout.Reset()
	require.NoError(t, run(context.Background(), append(base, "-json", "-out", out), &stdout, &stderr))
	assert.Empty(t, stdout.String())
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	require.Len(t, lines, 3)
	var rows [3]Row
	for i, l := range lines {
		require.NoError(t, json.Unmarshal([]byte(l), &rows[i]), l)
	}
	require.NotNil(t, rows[0].Distance)
	assert.Equal(t, dist, *rows[0].Distance)
	assert.Equal(t, head.Cutoff, rows[0].Cutoff)
	assert.Nil(t, rows[1].Distance)
	assert.Nil(t, rows[1].Compatible)
	assert.Contains(t, rows[1].Error, "gone.jpg")
	assert.NotContains(t, lines[1], "distance")
	assert.Equal(t, 4, rows[2].Line)
}

// TestEvaluatePairsErrors checks that outputs and folders are checked
// before the model is loaded, naming the path at fault.
func TestEvaluatePairsErrors(t *testing.T) {
	_, _, _, head, _ := setup(t)
	hp := saveHead(t, head)
	dir := t.TempDir()
	list := filepath.Join(dir, "pairs.csv")
	require.NoError(t, os.WriteFile(list, []byte("matching_1.jpg;matching_2.jpg;1\n"), 0o644))
	var stdout, stderr bytes.Buffer
	noDir := filepath.Join(dir, "none", "rows.csv")
	err := run(context.Background(), []string{"-pairs", list, "-images", photos, "-head", hp, "-out", noDir}, &stdout, &stderr)
	assert.ErrorContains(t, err, "cannot write "+noDir)
	missing := filepath.Join(dir, "photos")
	err = run(context.Background(), []string{"-pairs", list, "-images", missing, "-head", hp}, &stdout, &stderr)
	assert.EqualError(t, err, "image folder "+missing+" does not exist")
	err = run(context.Background(), []string{"-pairs", filepath.Join(dir, "nope.csv"), "-head", hp}, &stdout, &stderr)
	assert.ErrorContains(t, err, "nope.csv")
	err = run(context.Background(), []string{"-pairs", list, "-head", hp, "a.jpg"}, &stdout, &stderr)
	assert.Equal(t, cli.ExitUsage, cli.ExitCode(err, false))
	assert.Empty(t, stdout.String())
}
