package main

// This file is shared word for word by examples/recommend and examples/tsne:
// the model and catalogue flags and the indexing of a folder into a
// catalogue. It could move to examples/internal/cli.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
)

// modelFlags are the flags choosing the images, the model and the catalogue.
type modelFlags struct {
	images     string
	meta       string
	idColumn   string
	catColumn  string
	weights    string
	head       string
	catalog    string
	seed       uint64
	divisor    int
	limit      int
	workers    int
	winograd   bool
	noProgress bool
}

func (m *modelFlags) register(fl *flag.FlagSet, catalogDefault, categoryDefault string) {
	fl.StringVar(&m.images, "images", "", "folder of product images to index (JPEG, PNG or GIF, searched recursively)")
	fl.StringVar(&m.meta, "meta", "", "optional CSV file giving each image's category, e.g. ../shared/fashion/styles.csv")
	fl.StringVar(&m.idColumn, "id-column", "id", "column of -meta holding the image ID (the file name without extension, or with it)")
	fl.StringVar(&m.catColumn, "category-column", categoryDefault, "column of -meta holding the category (e.g. articleType, subCategory, masterCategory)")
	fl.StringVar(&m.weights, "weights", "", "VGG16 weight file (.safetensors or torchvision .pth); empty: a generated network, NOT ImageNet features")
	fl.StringVar(&m.head, "head", "", "trained siamese head (.safetensors from examples/train); empty: compare raw features (visual similarity, not learned style)")
	fl.StringVar(&m.catalog, "catalog", catalogDefault, "catalogue file: reused and completed if it exists, written after indexing; empty: keep it in memory only")
	fl.Uint64Var(&m.seed, "weights-seed", 1, "seed of the generated network (without -weights)")
	fl.IntVar(&m.divisor, "divisor", 8, "width divisor of the generated network (without -weights): 1 is full VGG16, 8 is 8x narrower and ~50x faster")
	fl.IntVar(&m.limit, "limit", 0, "index only the first N images in name order (0: all)")
	fl.IntVar(&m.workers, "workers", 0, "images processed at once (0: number of CPUs)")
	fl.BoolVar(&m.winograd, "winograd", false, "use Winograd convolutions (faster, same accuracy)")
	fl.BoolVar(&m.noProgress, "no-progress", false, "do not draw progress bars")
}

// model is what the flags select, with the catalogue built.
type model struct {
	src   *style.DirSource
	fx    *style.VGG16
	head  *style.SiameseHead
	cats  map[string]string // ID column value -> category; nil without -meta
	cat   *style.Catalog
	names []string // the images listed in the folder (after -limit)
}

func (m *model) Close() { m.src.Close() }

// imageExts are the file extensions indexed.
var imageExts = []string{".jpg", ".jpeg", ".png", ".gif"}

// listImages returns the slash-separated paths of the images under dir, in
// name order.
func listImages(dir string) ([]string, error) {
	var names []string
	err := fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && slices.Contains(imageExts, strings.ToLower(path.Ext(p))) {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// category returns the -meta category of an image name or file: the row
// whose ID is its base name without extension, or with it.
func (m *model) category(name string) string {
	if m.cats == nil {
		return ""
	}
	base := path.Base(strings.ReplaceAll(name, `\`, "/"))
	if c, ok := m.cats[strings.TrimSuffix(base, path.Ext(base))]; ok {
		return c
	}
	return m.cats[base]
}

// openModel loads the weights, the head and the categories, lists the
// images and builds or completes the catalogue, printing what it does on
// stdout (honestly, when the model is generated), progress on bars and
// failed images on stderr.
func openModel(ctx context.Context, f *modelFlags, stdout, stderr io.Writer, bars *cli.Bars) (*model, error) {
	if f.images == "" {
		return nil, errors.New("-images is required: the folder of product images to index")
	}
	m := &model{}
	names, err := listImages(f.images)
	if err != nil {
		return nil, fmt.Errorf("listing images: %w", err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no JPEG, PNG or GIF images in %s", f.images)
	}
	if f.limit > 0 && f.limit < len(names) {
		names = names[:f.limit]
	}
	m.names = names
	if m.src, err = style.NewDirSource(f.images); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			m.src.Close()
		}
	}()

	var modelDesc string
	if f.weights != "" {
		if m.fx, err = cli.LoadVGG16(f.weights, f.winograd); err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "model: VGG16 weights %s (%d features per image)\n", f.weights, m.fx.FeatureLen())
	} else {
		if f.divisor <= 0 || 64%f.divisor != 0 {
			return nil, fmt.Errorf("-divisor %d: must divide 64 (1, 2, 4, 8, 16, 32 or 64)", f.divisor)
		}
		opts := &style.VGG16Options{}
		if f.winograd {
			opts.Algorithm = style.ConvWinograd
		}
		if m.fx, err = style.NewVGG16(style.GenerateVGG16Weights(f.seed, f.divisor), opts); err != nil {
			return nil, err
		}
		modelDesc = fmt.Sprintf("generated VGG16, seed %d, width divisor %d", f.seed, f.divisor)
		fmt.Fprintf(stdout, "model: %s (%d features per image).\n", modelDesc, m.fx.FeatureLen())
		fmt.Fprintln(stdout, "  NOTE: no -weights given, so the network's weights are generated from a formula, not")
		fmt.Fprintln(stdout, "  learned on ImageNet: its features respond to colour, texture and shape only.")
	}
	if f.head != "" {
		if m.head, err = style.LoadHead(f.head); err != nil {
			return nil, err
		}
		if err := m.head.CheckBackbone(m.fx.Backbone()); err != nil {
			return nil, fmt.Errorf("head %s does not fit these weights: %w", f.head, err)
		}
		fmt.Fprintf(stdout, "embedding: siamese head %s (%d -> %d): distances are its style-space distances, smaller = more compatible\n", f.head, m.head.In(), m.head.Out())
	} else {
		fmt.Fprintf(stdout, "embedding: none (no -head): items are compared by their raw features, so distances\n")
		fmt.Fprintf(stdout, "  measure visual similarity under this network, not a learned style compatibility.\n")
	}
	if f.meta != "" {
		if m.cats, err = style.ReadCategories(f.meta, f.idColumn, f.catColumn); err != nil {
			return nil, err
		}
	}

	m.cat = &style.Catalog{}
	reused := false
	if f.catalog != "" {
		switch c, err := style.LoadCatalog(f.catalog); {
		case err == nil:
			m.cat, reused = c, true
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	rep, err := m.cat.AddImages(ctx, m.src, names, m.fx, m.head, &style.AddImagesOptions{
		Category: m.category, Model: modelDesc, Workers: f.workers, Progress: bars.Update,
	})
	bars.Finish()
	if errors.Is(err, style.ErrBackboneMismatch) {
		return nil, fmt.Errorf("catalogue %s was built with another model (%w); delete it or choose another -catalog", f.catalog, err)
	}
	if rep != nil && rep.Added > 0 && f.catalog != "" {
		// Saved even when interrupted, so that the next run resumes.
		if serr := m.cat.Save(f.catalog); serr != nil && err == nil {
			err = serr
		}
	}
	if err != nil {
		return nil, err
	}
	where := f.catalog
	switch {
	case where == "":
		where = "in memory"
	case reused:
		where += " (reused)"
	}
	fmt.Fprintf(stdout, "catalogue: %s: %d items; this run indexed %d of %d images in %s, %d already there, %d failed\n",
		where, m.cat.Len(), rep.Added, rep.Total, rep.Elapsed.Round(time.Millisecond), rep.Skipped, len(rep.Failed))
	for i, fl := range rep.Failed {
		if i == 5 {
			fmt.Fprintf(stderr, "  ... and %d more\n", len(rep.Failed)-5)
			break
		}
		fmt.Fprintf(stderr, "  skipped %s\n", fl)
	}
	ok = true
	return m, nil
}
