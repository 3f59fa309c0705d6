package main

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
)

// The demo's products are drawn here, not photographed: each has a category
// (the silhouette) and a style (a palette and a pattern). Items of the same
// style and different categories "go together"; that is the hidden truth
// the head has to learn from features of a randomly initialised network.

var categories = []string{"shirt", "trousers", "shoe", "bag", "hat"}

type palette struct {
	name       string
	main, edge color.NRGBA
}

var palettes = []palette{
	{"navy", color.NRGBA{28, 40, 92, 255}, color.NRGBA{200, 200, 210, 255}},
	{"rust", color.NRGBA{170, 70, 30, 255}, color.NRGBA{240, 210, 160, 255}},
	{"forest", color.NRGBA{30, 100, 50, 255}, color.NRGBA{220, 190, 90, 255}},
	{"blush", color.NRGBA{235, 160, 170, 255}, color.NRGBA{120, 40, 70, 255}},
	{"charcoal", color.NRGBA{60, 60, 64, 255}, color.NRGBA{250, 250, 250, 255}},
	{"sky", color.NRGBA{120, 180, 230, 255}, color.NRGBA{250, 240, 90, 255}},
}

var patterns = []string{"solid", "stripes", "dots", "checks"}

// item is one generated product.
type item struct {
	ID       string
	Category string
	Style    int // palette*len(patterns) + pattern
}

func (it item) styleName() string {
	return palettes[it.Style/len(patterns)].name + "/" + patterns[it.Style%len(patterns)]
}

// makeItems generates n products with random categories and styles.
func makeItems(n int, rng *rand.Rand) []item {
	items := make([]item, n)
	for i := range items {
		items[i] = item{
			ID:       fmt.Sprintf("item%04d", i),
			Category: categories[rng.IntN(len(categories))],
			Style:    rng.IntN(len(palettes) * len(patterns)),
		}
	}
	return items
}

// draw renders an item on a white background, size x size pixels, with a
// little random jitter in position and scale so no two images are equal.
func (it item) draw(size int, rng *rand.Rand) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, size, size))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	p := palettes[it.Style/len(patterns)]
	pat := patterns[it.Style%len(patterns)]
	s := float64(size)
	cx := s/2 + (rng.Float64()-0.5)*s*0.1
	cy := s/2 + (rng.Float64()-0.5)*s*0.1
	sc := s * (0.8 + 0.15*rng.Float64())
	inside := silhouette(it.Category)
	period := 6 + rng.IntN(3)
	for y := 0; y < size; y++ {
		for x := 0; x < size; x++ {
			u := (float64(x) - cx) / sc
			v := (float64(y) - cy) / sc
			if !inside(u, v) {
				continue
			}
			c := p.main
			switch pat {
			case "stripes":
				if (y/period)%2 == 0 {
					c = p.edge
				}
			case "dots":
				dx, dy := x%(2*period)-period, y%(2*period)-period
				if dx*dx+dy*dy < period*period/3 {
					c = p.edge
				}
			case "checks":
				if (x/period+y/period)%2 == 0 {
					c = p.edge
				}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// silhouette returns the shape of a category in coordinates centred on the
// image, about [-0.5, 0.5] on each axis.
func silhouette(category string) func(u, v float64) bool {
	switch category {
	case "shirt":
		return func(u, v float64) bool {
			body := math.Abs(u) < 0.22 && v > -0.3 && v < 0.4
			sleeves := v > -0.3 && v < -0.05 && math.Abs(u) < 0.42
			return body || sleeves
		}
	case "trousers":
		return func(u, v float64) bool {
			waist := math.Abs(u) < 0.22 && v > -0.42 && v < -0.2
			legs := v >= -0.2 && v < 0.45 && math.Abs(u) < 0.22 && math.Abs(u) > 0.03
			return waist || legs
		}
	case "shoe":
		return func(u, v float64) bool {
			sole := u > -0.4 && u < 0.42 && v > 0.05 && v < 0.18
			upper := u > -0.4 && u < 0.1 && v > -0.2 && v <= 0.05
			toe := (u-0.1)*(u-0.1)/0.1+(v-0.05)*(v-0.05)/0.02 < 1 && v <= 0.05
			return sole || upper || toe
		}
	case "bag":
		return func(u, v float64) bool {
			body := math.Abs(u) < 0.32 && v > -0.1 && v < 0.35
			r := math.Hypot(u, v+0.1)
			handle := v <= -0.1 && r > 0.16 && r < 0.22
			return body || handle
		}
	default: // hat
		return func(u, v float64) bool {
			brim := math.Abs(u) < 0.42 && v > 0.05 && v < 0.14
			crown := u*u/0.06+(v-0.05)*(v-0.05)/0.08 < 1 && v <= 0.05
			return brim || crown
		}
	}
}

// makePairs draws labelled pairs: positives share a style and differ in
// category, negatives differ in style. A share of positives near the
// study's 5.8% would leave too few for a quick demo, so it uses 30%.
func makePairs(items []item, n int, rng *rand.Rand) (a, b []int, labels []int) {
	byStyle := map[int][]int{}
	for i, it := range items {
		byStyle[it.Style] = append(byStyle[it.Style], i)
	}
	for len(a) < n {
		i := rng.IntN(len(items))
		if rng.Float64() < 0.3 {
			same := byStyle[items[i].Style]
			j := same[rng.IntN(len(same))]
			if items[j].Category == items[i].Category {
				continue
			}
			a, b, labels = append(a, i), append(b, j), append(labels, 1)
			continue
		}
		j := rng.IntN(len(items))
		if items[j].Style == items[i].Style {
			continue
		}
		a, b, labels = append(a, i), append(b, j), append(labels, 0)
	}
	return a, b, labels
}
