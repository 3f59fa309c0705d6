package study_test

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"log"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/stylespace/style"
	"github.com/stylespace/style/study"
)

// memImages is a style.ImageSource holding encoded images in memory.
type memImages map[string][]byte

func (m memImages) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	b, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// drawProduct draws a 64x64 product of a style (its colour and whether it
// is striped), its size and position varied by rng.
func drawProduct(style int, rng *rand.Rand) []byte {
	colours := []color.RGBA{{190, 40, 40, 255}, {40, 140, 70, 255}, {40, 60, 190, 255}, {220, 170, 30, 255}}
	c, striped := colours[style%4], style >= 4
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	half := 14 + rng.IntN(10)
	cx, cy := 32+rng.IntN(9)-4, 32+rng.IntN(9)-4
	for y := range 64 {
		for x := range 64 {
			px := color.RGBA{255, 255, 255, 255}
			if x >= cx-half && x < cx+half && y >= cy-half && y < cy+half {
				px = c
				if striped && y/4%2 == 0 {
					px = color.RGBA{245, 245, 245, 255}
				}
			}
			img.SetRGBA(x, y, px)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		log.Fatal(err)
	}
	return buf.Bytes()
}

// A whole study, on 48 drawn products of 8 hidden styles (4 colours,
// plain or striped) and pairs labelled compatible when the styles agree:
// features from a generated 1/16-width VGG16, a trained and evaluated
// head, charts and a report. Run prints nothing; the numbers are in the
// Result and the report.
func ExampleRun() {
	rng := rand.New(rand.NewPCG(1, 1))
	src := memImages{}
	styleOf := map[string]int{}
	var names []string
	for i := range 48 {
		name := fmt.Sprintf("item%02d.png", i)
		styleOf[name] = i % 8
		src[name] = drawProduct(i%8, rng)
		names = append(names, name)
	}
	var pairs []style.Pair
	for i, a := range names {
		for _, b := range names[i+1:] {
			same := styleOf[a] == styleOf[b]
			if same || rng.IntN(6) == 0 { // all compatible pairs, a sample of the rest
				p := style.Pair{A: a, B: b}
				if same {
					p.Label = 1
				}
				pairs = append(pairs, p)
			}
		}
	}

	w, err := style.GenerateWeights(style.VGG16, 1, 16)
	if err != nil {
		log.Fatal(err)
	}
	net, err := style.NewNetwork(w, nil)
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "study-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	res, err := study.Run(context.Background(), &study.Config{
		Pairs:     pairs,
		Images:    src,
		Extractor: net,
		StoreDir:  filepath.Join(dir, "features"),
		OutDir:    filepath.Join(dir, "out"),
		Seed:      1,
		HeadOut:   16,
		Trainer:   &style.Trainer{Epochs: 100, Patience: 10, Seed: 1},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d pairs: %d training, %d validation, %d test\n", res.Pairs, len(res.Train), len(res.Val), len(res.Test))
	// Two decimals: the AUC counts ranked pairs, and the last digits of
	// the distances, which differ between the AVX-512, AVX2 and pure-Go
	// kernels, move it by less than 0.002.
	fmt.Printf("test AUC: %.2f untrained, %.2f trained\n", res.UntrainedROC.AUC(), res.ROC.AUC())
	for _, name := range slices.Sorted(maps.Keys(res.Files)) {
		fmt.Println(name)
	}
	// Output:
	// 284 pairs: 170 training, 57 validation, 57 test
	// test AUC: 0.47 untrained, 0.99 trained
	// distances.png
	// head.safetensors
	// learning_curves.png
	// report.md
	// roc.png
}
