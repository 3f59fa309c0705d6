package style_test

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

	"github.com/stylespace/style"
)

// memImages is an ImageSource holding encoded images in memory.
type memImages map[string][]byte

func (m memImages) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	b, ok := m[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// productPNG draws a 64x64 product: a block of colour c, striped or
// plain, on white.
func productPNG(c color.RGBA, striped bool, size int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			px := color.RGBA{255, 255, 255, 255}
			if x >= 32-size && x < 32+size && y >= 32-size && y < 32+size {
				px = c
				if striped && y/4%2 == 0 {
					px = color.RGBA{240, 240, 240, 255}
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

// A catalogue is built from images (here drawn in memory, usually a
// DirSource or URLSource) by a feature extractor and a head, then asked
// for the items nearest to one of its own. The network and head here have
// generated weights, so distances measure how alike the pictures look.
func ExampleCatalog_AddImages() {
	src := memImages{}
	var names []string
	colours := map[string]color.RGBA{"red": {200, 30, 30, 255}, "green": {30, 150, 60, 255}, "blue": {30, 60, 200, 255}}
	for _, cn := range []string{"red", "green", "blue"} {
		for _, striped := range []bool{false, true} {
			for _, size := range []int{14, 22} {
				name := fmt.Sprintf("%s-%s-%d.png", cn, map[bool]string{false: "plain", true: "striped"}[striped], size)
				src[name] = productPNG(colours[cn], striped, size)
				names = append(names, name)
			}
		}
	}
	w, err := style.GenerateWeights(style.VGG16, 1, 16) // 1/16 of VGG16's widths
	if err != nil {
		log.Fatal(err)
	}
	net, err := style.NewNetwork(w, nil)
	if err != nil {
		log.Fatal(err)
	}
	head, err := style.NewSiameseHead(&style.HeadConfig{In: net.FeatureLen(), Out: 32, Seed: 1, Scale: 100, Backbone: net.Backbone()})
	if err != nil {
		log.Fatal(err)
	}

	cat := &style.Catalog{}
	rep, err := cat.AddImages(context.Background(), src, names, net, head, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("items:", cat.Len(), "embedding length:", cat.Dim(), "failed:", len(rep.Failed))
	matches, err := cat.RecommendItem("red-plain-22.png", 3, &style.RecommendOptions{ExcludeID: "red-plain-22.png"})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range matches {
		fmt.Printf("%-18s %.3f\n", m.ID, m.Distance)
	}
	// Output:
	// items: 12 embedding length: 32 failed: 0
	// green-plain-22.png 0.835
	// red-plain-14.png   1.176
	// blue-plain-22.png  1.231
}
