package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

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

func TestIsURL(t *testing.T) {
	if !IsURL("https://x/y") || IsURL("http:/x") || IsURL("file.jpg") {
		t.Error("IsURL")
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
	path := filepath.Join(t.TempDir(), "pairs.csv")
	if err := os.WriteFile(path, []byte(strings.Join(rows, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	pairs, err := style.ReadPairs(context.Background(), path)
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
