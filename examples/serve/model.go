package main

// Everything the service asks of the style library is in this file: loading
// the network, the head and the catalogue, decoding images, extracting
// features, scoring, recommending and thumbnails.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"math"
	"path"
	"slices"
	"strings"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/picture"
)

// modelConfig names the files and settings of the model: the network and
// head flags every example program shares (cli.ModelFlags: -weights,
// -download, -weights-seed, -weights-divisor, -backbone, -head, -conv,
// -workers, -quiet), and the catalogue.
type modelConfig struct {
	cli.ModelFlags
	Catalog  string // catalogue file; "" for none
	Images   string // folder of the catalogue's photos; "" for none
	Meta     string // CSV of product names and categories; "" for none
	IDColumn string // -meta column holding the item ID
	NameCol  string // -meta column holding the product name
	CatCol   string // -meta column holding the category

	Bars *cli.Bars // progress of a -download; nil: none shown
}

// model is the loaded network, head and catalogue. It is read-only once
// loaded and shared by all requests: the library documents Network, the
// head's Embed and Compare, the catalogue's read methods and Metadata as
// safe for concurrent use.
type model struct {
	fx   *style.Network
	head *style.SiameseHead
	desc string // what the network is, for people

	cat         *style.Catalog   // nil without -catalog
	catEmbedded bool             // the catalogue holds head embeddings, not raw features
	ids         []string         // the catalogue's item IDs, by index
	itemCats    []string         // the catalogue's item categories, by index
	categories  []string         // the catalogue's distinct categories, sorted, without ""
	src         *style.DirSource // the catalogue's photos; nil without -images
	meta        *style.Metadata  // product names and categories; nil without -meta
	nameCol     string           // -meta column of product names
	catCol      string           // -meta column of categories
}

// loadModel loads what cfg names. The head must fit the network and the
// catalogue must have been built with this network (and this head, or
// without one); otherwise it returns an error and the service does not
// start.
func loadModel(ctx context.Context, cfg modelConfig) (_ *model, err error) {
	if cfg.Head == "" {
		return nil, errors.New("-head is required: the trained siamese head that gives distances and verdicts")
	}
	m := &model{}
	bars := cfg.Bars
	if bars == nil {
		bars = cli.NewBars(io.Discard, true)
	}
	// What the network is goes into the log and the pages (see desc).
	if m.fx, err = cfg.Network(ctx, io.Discard, bars); err != nil {
		return nil, err
	}
	switch b := m.fx.Backbone(); {
	case cfg.Weights != "":
		m.desc = fmt.Sprintf("%s weights %s", strings.ToUpper(string(b.Arch)), path.Base(cfg.Weights))
	case b.SHA256 == "":
		m.desc = cli.Describe(b) + ", not ImageNet features"
	default:
		m.desc = cli.Describe(b)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if m.head, err = style.LoadHead(cfg.Head); err != nil {
		return nil, err
	}
	if cli.HeadIn(m.head) != m.fx.FeatureLen() {
		return nil, fmt.Errorf("head %s takes %d features, the network gives %d: %w",
			cfg.Head, cli.HeadIn(m.head), m.fx.FeatureLen(), style.ErrBackboneMismatch)
	}
	if err := m.head.CheckBackbone(m.fx.Backbone()); err != nil {
		return nil, fmt.Errorf("head %s does not fit this network: %w", cfg.Head, err)
	}
	if cfg.Meta != "" {
		if m.meta, err = style.ReadMetadata(cfg.Meta, cfg.IDColumn); err != nil {
			return nil, err
		}
		cols := m.meta.Columns()
		nameCol := cfg.NameCol
		if nameCol == cli.DefaultNameColumn && !slices.Contains(cols, nameCol) {
			nameCol = "" // the default is optional, as in the other programs: no names
		}
		for _, c := range []struct{ flag, name string }{{"-name-column", nameCol}, {"-category-column", cfg.CatCol}} {
			if c.name != "" && !slices.Contains(cols, c.name) {
				return nil, fmt.Errorf("%s %q: no such column in %s (it has %s)", c.flag, c.name, cfg.Meta, strings.Join(cols, ", "))
			}
		}
		m.nameCol, m.catCol = nameCol, cfg.CatCol
	}
	if cfg.Images != "" {
		if m.src, err = style.NewDirSource(cfg.Images); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				m.src.Close()
			}
		}()
	}
	if cfg.Catalog != "" {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if m.cat, err = style.LoadCatalog(cfg.Catalog); err != nil {
			return nil, err
		}
		// AddImages with no names adds nothing: it only checks that the
		// catalogue was made by this network and head (or by this network
		// alone, raw features), from the provenance the catalogue records.
		var src style.ImageSource // not read: there are no names
		_, errHead := m.cat.AddImages(ctx, src, nil, m.fx, m.head, nil)
		switch _, errRaw := m.cat.AddImages(ctx, src, nil, m.fx, nil, nil); {
		case errHead == nil:
			m.catEmbedded = true
		case errRaw == nil:
			m.catEmbedded = false
		default:
			return nil, fmt.Errorf("catalogue %s was not built with this network and head: %w", cfg.Catalog, errHead)
		}
		// The IDs and categories, read once: Item copies an embedding too.
		n := m.cat.Len()
		m.ids, m.itemCats = make([]string, n), make([]string, n)
		for i := range n {
			it := m.cat.Item(i)
			m.ids[i], m.itemCats[i] = it.ID, it.Category
		}
		m.categories = slices.DeleteFunc(slices.Clone(m.itemCats), func(c string) bool { return c == "" })
		slices.Sort(m.categories)
		m.categories = slices.Compact(m.categories)
	}
	return m, nil
}

// close releases the catalogue's photo folder.
func (m *model) close() {
	if m.src != nil {
		m.src.Close()
	}
}

// decodeImage decodes an uploaded or fetched image (JPEG, PNG or GIF),
// whose header has already been checked by checkImageHeader.
func decodeImage(data []byte, name string) (image.Image, error) {
	return style.DecodeImage(bytes.NewReader(data), name)
}

// features returns the feature vectors of imgs; it stops between groups
// of images when ctx is done. Besides ctx.Err(), its errors say that an
// image was decoded but cannot be used: it cannot be preprocessed, or its
// features are not finite numbers.
func (m *model) features(ctx context.Context, imgs []image.Image) ([][]float32, error) {
	return m.fx.FeaturesBatch(ctx, imgs)
}

// scoreResult is the answer of /api/score.
type scoreResult struct {
	Distance   float64 `json:"distance"`
	Cutoff     float64 `json:"cutoff"`
	Compatible bool    `json:"compatible"`
	Verdict    string  `json:"verdict"`
}

// score compares the features of two items. It returns an error if a
// feature or the distance is not a finite number.
func (m *model) score(fa, fb []float32) (scoreResult, error) {
	d, v, err := m.head.Compare(fa, fb)
	return scoreResult{Distance: d, Cutoff: m.head.Cutoff, Compatible: v == style.Compatible, Verdict: v.String()}, err
}

// cutoff is the head's distance at or below which a pair is compatible.
func (m *model) cutoff() float64 { return m.head.Cutoff }

// query turns features into a query vector of the catalogue's kind.
func (m *model) query(feat []float32) []float32 {
	if m.catEmbedded {
		return m.head.Embed(feat)
	}
	return feat
}

// finite reports whether every value of v is finite.
func finite(v []float32) bool {
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return false
		}
	}
	return true
}

// match is one recommendation.
type match struct {
	ID       string
	Category string
	Distance float64
}

func matches(ms []style.Match) []match {
	out := make([]match, len(ms))
	for i, mt := range ms {
		out[i] = match{ID: mt.ID, Category: mt.Category, Distance: mt.Distance}
	}
	return out
}

// recommendItem returns the k items that go best with the catalogue item
// id (a resolved ID, see lookup), leaving out those of its category if
// otherCategory is set.
func (m *model) recommendItem(id string, k int, otherCategory bool) ([]match, error) {
	ms, err := m.cat.RecommendItem(id, k, &style.RecommendOptions{ExcludeSameCategory: otherCategory})
	return matches(ms), err
}

// recommend returns the k items closest to the query vector q, leaving out
// those of category exclude if it is not "".
func (m *model) recommend(q []float32, k int, exclude string) []match {
	return matches(m.cat.Recommend(q, k, &style.RecommendOptions{ExcludeCategory: exclude}))
}

// lookup returns the catalogue ID that id names: the ID itself or, for a
// bare product ID such as "15970", the ID with an image extension (see
// Catalog.Index).
func (m *model) lookup(id string) (string, bool) {
	if m.cat == nil || id == "" {
		return "", false
	}
	i, ok := m.cat.Index(id)
	if !ok {
		return "", false
	}
	return m.ids[i], true
}

// itemInfo is what the service tells about a catalogue item.
type itemInfo struct {
	ID       string
	Name     string
	Category string
}

// info returns the name and category of the catalogue item id (a resolved
// ID): the catalogue's category, or -meta's if it has none; -meta's
// product name, or the ID.
func (m *model) info(id string) itemInfo {
	it := itemInfo{ID: id, Name: id}
	if i, ok := m.cat.Index(id); ok {
		it.Category = m.itemCats[i]
	}
	if m.meta == nil {
		return it
	}
	// Metadata matches "15970.jpg" and "images/15970.jpg" to the row 15970.
	if n := m.meta.Value(id, m.nameCol); n != "" {
		it.Name = n
	}
	if it.Category == "" {
		it.Category = m.meta.Value(id, m.catCol)
	}
	return it
}

// items returns up to limit catalogue items in catalogue order, and the
// catalogue's size.
func (m *model) items(limit int) ([]itemInfo, int) {
	if m.cat == nil {
		return nil, 0
	}
	n := min(limit, m.cat.Len())
	out := make([]itemInfo, n)
	for i := range n {
		out[i] = m.info(m.ids[i])
	}
	return out, m.cat.Len()
}

// sample returns n catalogue items spread evenly over the catalogue (all
// of them if it holds fewer).
func (m *model) sample(n int) []itemInfo {
	if m.cat == nil {
		return nil
	}
	total := m.cat.Len()
	n = min(n, total)
	out := make([]itemInfo, n)
	for i := range n {
		out[i] = m.info(m.ids[i*total/n])
	}
	return out
}

// catalogLen is the number of catalogue items, 0 without a catalogue.
func (m *model) catalogLen() int {
	if m.cat == nil {
		return 0
	}
	return m.cat.Len()
}

// openItem decodes the photo of the catalogue item id (a resolved ID).
func (m *model) openItem(ctx context.Context, id string) (image.Image, error) {
	return style.OpenImage(ctx, m.src, id)
}

// thumbnail scales img down to fit a size x size box.
func thumbnail(img image.Image, size int) image.Image { return picture.Thumbnail(img, size, size) }

// maxPixels is the library's own bound on an image's pixels, the largest
// -max-pixels can be; maxBytes its bound on an encoded image, the largest
// -max-upload can be. Both are 64 Mi, as style.DecodeImage documents.
const (
	maxPixels = 64 << 20
	maxBytes  = 64 << 20
)

// Sentinels of the library the handlers classify errors by.
var (
	errUnknownItem = style.ErrUnknownItem
	errTooLarge    = style.ErrImageTooLarge
	errInvalidName = style.ErrInvalidName
)
