package picture

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"slices"

	"github.com/nfnt/resize"
	"gonum.org/v1/plot/plotter"

	"github.com/stylespace/style"
)

// MapLayout selects how DrawMap places thumbnails whose positions
// collide.
type MapLayout int

const (
	// MapGrid cuts the canvas into a grid of thumbnail-sized cells and
	// moves every point to the nearest free cell, at most MaxShift cells
	// away from the cell its 2-D position falls in; a point with no free
	// cell that close is left out. Points are placed in order of how close
	// they lie to the centre of their own cell, so the points that best
	// represent a cell claim it and the others move aside. No two
	// thumbnails overlap, and a crowded region keeps its shape instead of
	// becoming a pile where only the last image drawn is visible.
	MapGrid MapLayout = iota
	// MapScatter draws every thumbnail centred at its exact position,
	// in input order, so later thumbnails cover earlier ones where they
	// overlap (as the study's map did).
	MapScatter
)

// MapOptions configures DrawMap and WriteMap. A nil *MapOptions means the
// defaults.
type MapOptions struct {
	// Width and Height are the canvas size in pixels. Zero means 2,000.
	Width, Height int
	// Thumb is the side of the square box each thumbnail is fitted into,
	// keeping its aspect ratio, in pixels. Zero means 40.
	Thumb int
	// Margin is the blank border around the map in pixels. Zero means
	// Thumb/2; a negative value means no margin.
	Margin int
	// Layout selects how overlaps are handled. The zero value is
	// MapGrid.
	Layout MapLayout
	// MaxShift is how many cells a thumbnail may move from its position
	// with MapGrid. Zero means 3.
	MaxShift int
	// Background is the canvas colour. Nil means white.
	Background color.Color
}

type mapConfig struct {
	w, h, thumb, margin, maxShift int
	layout                        MapLayout
	bg                            color.Color
}

func (o *MapOptions) config() (mapConfig, error) {
	c := mapConfig{w: 2000, h: 2000, thumb: 40, maxShift: 3, bg: color.White, margin: -1}
	if o != nil {
		if o.Width < 0 || o.Height < 0 || o.Thumb < 0 || o.MaxShift < 0 {
			return c, fmt.Errorf("picture: map: negative size in options %+v", *o)
		}
		if o.Width > 0 {
			c.w = o.Width
		}
		if o.Height > 0 {
			c.h = o.Height
		}
		if o.Thumb > 0 {
			c.thumb = o.Thumb
		}
		if o.MaxShift > 0 {
			c.maxShift = o.MaxShift
		}
		switch {
		case o.Margin > 0:
			c.margin = o.Margin
		case o.Margin < 0:
			c.margin = 0
		}
		if o.Background != nil {
			c.bg = o.Background
		}
		if o.Layout != MapGrid && o.Layout != MapScatter {
			return c, fmt.Errorf("picture: map: unknown Layout %d", o.Layout)
		}
		c.layout = o.Layout
	}
	if c.margin < 0 {
		c.margin = c.thumb / 2
	}
	if c.w > 1<<15 || c.h > 1<<15 {
		return c, fmt.Errorf("picture: map: canvas %dx%d larger than %d pixels a side", c.w, c.h, 1<<15)
	}
	if c.w-2*c.margin < c.thumb || c.h-2*c.margin < c.thumb {
		return c, fmt.Errorf("picture: map: canvas %dx%d with margin %d has no room for a %d-pixel thumbnail", c.w, c.h, c.margin, c.thumb)
	}
	return c, nil
}

// placeMap returns the top-left corner of the thumbnail box of every
// point of the 2-D embedding y, or ok[i] = false for a point left out.
// The embedding is scaled uniformly (its aspect ratio kept) and centred in
// the canvas inside the margin.
func placeMap(y plotter.XYs, c mapConfig) (pos []image.Point, ok []bool) {
	n := len(y)
	pos = make([]image.Point, n)
	ok = make([]bool, n)
	if n == 0 {
		return pos, ok
	}
	minX, maxX := math.Inf(1), math.Inf(-1)
	minY, maxY := math.Inf(1), math.Inf(-1)
	for i := 0; i < n; i++ {
		minX, maxX = math.Min(minX, y[i].X), math.Max(maxX, y[i].X)
		minY, maxY = math.Min(minY, y[i].Y), math.Max(maxY, y[i].Y)
	}
	// Region available to thumbnail centres.
	aw := float64(c.w - 2*c.margin - c.thumb)
	ah := float64(c.h - 2*c.margin - c.thumb)
	spanX, spanY := maxX-minX, maxY-minY
	scale := 0.0
	if spanX > 0 || spanY > 0 {
		scale = math.Min(aw/math.Max(spanX, 1e-300), ah/math.Max(spanY, 1e-300))
	}
	offX := float64(c.margin) + float64(c.thumb)/2 + (aw-spanX*scale)/2
	offY := float64(c.margin) + float64(c.thumb)/2 + (ah-spanY*scale)/2
	cx := make([]float64, n) // canvas position of each centre
	cy := make([]float64, n)
	for i := 0; i < n; i++ {
		cx[i] = offX + (y[i].X-minX)*scale
		// Image rows grow downwards: put larger y at the top.
		cy[i] = offY + (maxY-y[i].Y)*scale
	}
	if c.layout == MapScatter {
		for i := 0; i < n; i++ {
			pos[i] = image.Pt(int(math.Round(cx[i]))-c.thumb/2, int(math.Round(cy[i]))-c.thumb/2)
			ok[i] = true
		}
		return pos, ok
	}
	// Grid of cells covering the area inside the margin.
	cols := (c.w - 2*c.margin) / c.thumb
	rows := (c.h - 2*c.margin) / c.thumb
	// Centre the grid in the canvas.
	gx0 := (c.w - cols*c.thumb) / 2
	gy0 := (c.h - rows*c.thumb) / 2
	cellOf := func(v, origin float64, count int) (int, float64) {
		f := (v - origin) / float64(c.thumb)
		k := min(max(int(math.Floor(f)), 0), count-1)
		return k, f - (float64(k) + 0.5)
	}
	type want struct {
		i, col, row int
		off         float64
	}
	ws := make([]want, n)
	for i := 0; i < n; i++ {
		col, dx := cellOf(cx[i], float64(gx0), cols)
		row, dy := cellOf(cy[i], float64(gy0), rows)
		ws[i] = want{i, col, row, dx*dx + dy*dy}
	}
	slices.SortStableFunc(ws, func(a, b want) int {
		switch {
		case a.off < b.off:
			return -1
		case a.off > b.off:
			return 1
		}
		return a.i - b.i
	})
	taken := make([]bool, cols*rows)
	// Candidate offsets within MaxShift, nearest first.
	type off struct{ dc, dr, d2 int }
	var offs []off
	for dr := -c.maxShift; dr <= c.maxShift; dr++ {
		for dc := -c.maxShift; dc <= c.maxShift; dc++ {
			if d2 := dc*dc + dr*dr; d2 <= c.maxShift*c.maxShift {
				offs = append(offs, off{dc, dr, d2})
			}
		}
	}
	slices.SortStableFunc(offs, func(a, b off) int { return a.d2 - b.d2 })
	for _, w := range ws {
		best := -1
		bestD := math.Inf(1)
		bestD2 := -1
		for _, o := range offs {
			// A cell one ring further out can still be nearer to the exact
			// position, by at most a cell diagonal.
			if bestD2 >= 0 && math.Sqrt(float64(o.d2)) > math.Sqrt(float64(bestD2))+math.Sqrt2 {
				break
			}
			col, row := w.col+o.dc, w.row+o.dr
			if col < 0 || row < 0 || col >= cols || row >= rows || taken[row*cols+col] {
				continue
			}
			// Among the free cells, the one whose centre is nearest the
			// exact position.
			ex := float64(gx0) + (float64(col)+0.5)*float64(c.thumb) - cx[w.i]
			ey := float64(gy0) + (float64(row)+0.5)*float64(c.thumb) - cy[w.i]
			if d := ex*ex + ey*ey; d < bestD {
				best, bestD, bestD2 = row*cols+col, d, o.d2
			}
		}
		if best < 0 {
			continue
		}
		taken[best] = true
		pos[w.i] = image.Pt(gx0+best%cols*c.thumb, gy0+best/cols*c.thumb)
		ok[w.i] = true
	}
	return pos, ok
}

// fitThumb scales img to fit a size x size box, keeping its aspect ratio.
func fitThumb(img image.Image, size int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return nil
	}
	s := math.Min(float64(size)/float64(w), float64(size)/float64(h))
	tw := max(1, int(math.Round(float64(w)*s)))
	th := max(1, int(math.Round(float64(h)*s)))
	return resize.Resize(uint(tw), uint(th), img, resize.Lanczos3)
}

// DrawMap draws a map of the 2-D embedding y (N rows of 2 values, for
// example style.TSNEResult.Y): the thumbnail of item i, given by thumb(i), at the
// position of row i, on a canvas of the requested size. The embedding is scaled
// uniformly to fill the canvas, with larger y at the top. Each image is
// scaled to fit a Thumb x Thumb box keeping its aspect ratio (never
// distorted) and centred in it. Overlaps are handled as opts.Layout says.
// thumb may return a nil image to leave an item out; an error from it
// stops the drawing and is returned. ctx is checked between thumbnails.
//
// DrawMap panics if y.Dim() != 2.
func DrawMap(ctx context.Context, y style.FeatureSource, thumb func(i int) (image.Image, error), opts *MapOptions) (*image.RGBA, error) {
	pts := readPoints("DrawMap", y)
	c, err := opts.config()
	if err != nil {
		return nil, err
	}
	for _, p := range pts {
		for _, v := range [2]float64{p.X, p.Y} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("picture: map: embedding holds %v", v)
			}
		}
	}
	pos, ok := placeMap(pts, c)
	canvas := image.NewRGBA(image.Rect(0, 0, c.w, c.h))
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(c.bg), image.Point{}, draw.Src)
	pad := 0
	if c.layout == MapGrid && c.thumb >= 8 {
		pad = 1 // a 1-pixel gap between neighbouring cells
	}
	for i := range pos {
		if !ok[i] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := thumb(i)
		if err != nil {
			return nil, err
		}
		if img == nil {
			continue
		}
		t := fitThumb(img, c.thumb-2*pad)
		if t == nil {
			continue
		}
		tb := t.Bounds()
		at := pos[i].Add(image.Pt((c.thumb-tb.Dx())/2, (c.thumb-tb.Dy())/2))
		draw.Draw(canvas, image.Rectangle{at, at.Add(tb.Size())}, t, tb.Min, draw.Over)
	}
	return canvas, nil
}

// WriteMap draws the map as DrawMap does and writes it to path as a
// PNG, atomically: the file is either the complete new map or untouched.
// A map is a raster image: path must end in .png (in any letter case),
// else WriteMap returns an error before drawing. It panics as DrawMap
// does.
func WriteMap(ctx context.Context, path string, y style.FeatureSource, thumb func(i int) (image.Image, error), opts *MapOptions) error {
	if err := checkRasterPath("WriteMap", path); err != nil {
		return err
	}
	img, err := DrawMap(ctx, y, thumb, opts)
	if err != nil {
		return err
	}
	return writePNG(path, img, png.DefaultCompression)
}
