package cli

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stylespace/style"
)

func TestBars(t *testing.T) {
	var buf bytes.Buffer
	b := NewBars(&buf, false)
	b.plain = false // draw bars as on a terminal
	for i := range 4 {
		b.Update(style.Progress{Stage: "features", Done: int64(i), Total: 3})
	}
	b.Update(style.Progress{Stage: "train", Done: 1, Total: 5, Loss: 0.25, ValLoss: 0.5})
	b.Update(style.Progress{Stage: "download", Done: 10})
	b.Finish()
	out := buf.String()
	for _, want := range []string{"features", "(3/3)", "loss 0.2500 val 0.5000", "(1/5", "downloading"} {
		if !strings.Contains(out, want) {
			t.Errorf("progress output lacks %q:\n%q", want, out)
		}
	}
	// Not a terminal: plain lines at each tenth, each epoch and the end.
	var plain bytes.Buffer
	p := NewBars(&plain, false)
	for i := range 101 {
		p.Update(style.Progress{Stage: "features", Done: int64(i), Total: 100})
	}
	p.Update(style.Progress{Stage: "train", Done: 1, Total: 5, Loss: 0.25, ValLoss: 0.5})
	p.Update(style.Progress{Stage: "train", Done: 2, Total: 5, Loss: 0.2, ValLoss: 0.4})
	p.Finish()
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 11+2 || lines[0] != "features: 0/100 (0%)" || lines[10] != "features: 100/100 (100%)" ||
		lines[12] != "training: 2/5 (40%) loss 0.2000 val 0.4000" {
		t.Errorf("plain progress:\n%s", plain.String())
	}

	var quiet bytes.Buffer
	q := NewBars(&quiet, true)
	q.Update(style.Progress{Stage: "features", Done: 1, Total: 3})
	q.Finish()
	if quiet.Len() != 0 {
		t.Errorf("quiet bars wrote %q", quiet.String())
	}
}

func TestFetch(t *testing.T) {
	var pngData bytes.Buffer
	png.Encode(&pngData, image.NewGray(image.Rect(0, 0, 7, 5)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/img.png":
			w.Write(pngData.Bytes())
		case "/big":
			w.Write(make([]byte, 2048))
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "/pairs.csv":
			w.Write([]byte("a.jpg,b.jpg,1\n"))
		default:
			http.Error(w, "boom", http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	ctx := context.Background()

	img, err := LoadImage(ctx, nil, srv.URL+"/img.png", time.Second)
	if err != nil || img.Bounds().Dx() != 7 || img.Bounds().Dy() != 5 {
		t.Errorf("LoadImage: %v, %v; want a 7x5 image", img, err)
	}
	if _, err := Fetch(ctx, nil, srv.URL+"/big", time.Second, 1024); err == nil || !strings.Contains(err.Error(), "more than 1024 bytes") {
		t.Errorf("oversized body: %v", err)
	}
	if _, err := Fetch(ctx, nil, srv.URL+"/err", time.Second, 1024); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("HTTP 500: %v", err)
	}
	start := time.Now()
	if _, err := Fetch(ctx, nil, srv.URL+"/slow", 100*time.Millisecond, 1024); err == nil {
		t.Error("slow server: no error")
	} else if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout of 100ms took %v", d)
	}
	pairs, err := ReadPairs(ctx, nil, srv.URL+"/pairs.csv", time.Second)
	if err != nil || len(pairs) != 1 || pairs[0] != (style.Pair{A: "a.jpg", B: "b.jpg", Label: 1, Line: 1}) {
		t.Errorf("ReadPairs over HTTP: %+v, %v", pairs, err)
	}
	if !IsURL("https://x/y") || IsURL("http:/x") || IsURL("file.jpg") {
		t.Error("IsURL")
	}
}

func TestWeightsLocalFile(t *testing.T) {
	b := NewBars(&bytes.Buffer{}, true)
	if _, err := Weights(context.Background(), filepath.Join(t.TempDir(), "none.safetensors"), "", b); err == nil || !os.IsNotExist(errUnwrapAll(err)) {
		t.Errorf("missing weight file: %v", err)
	}
}

func errUnwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

// TestFashionPairs checks the generated pair list on the reference
// catalogue: both labels, names that exist, and the rule for each label.
func TestFashionPairs(t *testing.T) {
	dir := "../" + FashionDir
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("reference catalogue %s absent: %v", dir, err)
	}
	rows, names, err := FashionPairs(dir, 30)
	if err != nil {
		t.Fatal(err)
	}
	pairs, err := style.ParsePairs(strings.NewReader(strings.Join(rows, "\n")), "generated")
	if err != nil {
		t.Fatal(err)
	}
	pos := 0
	for _, p := range pairs {
		pos += p.Label
	}
	if pos == 0 || pos == len(pairs) || len(style.UniqueNames(pairs)) != len(names) {
		t.Errorf("%d pairs, %d compatible, %d names (%d distinct in pairs)", len(pairs), pos, len(names), len(style.UniqueNames(pairs)))
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, "images", n)); err != nil {
			t.Error(err)
		}
	}
}

func TestParseConv(t *testing.T) {
	for _, a := range []style.ConvAlgorithm{style.ConvAuto, style.ConvIm2col, style.ConvWinograd, style.ConvWinograd4x4} {
		got, err := ParseConv(a.String())
		if err != nil || got != a {
			t.Errorf("ParseConv(%q) = %v, %v", a.String(), got, err)
		}
	}
	if _, err := ParseConv("fft"); err == nil || !strings.Contains(err.Error(), "-conv") {
		t.Errorf("ParseConv(fft) = %v, want an error naming -conv", err)
	}
}
