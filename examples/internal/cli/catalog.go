package cli

// The catalogue flags of examples/recommend and examples/tsne, and the
// indexing of a folder into a catalogue.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stylespace/style"
)

// Defaults of the catalogue flags, the same in every program.
const (
	DefaultCatalog        = "catalog.stylecat"
	DefaultCategoryColumn = "articleType"
	DefaultNameColumn     = "productDisplayName"
)

// CatalogFlags are the flags choosing the images, their metadata and the
// catalogue file.
type CatalogFlags struct {
	Images     string
	Meta       string
	IDColumn   string
	CatColumn  string
	NameColumn string
	Catalog    string
	Limit      int

	nameSet bool // -name-column given explicitly
}

// Register defines the catalogue flags on fl.
func (c *CatalogFlags) Register(fl *flag.FlagSet) {
	fl.StringVar(&c.Images, "images", "", "`folder` of product images to index (JPEG, PNG or GIF, searched recursively)")
	fl.StringVar(&c.Meta, "meta", "", "optional CSV `file` of facts about each image, e.g. ../shared/fashion/styles.csv")
	fl.StringVar(&c.IDColumn, "id-column", "id", "`column` of -meta holding the image ID (the file name without extension, or with it)")
	fl.StringVar(&c.CatColumn, "category-column", DefaultCategoryColumn, "`column` of -meta holding the category (e.g. articleType, subCategory, masterCategory)")
	fl.Func("name-column", "`column` of -meta holding the product name shown with results (default "+DefaultNameColumn+" when -meta has it)", func(s string) error {
		c.NameColumn, c.nameSet = s, true
		return nil
	})
	fl.StringVar(&c.Catalog, "catalog", DefaultCatalog, "catalogue `file`: reused and completed if it exists, written after indexing, with a journal (file.journal) recording the indexing as it goes so that even a killed run resumes; empty: keep it in memory only")
	fl.IntVar(&c.Limit, "limit", 0, "index only the first `N` images in name order (0: all)")
}

// Check validates the flag values without reading anything.
func (c *CatalogFlags) Check() error {
	if c.Images == "" {
		return Usagef("-images is required: the folder of product images to index")
	}
	if c.Limit < 0 {
		return Usagef("-limit %d: must be 0 (all) or positive", c.Limit)
	}
	return nil
}

// JournalPath is the journal of the catalogue file path, where
// style.Catalog.AddImages records its work between saves.
func JournalPath(path string) string { return path + ".journal" }

// FailuresPath is where the failure report of the indexing goes: next to
// the catalogue file, or in the current folder without one.
func (c *CatalogFlags) FailuresPath() string {
	if c.Catalog == "" {
		return FailuresFile
	}
	return filepath.Join(filepath.Dir(c.Catalog), FailuresFile)
}

// Model is what the flags select, with the catalogue built.
type Model struct {
	Src   *style.DirSource
	FX    *style.Network
	Head  *style.SiameseHead
	Meta  *style.Metadata // the -meta table; nil without -meta
	Cat   *style.Catalog
	Names []string // the images listed in the folder (after -limit)

	catColumn, nameColumn string
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

// Name returns the -meta product name of an image name or file, "" if
// there is none.
func (m *Model) Name(id string) string {
	if m.Meta == nil || m.nameColumn == "" {
		return ""
	}
	return m.Meta.Value(id, m.nameColumn)
}

// OpenModel checks the outputs, loads the network, the head and the
// metadata, lists the images and builds or completes the catalogue,
// printing what it does on stdout (honestly, when the model is generated),
// progress on bars and failed images on stderr. The indexing is journaled
// beside the catalogue file (see JournalPath and style.Catalog.AddImages)
// and the catalogue saved at the end, even when interrupted, unless the run
// changed nothing. outputs are the files the
// program will write besides the catalogue and the failure report: they
// must be writable, and are never indexed.
func OpenModel(ctx context.Context, mf *ModelFlags, cf *CatalogFlags, outputs []string, stdout, stderr io.Writer, bars *Bars) (*Model, error) {
	if err := mf.Check(); err != nil {
		return nil, err
	}
	if err := cf.Check(); err != nil {
		return nil, err
	}
	if err := CheckImageFolder(cf.Images); err != nil {
		return nil, err
	}
	failures := cf.FailuresPath()
	outputs = append([]string{cf.Catalog, failures}, outputs...)
	for _, o := range outputs {
		if err := CheckFile(o); err != nil {
			return nil, err
		}
	}
	m := &Model{}
	var err error
	if m.Src, err = style.NewDirSource(cf.Images); err != nil {
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
	names = Exclude(names, cf.Images, outputs)
	if len(names) == 0 {
		return nil, fmt.Errorf("no JPEG, PNG or GIF images in %s", cf.Images)
	}
	if cf.Limit > 0 && cf.Limit < len(names) {
		names = names[:cf.Limit]
	}
	m.Names = names

	if m.FX, err = mf.Network(ctx, stdout, bars); err != nil {
		return nil, err
	}
	if m.Head, err = mf.LoadHead(m.FX); err != nil {
		return nil, err
	}
	if m.Head != nil {
		fmt.Fprintf(stdout, "embedding: siamese head %s (%d -> %d): distances are its style-space distances, smaller = more compatible\n", mf.Head, HeadIn(m.Head), m.Head.Dense.Out)
	} else {
		fmt.Fprintf(stdout, "embedding: none (no -head): items are compared by their raw features, so distances\n")
		fmt.Fprintf(stdout, "  measure visual similarity under this network, not a learned style compatibility.\n")
	}
	if cf.Meta != "" {
		if m.Meta, err = style.ReadMetadata(cf.Meta, cf.IDColumn); err != nil {
			return nil, err
		}
		cols := m.Meta.Columns()
		if !slices.Contains(cols, cf.CatColumn) {
			return nil, Usagef("-category-column %q: no such column in %s (it has %s)", cf.CatColumn, cf.Meta, strings.Join(cols, ", "))
		}
		m.catColumn = cf.CatColumn
		switch {
		case !cf.nameSet:
			if slices.Contains(cols, DefaultNameColumn) {
				m.nameColumn = DefaultNameColumn
			}
		case cf.NameColumn != "" && !slices.Contains(cols, cf.NameColumn):
			return nil, Usagef("-name-column %q: no such column in %s (it has %s)", cf.NameColumn, cf.Meta, strings.Join(cols, ", "))
		default:
			m.nameColumn = cf.NameColumn
		}
	}

	m.Cat = &style.Catalog{}
	reused, journaled := false, false
	if cf.Catalog != "" {
		// LoadCatalog replays the journal a killed run left (see below).
		_, jerr := os.Lstat(JournalPath(cf.Catalog))
		journaled = jerr == nil
		switch c, err := style.LoadCatalog(cf.Catalog); {
		case err == nil:
			m.Cat, reused = c, true
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err
		}
	}
	before := m.Cat.Len()
	// With CatalogPath, AddImages journals its work as it goes (every
	// 1,000 items and 30 seconds), so that even a killed run loses little:
	// the next one replays the journal and resumes.
	rep, err := m.Cat.AddImages(ctx, m.Src, names, m.FX, m.Head, &style.ExtractOptions{
		Category: m.Category, Workers: mf.Workers, Progress: bars.Update, CatalogPath: cf.Catalog,
	})
	bars.Finish()
	if errors.Is(err, style.ErrBackboneMismatch) {
		return nil, fmt.Errorf("catalogue %s was built with another model than the one given (%s%s): delete it or choose another -catalog",
			cf.Catalog, Describe(m.FX.Backbone()), headDesc(mf.Head))
	}
	if rep != nil && cf.Catalog != "" {
		// Save folds the journal into the file, and is done even when
		// interrupted. A run that changed nothing, and had no journal to
		// fold, does not rewrite the file: it removes the journal
		// AddImages opened, which holds no record.
		changed := rep.Done > 0 || m.Cat.Len() != before || journaled || !reused
		var serr error
		if changed {
			serr = m.Cat.Save(cf.Catalog)
		} else {
			os.Remove(JournalPath(cf.Catalog))
		}
		switch {
		case serr != nil && err == nil:
			err = serr
		case serr == nil && ctx.Err() != nil && m.Cat.Len() > 0:
			err = Resumable(err, fmt.Sprintf("run the same command again to resume (the %d images indexed are kept in %s)", m.Cat.Len(), cf.Catalog))
		}
	}
	if err != nil {
		return nil, err
	}
	where := cf.Catalog
	switch {
	case where == "":
		where = "in memory"
	case reused:
		where += " (reused)"
	}
	fmt.Fprintf(stdout, "catalogue: %s: %d items; this run indexed %d of %d images in %s, %d already there, %d failed\n",
		where, m.Cat.Len(), rep.Done, rep.Total, rep.Elapsed.Round(time.Millisecond), rep.Skipped, len(rep.Failed))
	if err := ReportFailures(stderr, failures, rep.Failed, rep.Total, cf.Images); err != nil {
		return nil, err
	}
	if m.Cat.Len() == 0 {
		return nil, fmt.Errorf("no image of %s could be indexed (see %s)", cf.Images, failures)
	}
	ok = true
	return m, nil
}

func headDesc(head string) string {
	if head == "" {
		return ", no head"
	}
	return ", head " + head
}
