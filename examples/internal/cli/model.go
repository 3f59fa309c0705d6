package cli

// The model and catalogue flags of examples/recommend and examples/tsne, and
// the indexing of a folder into a catalogue.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/stylespace/style"
)

// ModelFlags are the flags choosing the images, the model and the catalogue.
type ModelFlags struct {
	Images     string
	Meta       string
	IDColumn   string
	CatColumn  string
	Weights    string
	Head       string
	Catalog    string
	Seed       uint64
	Divisor    int
	Limit      int
	Workers    int
	Conv       string
	NoProgress bool
}

// Register defines the flags on fl, with the given defaults for -catalog
// and -category-column.
func (m *ModelFlags) Register(fl *flag.FlagSet, catalogDefault, categoryDefault string) {
	fl.StringVar(&m.Images, "images", "", "folder of product images to index (JPEG, PNG or GIF, searched recursively)")
	fl.StringVar(&m.Meta, "meta", "", "optional CSV file giving each image's category, e.g. ../shared/fashion/styles.csv")
	fl.StringVar(&m.IDColumn, "id-column", "id", "column of -meta holding the image ID (the file name without extension, or with it)")
	fl.StringVar(&m.CatColumn, "category-column", categoryDefault, "column of -meta holding the category (e.g. articleType, subCategory, masterCategory)")
	fl.StringVar(&m.Weights, "weights", "", "VGG16 weight file (.safetensors or torchvision .pth); empty: a generated network, NOT ImageNet features")
	fl.StringVar(&m.Head, "head", "", "trained siamese head (.safetensors from examples/train); empty: compare raw features (visual similarity, not learned style)")
	fl.StringVar(&m.Catalog, "catalog", catalogDefault, "catalogue file: reused and completed if it exists, written after indexing; empty: keep it in memory only")
	fl.Uint64Var(&m.Seed, "weights-seed", 1, "seed of the generated network (without -weights)")
	fl.IntVar(&m.Divisor, "divisor", 8, "width divisor of the generated network (without -weights): 1 is full VGG16, 8 is 8x narrower and ~50x faster")
	fl.IntVar(&m.Limit, "limit", 0, "index only the first N images in name order (0: all)")
	fl.IntVar(&m.Workers, "workers", 0, "images processed at once (0: number of CPUs)")
	fl.StringVar(&m.Conv, "conv", "auto", ConvUsage)
	fl.BoolVar(&m.NoProgress, "no-progress", false, "do not draw progress bars")
}

// Model is what the flags select, with the catalogue built.
type Model struct {
	Src   *style.DirSource
	FX    *style.Network
	Head  *style.SiameseHead
	Meta  *style.Metadata // the -meta table; nil without -meta
	Cat   *style.Catalog
	Names []string // the images listed in the folder (after -limit)

	catColumn string
}

// Close releases the image folder.
func (m *Model) Close() { m.Src.Close() }

// Category returns the -meta category of an image name or file (see
// style.Metadata.Value), "" without -meta.
func (m *Model) Category(name string) string {
	if m.Meta == nil {
		return ""
	}
	return m.Meta.Value(name, m.catColumn)
}

// OpenModel loads the weights, the head and the categories, lists the
// images and builds or completes the catalogue, printing what it does on
// stdout (honestly, when the model is generated), progress on bars and
// failed images on stderr.
func OpenModel(ctx context.Context, f *ModelFlags, stdout, stderr io.Writer, bars *Bars) (*Model, error) {
	if f.Images == "" {
		return nil, errors.New("-images is required: the folder of product images to index")
	}
	m := &Model{}
	var err error
	if m.Src, err = style.NewDirSource(f.Images); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.Src.Close()
		}
	}()
	names, err := m.Src.Names()
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no JPEG, PNG or GIF images in %s", f.Images)
	}
	if f.Limit > 0 && f.Limit < len(names) {
		names = names[:f.Limit]
	}
	m.Names = names

	var modelDesc string
	if f.Weights != "" {
		if m.FX, err = LoadNetwork(f.Weights, f.Conv, 1); err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "model: VGG16 weights %s (%d features per image)\n", f.Weights, m.FX.FeatureLen())
	} else {
		algo, err := ParseConv(f.Conv)
		if err != nil {
			return nil, err
		}
		w, err := style.GenerateWeights(style.VGG16, f.Seed, f.Divisor)
		if err != nil {
			return nil, fmt.Errorf("-divisor %d: %w", f.Divisor, err)
		}
		if m.FX, err = style.NewNetwork(w, &style.NetworkOptions{Algorithm: algo}); err != nil {
			return nil, err
		}
		modelDesc = fmt.Sprintf("generated VGG16, seed %d, width divisor %d", f.Seed, f.Divisor)
		fmt.Fprintf(stdout, "model: %s (%d features per image).\n", modelDesc, m.FX.FeatureLen())
		fmt.Fprintln(stdout, "  NOTE: no -weights given, so the network's weights are generated from a formula, not")
		fmt.Fprintln(stdout, "  learned on ImageNet: its features respond to colour, texture and shape only.")
	}
	if f.Head != "" {
		if m.Head, err = style.LoadHead(f.Head); err != nil {
			return nil, err
		}
		if err := m.Head.CheckBackbone(m.FX.Backbone()); err != nil {
			return nil, fmt.Errorf("head %s does not fit these weights: %w", f.Head, err)
		}
		fmt.Fprintf(stdout, "embedding: siamese head %s (%d -> %d): distances are its style-space distances, smaller = more compatible\n", f.Head, m.Head.Dense.In, m.Head.Dense.Out)
	} else {
		fmt.Fprintf(stdout, "embedding: none (no -head): items are compared by their raw features, so distances\n")
		fmt.Fprintf(stdout, "  measure visual similarity under this network, not a learned style compatibility.\n")
	}
	if f.Meta != "" {
		if m.Meta, err = style.ReadMetadata(f.Meta, f.IDColumn); err != nil {
			return nil, err
		}
		if !slices.Contains(m.Meta.Columns(), f.CatColumn) {
			return nil, fmt.Errorf("-category-column %q: no such column in %s (it has %s)", f.CatColumn, f.Meta, strings.Join(m.Meta.Columns(), ", "))
		}
		m.catColumn = f.CatColumn
	}

	m.Cat = &style.Catalog{}
	reused := false
	if f.Catalog != "" {
		switch c, err := style.LoadCatalog(f.Catalog); {
		case err == nil:
			m.Cat, reused = c, true
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	rep, err := m.Cat.AddImages(ctx, m.Src, names, m.FX, m.Head, &style.ExtractOptions{
		Category: m.Category, Workers: f.Workers, Progress: bars.Update,
	})
	bars.Finish()
	if errors.Is(err, style.ErrBackboneMismatch) {
		return nil, fmt.Errorf("catalogue %s was built with another model (%w); delete it or choose another -catalog", f.Catalog, err)
	}
	if rep != nil && rep.Done > 0 && f.Catalog != "" {
		// Saved even when interrupted, so that the next run resumes.
		if serr := m.Cat.Save(f.Catalog); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return nil, err
	}
	where := f.Catalog
	switch {
	case where == "":
		where = "in memory"
	case reused:
		where += " (reused)"
	}
	fmt.Fprintf(stdout, "catalogue: %s: %d items; this run indexed %d of %d images in %s, %d already there, %d failed\n",
		where, m.Cat.Len(), rep.Done, rep.Total, rep.Elapsed.Round(time.Millisecond), rep.Skipped, len(rep.Failed))
	for i, fl := range rep.Failed {
		if i == 5 {
			fmt.Fprintf(stderr, "  ... and %d more\n", len(rep.Failed)-5)
			break
		}
		fmt.Fprintf(stderr, "  skipped %s: %v\n", fl.Name, fl.Err)
	}
	ok = true
	return m, nil
}
