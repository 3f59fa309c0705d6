package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		{"other backbone", []string{"-head", wrong, "-weights", cli.NarrowWeights, "-weights-divisor", "8", img1, img2}, style.ErrBackboneMismatch, []string{"cannot be used with the weights", "caffe"}},
		{"corrupt image", []string{"-head", good, "-weights", cli.NarrowWeights, img1, notImage}, style.ErrFormat, []string{"cannot read image " + notImage}},
		{"missing image", []string{"-head", good, "-weights", cli.NarrowWeights, filepath.Join(photos, "nope.jpg"), img2}, os.ErrNotExist, []string{"nope.jpg"}},
		{"image URL 404", []string{"-head", good, "-weights", cli.NarrowWeights, img1, srv.URL + "/x.jpg"}, nil, []string{"cannot read image " + srv.URL + "/x.jpg", "404"}},
		{"one image", []string{"-head", good, img1}, nil, []string{"want two images"}},
		{"not a head", []string{"-head", cli.NarrowWeights, img1, img2}, style.ErrFormat, []string{"head:"}},
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
