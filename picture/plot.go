package picture

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/stylespace/style"
)

// Options sets the size and title of a chart (LearningCurves, ROC,
// Densities, Scatter). A nil *Options means the zero value.
type Options struct {
	// Title replaces the chart's default title; "" keeps the default.
	Title string
	// Width and Height are the size of the chart in pixels (of a PNG;
	// an SVG or PDF has as many points times 0.75); 0 means 800
	// and 600 (wider for multi-panel charts). Text is scaled with the
	// size, so larger pictures stay legible. Width*Height is limited to
	// 64 megapixels.
	Width, Height int
	// Colors gives Scatter the colour of named categories (its alpha is
	// ignored: points and legend swatches are drawn at the same slight
	// translucency); the other categories take the palette's colours in
	// order of frequency. The other charts ignore it.
	Colors map[string]color.Color
}

// The chart palette: colour-blind-friendly Okabe-Ito hues, then a few more
// distinct ones, for categories and series.
var plotPalette = [...]color.RGBA{
	{0, 114, 178, 255},   // blue
	{230, 159, 0, 255},   // orange
	{0, 158, 115, 255},   // green
	{204, 121, 167, 255}, // pink
	{86, 180, 233, 255},  // sky blue
	{213, 94, 0, 255},    // vermilion
	{240, 228, 66, 255},  // yellow
	{117, 112, 179, 255}, // purple
	{102, 51, 0, 255},    // brown
	{0, 0, 0, 255},       // black
}

var (
	plotCompatibleColor   = color.RGBA{0, 158, 115, 255} // green
	plotIncompatibleColor = color.RGBA{213, 94, 0, 255}  // vermilion
	plotOtherColor        = color.RGBA{170, 170, 170, 255}
)

// plotFrame holds a chart's resolved size, text scale and title.
type plotFrame struct {
	w, h   int
	scale  float64 // font and line scale relative to 800x600
	title  string  // opts.Title, or the chart's default
	format chartFormat
}

// resolvePlotFrame applies the defaults of a chart of function fn to opts
// and checks the size and the extension of path.
func resolvePlotFrame(path string, opts *Options, defW, defH int, defTitle, fn string) (plotFrame, error) {
	format, err := chartFormatOf(fn, path)
	if err != nil {
		return plotFrame{}, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	w, h := o.Width, o.Height
	if w == 0 {
		w = defW
	}
	if h == 0 {
		h = defH
	}
	if w < 100 || h < 100 || int64(w)*int64(h) > maxPixels {
		return plotFrame{}, fmt.Errorf("picture: %s: size %dx%d outside [100, ...] with at most %d pixels", fn, w, h, maxPixels)
	}
	s := min(float64(w)/800, float64(h)/600)
	s = max(0.75, min(s, 4))
	return plotFrame{w: w, h: h, scale: s, title: cmp.Or(o.Title, defTitle), format: format}, nil
}

func (f plotFrame) pt(x float64) vg.Length { return vg.Length(x * f.scale) }

// newPlot returns a plot with the library's text sizes and white
// background.
func (f plotFrame) newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = f.pt(15)
	p.Title.Padding = f.pt(8)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = f.pt(13)
		a.Tick.Label.Font.Size = f.pt(11)
		a.LineStyle.Width = f.pt(1)
		a.Tick.LineStyle.Width = f.pt(1)
		a.Tick.Length = f.pt(6)
		a.Padding = f.pt(4)
		a.Tick.Marker = niceTicker{maxBins: 8}
	}
	p.Legend.TextStyle.Font.Size = f.pt(12)
	p.Legend.ThumbnailWidth = f.pt(24)
	p.Legend.Padding = f.pt(3)
	return p
}

// drawTitle draws title centred at the top of dc, in a size of size
// points (scaled) or smaller so that it fits dc's width, and crops dc to
// the space below it. An empty title draws nothing.
func (f plotFrame) drawTitle(dc *draw.Canvas, title string, size float64) {
	if title == "" {
		return
	}
	sty := text.Style{Color: color.Black, Font: plot.DefaultFont, Handler: plot.DefaultTextHandler, XAlign: draw.XCenter, YAlign: draw.YTop}
	sty.Font.Size = f.pt(size)
	sty.Font = fitFont(sty, title, dc.Max.X-dc.Min.X)
	dc.FillText(sty, vg.Point{X: (dc.Min.X + dc.Max.X) / 2, Y: dc.Max.Y}, title)
	*dc = draw.Crop(*dc, 0, 0, 0, -(sty.Height(title) + f.pt(8)))
}

// titled returns a function drawing p under the chart's title.
func (f plotFrame) titled(p *plot.Plot) func(dc draw.Canvas) {
	return func(dc draw.Canvas) {
		f.drawTitle(&dc, f.title, 15)
		p.Draw(dc)
	}
}

// fitFont returns the font of sty, made smaller if needed (down to 55% of
// its size) so that s fits in width.
func fitFont(sty text.Style, s string, width vg.Length) font.Font {
	fnt := sty.Font
	if w := sty.Width(s); w > width {
		fnt.Size = max(fnt.Size*0.55, fnt.Size*width/w*0.98)
	}
	return fnt
}

// readPoints returns the rows of xy as points. It panics, naming fn, if
// xy.Dim() != 2.
func readPoints(fn string, xy style.FeatureSource) plotter.XYs {
	if d := xy.Dim(); d != 2 {
		panic(fmt.Sprintf("picture: %s: %d columns, want 2", fn, d))
	}
	pts := make(plotter.XYs, xy.Len())
	var row [2]float32
	for i := range pts {
		xy.FeatureTo(row[:], i)
		pts[i] = plotter.XY{X: float64(row[0]), Y: float64(row[1])}
	}
	return pts
}

// checkFinite returns an error naming the first NaN or infinite value.
func checkFinite(fn, name string, v []float64) error {
	for i, x := range v {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("picture: %s: %s[%d] = %v", fn, name, i, x)
		}
	}
	return nil
}

func lineStyle(f plotFrame, c color.Color, width float64, dashes ...float64) draw.LineStyle {
	ls := draw.LineStyle{Color: c, Width: f.pt(width)}
	for _, d := range dashes {
		ls.Dashes = append(ls.Dashes, f.pt(d))
	}
	return ls
}

// LearningCurves writes a chart (PNG, SVG or PDF by the extension of
// path) of the training loss and, if val is not
// empty, the validation loss per epoch (epochs numbered from 1), with the
// epoch of the lowest validation loss marked. It returns an error if train
// is empty, a value is NaN or infinite, or the size in opts or the
// extension of path is invalid. It panics if val is not empty and
// len(val) != len(train). The file is written atomically.
func LearningCurves(path string, train, val []float64, opts *Options) error {
	const fn = "LearningCurves"
	if len(val) != 0 && len(val) != len(train) {
		panic(fmt.Sprintf("picture: %s: %d training and %d validation losses", fn, len(train), len(val)))
	}
	if len(train) == 0 {
		return fmt.Errorf("picture: %s: no epochs to plot", fn)
	}
	if err := errors.Join(checkFinite(fn, "train", train), checkFinite(fn, "val", val)); err != nil {
		return err
	}
	f, err := resolvePlotFrame(path, opts, 800, 600, "Learning curves", fn)
	if err != nil {
		return err
	}
	p := f.newPlot("", "epoch", "loss")
	xy := func(v []float64) plotter.XYs {
		pts := make(plotter.XYs, len(v))
		for i, y := range v {
			pts[i] = plotter.XY{X: float64(i + 1), Y: y}
		}
		return pts
	}
	add := func(v []float64, name string, c color.Color, dashes ...float64) {
		l, s, _ := plotter.NewLinePoints(xy(v))
		l.LineStyle = lineStyle(f, c, 2, dashes...)
		s.GlyphStyle = draw.GlyphStyle{Color: c, Radius: f.pt(3), Shape: draw.CircleGlyph{}}
		if len(v) > 60 { // markers would crowd a long run
			s.GlyphStyle.Radius = 0
		}
		p.Add(l, s)
		p.Legend.Add(name, l, s)
	}
	add(train, "training loss", plotPalette[0])
	ymax := slices.Max(train)
	ymin := slices.Min(train)
	if len(val) > 0 {
		add(val, "validation loss", plotPalette[1], 6, 3)
		best := 0
		for i, v := range val {
			if v < val[best] {
				best = i
			}
		}
		m, _ := plotter.NewScatter(plotter.XYs{{X: float64(best + 1), Y: val[best]}})
		m.GlyphStyle = draw.GlyphStyle{Color: color.RGBA{200, 0, 0, 255}, Radius: f.pt(7), Shape: draw.RingGlyph{}}
		p.Add(m)
		p.Legend.Add(fmt.Sprintf("best validation: epoch %d (%.4g)", best+1, val[best]), m)
		ymax = max(ymax, slices.Max(val))
		ymin = min(ymin, slices.Min(val))
	}
	span := ymax - ymin
	if span == 0 {
		span = math.Max(math.Abs(ymax), 1) * 0.1
	}
	p.Y.Min = ymin - 0.05*span
	p.Y.Max = ymax + 0.30*span // headroom for the legend
	p.X.Min, p.X.Max = 0.5, float64(len(train))+0.5
	p.X.Tick.Marker = niceTicker{maxBins: 15, integer: true}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	return writeChart(path, f, f.titled(p))
}

// ROC writes a chart (PNG, SVG or PDF by the extension of path) of a
// ROC curve given as matching false- and
// true-positive rates (such as the FPR and TPR of a style.ROC, in
// increasing order of fpr), its AUC in the title and legend, the chance diagonal, and the chosen
// cutoff's (cutoffFPR, cutoffTPR) point marked; a NaN cutoff is not drawn.
// It returns an error if there are fewer than two points, a rate is outside
// [0, 1] or NaN, or the size in opts or the extension of path is
// invalid. It panics if len(fpr) != len(tpr). The file is written atomically.
func ROC(path string, fpr, tpr []float64, auc, cutoffFPR, cutoffTPR float64, opts *Options) error {
	const fn = "ROC"
	if len(fpr) != len(tpr) {
		panic(fmt.Sprintf("picture: %s: %d false-positive and %d true-positive rates", fn, len(fpr), len(tpr)))
	}
	if len(fpr) < 2 {
		return fmt.Errorf("picture: %s: %d points, need at least 2", fn, len(fpr))
	}
	for _, s := range []struct {
		name string
		v    []float64
	}{{"fpr", fpr}, {"tpr", tpr}} {
		for i, x := range s.v {
			if !(x >= 0 && x <= 1) {
				return fmt.Errorf("picture: %s: %s[%d] = %v outside [0, 1]", fn, s.name, i, x)
			}
		}
	}
	f, err := resolvePlotFrame(path, opts, 800, 600, fmt.Sprintf("ROC curve (AUC = %.4f)", auc), fn)
	if err != nil {
		return err
	}
	p := f.newPlot("", "false positive rate", "true positive rate")
	pts := make(plotter.XYs, len(fpr))
	for i := range fpr {
		pts[i] = plotter.XY{X: fpr[i], Y: tpr[i]}
	}
	chance, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	chance.LineStyle = lineStyle(f, color.Gray{140}, 1.5, 6, 4)
	roc, _ := plotter.NewLine(pts)
	roc.LineStyle = lineStyle(f, plotPalette[0], 2.5)
	p.Add(plotter.NewGrid(), chance, roc)
	p.Legend.Add(fmt.Sprintf("ROC (AUC %.4f)", auc), roc)
	p.Legend.Add("chance", chance)
	if !math.IsNaN(cutoffFPR) && !math.IsNaN(cutoffTPR) {
		m, _ := plotter.NewScatter(plotter.XYs{{X: cutoffFPR, Y: cutoffTPR}})
		m.GlyphStyle = draw.GlyphStyle{Color: plotIncompatibleColor, Radius: f.pt(6), Shape: draw.CircleGlyph{}}
		p.Add(m)
		p.Legend.Add(fmt.Sprintf("cutoff: FPR %.3f, TPR %.3f", cutoffFPR, cutoffTPR), m)
	}
	p.X.Min, p.X.Max = 0, 1
	p.Y.Min, p.Y.Max = 0, 1.02
	p.Legend.Top = false // the curve fills the upper left; the lower right is free
	p.Legend.XOffs = -f.pt(10)
	p.Legend.YOffs = f.pt(10)
	return writeChart(path, f, f.titled(p))
}

// DensityPanel is one panel of Densities: the Euclidean distances of
// compatible and of incompatible pairs, for example before or after
// training.
type DensityPanel struct {
	Title        string    // panel title; "" means "Pair distances"
	Compatible   []float64 // distances of pairs that go well together
	Incompatible []float64 // distances of pairs that do not
	Cutoff       float64   // a distance cutoff drawn as a vertical line; 0 means none
}

// Densities writes a chart (PNG, SVG or PDF by the extension of path)
// with one panel per element of panels,
// side by side, each showing the estimated densities of the compatible and
// incompatible pair distances: Gaussian kernel density estimates with
// Silverman's bandwidth, reflected at zero since distances are not
// negative, filled under the curve. opts.Title, if set, is drawn above the
// panels. The default size is 800x600 for one panel and 600 pixels wider
// per extra panel. It returns an error if panels is empty, a panel has no
// distances at all, a distance is negative, NaN or infinite, or the size in
// opts or the extension of path is invalid. The file is written
// atomically.
func Densities(path string, panels []DensityPanel, opts *Options) error {
	const fn = "Densities"
	if len(panels) == 0 {
		return fmt.Errorf("picture: %s: no panels", fn)
	}
	for j, pn := range panels {
		if len(pn.Compatible)+len(pn.Incompatible) == 0 {
			return fmt.Errorf("picture: %s: panel %d has no distances", fn, j)
		}
		for _, s := range []struct {
			name string
			v    []float64
		}{{"Compatible", pn.Compatible}, {"Incompatible", pn.Incompatible}} {
			for i, x := range s.v {
				if !(x >= 0) || math.IsInf(x, 1) {
					return fmt.Errorf("picture: %s: panel %d: %s[%d] = %v is not a distance", fn, j, s.name, i, x)
				}
			}
		}
	}
	f, err := resolvePlotFrame(path, opts, 800+600*(len(panels)-1), 600, "", fn)
	if err != nil {
		return err
	}
	// Scale text by the size of one panel, not the whole picture.
	f.scale = max(0.6, min(4, min(float64(f.w)/float64(len(panels))/800*1.25, float64(f.h)/600)))
	plots := make([]*plot.Plot, len(panels))
	for j, pn := range panels {
		title := pn.Title
		if title == "" {
			title = "Pair distances"
		}
		p := f.newPlot(title, "Euclidean distance", "density")
		ymax := 0.0
		for _, s := range []struct {
			v    []float64
			name string
			c    color.RGBA
		}{{pn.Compatible, "compatible", plotCompatibleColor}, {pn.Incompatible, "incompatible", plotIncompatibleColor}} {
			if len(s.v) == 0 {
				continue
			}
			pts := kernelDensity(s.v, 256)
			for _, q := range pts {
				ymax = max(ymax, q.Y)
			}
			l, _ := plotter.NewLine(pts)
			l.LineStyle = lineStyle(f, s.c, 2.5)
			fill := s.c
			fill.A = 50
			fill.R, fill.G, fill.B = uint8(uint16(fill.R)*50/255), uint8(uint16(fill.G)*50/255), uint8(uint16(fill.B)*50/255) // premultiplied
			l.FillColor = fill
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("%s pairs (n = %d)", s.name, len(s.v)), l)
		}
		if pn.Cutoff > 0 {
			c, _ := plotter.NewLine(plotter.XYs{{X: pn.Cutoff, Y: 0}, {X: pn.Cutoff, Y: ymax * 1.05}})
			c.LineStyle = lineStyle(f, color.Black, 1.5, 6, 4)
			p.Add(c)
			p.Legend.Add(fmt.Sprintf("cutoff %.4g", pn.Cutoff), c)
		}
		p.Add(plotter.NewGrid())
		p.Y.Min = 0
		p.Y.Max = ymax * 1.3 // headroom for the legend
		p.Legend.Top = true
		plots[j] = p
	}
	return writeChart(path, f, func(dc draw.Canvas) {
		f.drawTitle(&dc, f.title, 17)
		tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: f.pt(20), PadLeft: f.pt(4), PadRight: f.pt(12), PadTop: f.pt(4), PadBottom: f.pt(4)}
		cs := plot.Align([][]*plot.Plot{plots}, tiles, dc)
		for j, p := range plots {
			p.Title.TextStyle.Font = fitFont(p.Title.TextStyle, p.Title.Text, cs[0][j].Max.X-cs[0][j].Min.X)
			p.Draw(cs[0][j])
		}
	})
}

// kernelDensity returns a Gaussian kernel density estimate of the
// non-negative sample v on a grid of m points, with Silverman's
// rule-of-thumb bandwidth and reflection at zero so that the density does
// not leak below it.
func kernelDensity(v []float64, m int) plotter.XYs {
	s := slices.Clone(v)
	slices.Sort(s)
	n := float64(len(s))
	mean := 0.0
	for _, x := range s {
		mean += x
	}
	mean /= n
	ss := 0.0
	for _, x := range s {
		ss += (x - mean) * (x - mean)
	}
	sd := math.Sqrt(ss / math.Max(n-1, 1))
	iqr := quantileSorted(s, 0.75) - quantileSorted(s, 0.25)
	spread := sd
	if iqr > 0 {
		spread = math.Min(sd, iqr/1.34)
	}
	h := 0.9 * spread * math.Pow(n, -0.2)
	if h <= 0 {
		h = 1e-3 * math.Max(s[len(s)-1], 1)
	}
	lo := math.Max(0, s[0]-3*h)
	hi := s[len(s)-1] + 3*h
	pts := make(plotter.XYs, m)
	norm := 1 / (n * h * math.Sqrt(2*math.Pi))
	for g := range pts {
		x := lo + (hi-lo)*float64(g)/float64(m-1)
		// Only points within 6 bandwidths contribute noticeably
		// (exp(-18) ~ 1.5e-8).
		a, _ := slices.BinarySearch(s, x-6*h)
		sum := 0.0
		for _, xi := range s[a:] {
			if xi > x+6*h {
				break
			}
			u := (x - xi) / h
			sum += math.Exp(-0.5 * u * u)
		}
		// Reflection at 0: the mirror images -xi lie within reach of x
		// only for small xi.
		for _, xi := range s {
			if xi > 6*h-x {
				break
			}
			u := (x + xi) / h
			sum += math.Exp(-0.5 * u * u)
		}
		pts[g] = plotter.XY{X: x, Y: sum * norm}
	}
	return pts
}

// quantileSorted returns the q-quantile of sorted s by linear
// interpolation.
func quantileSorted(s []float64, q float64) float64 {
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// maxPixels caps the pictures drawn here, in pixels: 64 megapixels, the
// largest image style.DecodeImage accepts, so that every picture can be
// read back.
const maxPixels = 64 << 20

// maxScatterCategories is the number of categories drawn in their own
// colour by Scatter; the rest are grouped as "other".
const maxScatterCategories = len(plotPalette)

// Scatter writes a scatter plot (PNG, SVG or PDF by the extension of
// path) of a two-dimensional embedding (N
// rows of 2 values such as style.TSNEResult.Y), one colour per category with a
// legend beside the plot. categories gives each point's category and may be
// nil (all points one colour). The most frequent categories get their own
// colour (up to 10; the rest are drawn in grey as "other"), and points are
// drawn in a fixed shuffled order so no category hides the others
// systematically. It returns an error if xy is nil or has no rows, holds
// NaN or infinite values, or the size in opts or the extension of path is
// invalid. It panics if xy.Dim() != 2 or categories is not nil and its length differs from
// xy.Len(). The file is written atomically.
func Scatter(path string, xy style.FeatureSource, categories []string, opts *Options) error {
	const fn = "Scatter"
	if xy == nil || xy.Len() == 0 {
		return fmt.Errorf("picture: %s: no points", fn)
	}
	pts := readPoints(fn, xy)
	n := len(pts)
	if categories != nil && len(categories) != n {
		panic(fmt.Sprintf("picture: %s: %d points and %d categories", fn, n, len(categories)))
	}
	for i, p := range pts {
		if math.IsNaN(p.X) || math.IsInf(p.X, 0) || math.IsNaN(p.Y) || math.IsInf(p.Y, 0) {
			return fmt.Errorf("picture: %s: point %d = (%v, %v)", fn, i, p.X, p.Y)
		}
	}
	f, err := resolvePlotFrame(path, opts, 800, 600, "Style space", fn)
	if err != nil {
		return err
	}

	// Categories by decreasing frequency, then name.
	counts := map[string]int{}
	for _, s := range categories {
		counts[s]++
	}
	names := make([]string, 0, len(counts))
	for s := range counts {
		names = append(names, s)
	}
	slices.SortFunc(names, func(a, b string) int {
		if r := cmp.Compare(counts[b], counts[a]); r != 0 {
			return r
		}
		return cmp.Compare(a, b)
	})
	shown := names
	if len(names) > maxScatterCategories {
		shown = names[:maxScatterCategories-1]
	}
	colourOf := make(map[string]color.RGBA, len(shown))
	free := plotPalette[:] // palette colours not given by opts.Colors
	if opts != nil {
		for _, s := range shown {
			if c, ok := opts.Colors[s]; ok && c != nil {
				nc := color.NRGBAModel.Convert(c).(color.NRGBA) // its alpha is ignored
				colourOf[s] = color.RGBA{nc.R, nc.G, nc.B, 255}
			}
		}
	}
	for _, s := range shown {
		if _, ok := colourOf[s]; !ok {
			colourOf[s], free = free[0], free[1:]
		}
	}
	radius := f.pt(3)
	switch {
	case n > 20000:
		radius = f.pt(1.5)
	case n > 2000:
		radius = f.pt(2)
	}
	sp := &scatterPoints{pts: pts, colours: make([]color.RGBA, n), radius: radius}
	for i := range n {
		col := plotPalette[0]
		if categories != nil {
			var ok bool
			if col, ok = colourOf[categories[i]]; !ok {
				col = plotOtherColor
			}
		}
		sp.colours[i] = col
	}
	// A fixed permutation, drawing the grey "other" points first.
	sp.order = rand.New(rand.NewPCG(1, 1)).Perm(n)
	slices.SortStableFunc(sp.order, func(a, b int) int {
		return cmp.Compare(boolInt(sp.colours[b] == plotOtherColor), boolInt(sp.colours[a] == plotOtherColor))
	})

	// The title is drawn above plot and legend together, so a long one is
	// centred on the picture rather than cut at its left edge.
	p := f.newPlot("", "dimension 1", "dimension 2")
	p.Add(plotter.NewGrid(), sp)
	// A margin of 4% of the range, so that no point sits on an axis.
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = sp.DataRange()
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		pad := 0.04 * max(a.Max-a.Min, 1e-9*max(math.Abs(a.Max), 1))
		a.Min, a.Max = a.Min-pad, a.Max+pad
	}
	leg := plot.NewLegend()
	leg.TextStyle = p.Legend.TextStyle
	leg.ThumbnailWidth = f.pt(14)
	leg.Padding = f.pt(4)
	leg.Left, leg.Top = true, true
	// Swatches are drawn as the points are, translucent, so that a
	// swatch and a lone point of its category show the same colour.
	thumb := func(c color.RGBA) plot.Thumbnailer {
		return glyphThumb{draw.GlyphStyle{Color: pointColour(c), Radius: f.pt(5), Shape: draw.CircleGlyph{}}}
	}
	if categories == nil {
		leg.Add(fmt.Sprintf("items (%d)", n), thumb(plotPalette[0]))
	} else {
		labels := legendLabels(shown)
		for j, s := range shown {
			leg.Add(fmt.Sprintf("%s (%d)", labels[j], counts[s]), thumb(colourOf[s]))
		}
		if len(shown) < len(names) {
			other := 0
			for _, s := range names[len(shown):] {
				other += counts[s]
			}
			leg.Add(fmt.Sprintf("%d others (%d)", len(names)-len(shown), other), thumb(plotOtherColor))
		}
	}
	return writeChart(path, f, func(dc draw.Canvas) {
		f.drawTitle(&dc, f.title, 15)
		r := leg.Rectangle(dc)
		lw := r.Max.X - r.Min.X + f.pt(24)
		p.Draw(draw.Crop(dc, 0, -lw, 0, 0))
		// The legend, top-aligned with the plotting area.
		leg.Draw(draw.Crop(dc, dc.Max.X-dc.Min.X-lw+f.pt(10), 0, 0, -f.pt(4)))
	})
}

// legendLabels returns the legend names of categories: "(none)" for "",
// and names longer than 24 characters cut to 23 and "…", unless two would
// then read the same, in which case those are shown in full.
func legendLabels(categories []string) []string {
	out := make([]string, len(categories))
	seen := map[string]int{}
	for i, s := range categories {
		r := []rune(cmp.Or(s, "(none)"))
		if len(r) > 24 {
			r = append(r[:23], '…')
		}
		out[i] = string(r)
		seen[out[i]]++
	}
	for i, s := range categories {
		if seen[out[i]] > 1 {
			out[i] = cmp.Or(s, "(none)")
		}
	}
	return out
}

// pointColour is the premultiplied translucent colour Scatter draws a
// point of colour c in.
func pointColour(c color.RGBA) color.RGBA {
	const a = 210
	return color.RGBA{uint8(uint16(c.R) * a / 255), uint8(uint16(c.G) * a / 255), uint8(uint16(c.B) * a / 255), a}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// scatterPoints is a plot.Plotter drawing coloured points in a given
// order.
type scatterPoints struct {
	pts     plotter.XYs
	colours []color.RGBA
	order   []int
	radius  vg.Length
}

// Plot implements plot.Plotter.
func (s *scatterPoints) Plot(c draw.Canvas, plt *plot.Plot) {
	trX, trY := plt.Transforms(&c)
	for _, i := range s.order {
		pt := vg.Point{X: trX(s.pts[i].X), Y: trY(s.pts[i].Y)}
		if !c.Contains(pt) {
			continue
		}
		c.DrawGlyph(draw.GlyphStyle{Color: pointColour(s.colours[i]), Radius: s.radius, Shape: draw.CircleGlyph{}}, pt)
	}
}

// DataRange implements plot.DataRanger.
func (s *scatterPoints) DataRange() (xmin, xmax, ymin, ymax float64) {
	return plotter.XYRange(s.pts)
}

// glyphThumb is a legend thumbnail showing one glyph.
type glyphThumb struct{ sty draw.GlyphStyle }

// Thumbnail implements plot.Thumbnailer.
func (g glyphThumb) Thumbnail(c *draw.Canvas) {
	c.DrawGlyph(g.sty, c.Center())
}

var (
	_ plot.Plotter    = (*scatterPoints)(nil)
	_ plot.DataRanger = (*scatterPoints)(nil)
)
