package picture_test

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/stylespace/style"
	"github.com/stylespace/style/picture"
)

// A t-SNE map: the embeddings of 40 items in four groups are projected to
// 2-D with style.TSNE, and each item's picture (here a tile of its group's
// colour) is placed on a grid of free cells near its point.
func ExampleWriteMap() {
	colours := []color.RGBA{{200, 40, 40, 255}, {40, 160, 70, 255}, {40, 70, 200, 255}, {230, 180, 30, 255}}
	rng := rand.New(rand.NewPCG(1, 2))
	const n, dim = 40, 16
	emb := &style.Matrix{Rows: n, Cols: dim, Data: make([]float32, n*dim)}
	for i := range n {
		for j := range dim {
			emb.Data[i*dim+j] = float32(rng.NormFloat64() * 0.3)
		}
		emb.Data[i*dim+i%4] += 3 // the item's group
	}
	res, err := (&style.TSNE{Perplexity: 8, Seed: 1}).Fit(context.Background(), emb)
	if err != nil {
		log.Fatal(err)
	}

	dir, err := os.MkdirTemp("", "picture-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "map.png")
	placed := 0
	thumb := func(i int) (image.Image, error) {
		placed++
		tile := image.NewRGBA(image.Rect(0, 0, 32, 32))
		for p := 0; p < len(tile.Pix); p += 4 {
			c := colours[i%4]
			tile.Pix[p], tile.Pix[p+1], tile.Pix[p+2], tile.Pix[p+3] = c.R, c.G, c.B, c.A
		}
		return tile, nil
	}
	err = picture.WriteMap(context.Background(), path, res.Y, thumb, &picture.MapOptions{Width: 640, Height: 480, Thumb: 32})
	if err != nil {
		log.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("map %dx%d, %d of %d thumbnails placed\n", cfg.Width, cfg.Height, placed, n)
	// Output: map 640x480, 40 of 40 thumbnails placed
}
