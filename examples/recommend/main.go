// Command recommend indexes a folder of product photos into a style
// catalogue and prints the items that go best with a query item, with a
// contact sheet of the query and its matches.
//
//	go run ./examples/recommend -images ../shared/fashion/images \
//	    -meta ../shared/fashion/styles.csv -query 15970 -k 8 -other-category
//
// The catalogue is saved (-catalog, default catalog.bin) and reused by the
// next run, which only indexes images it does not hold yet. Without
// -weights the VGG16 network is generated from a formula (its features are
// not ImageNet features); without -head the raw features are compared, so
// the matches are visually similar items rather than learned style matches.
// The program says so in its output.
package main

import (
	"context"
	"flag"
	"fmt"
	"image"
	"io"
	"path/filepath"
	"strings"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/picture"
)

func main() {
	cli.Main("recommend", "run the same command again to finish indexing (images done are kept in the catalogue file)", run)
}

// run is the whole program, callable from tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("recommend", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var mf cli.ModelFlags
	mf.Register(fl, "catalog.bin", "articleType")
	query := fl.String("query", "", "item ID (file name, with or without extension) or image file to find matches for; empty: only index")
	k := fl.Int("k", 5, "number of matches")
	otherCat := fl.Bool("other-category", false, "leave out items of the query's category (no shoes for shoes)")
	sheet := fl.String("sheet", "recommend.png", "contact sheet PNG of the query and its matches; empty: none")
	thumb := fl.Int("thumb", 160, "size of each picture's box on the contact sheet, in pixels")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: recommend -images DIR [-meta CSV] [-weights FILE] [-head FILE] -query ID|IMAGE [flags]\n\n")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if *k <= 0 {
		return fmt.Errorf("-k %d: must be positive", *k)
	}
	if *thumb <= 0 || *thumb > 1024 {
		return fmt.Errorf("-thumb %d: must be between 1 and 1024", *thumb)
	}

	bars := cli.NewBars(stderr, mf.NoProgress)
	m, err := cli.OpenModel(ctx, &mf, stdout, stderr, bars)
	if err != nil {
		return err
	}
	defer m.Close()
	if *query == "" {
		fmt.Fprintln(stdout, "no -query given: nothing to recommend.")
		return nil
	}

	// The query: an item of the catalogue, or an image file.
	var (
		matches []style.Match
		qimg    image.Image
		qlabel  string
		qcat    string
		qID     = findItem(m.Cat, mf.Images, *query)
	)
	if qID != "" {
		i, _ := m.Cat.Index(qID)
		qcat = m.Cat.Item(i).Category
		if matches, err = m.Cat.RecommendItem(qID, *k, &style.RecommendOptions{ExcludeSameCategory: *otherCat}); err != nil {
			return err
		}
		qimg, _ = style.OpenImage(ctx, m.Src, qID)
		qlabel = qID
		fmt.Fprintf(stdout, "query: catalogue item %s (%s)\n", qID, orNone(qcat))
	} else {
		if qimg, err = style.LoadImage(ctx, *query); err != nil {
			return fmt.Errorf("-query %q is not an item of the catalogue, and not a readable image: %w", *query, err)
		}
		feat, err := m.FX.Features(qimg)
		if err != nil {
			return err
		}
		vec := feat
		if m.Head != nil {
			vec = m.Head.Embed(feat)
		}
		qcat = m.Category(*query)
		fmt.Fprintf(stdout, "query: image file %s (%s)\n", *query, orNone(qcat))
		opts := &style.RecommendOptions{}
		if *otherCat {
			if qcat == "" {
				fmt.Fprintln(stdout, "note: -other-category: the query file has no category in -meta, so no category is left out")
			}
			opts.ExcludeCategory = qcat
		}
		matches = m.Cat.Recommend(vec, *k, opts)
		qlabel = filepath.Base(*query)
	}

	what := "most compatible"
	if m.Head == nil {
		what = "most similar (raw features)"
	}
	excl := ""
	if *otherCat && qcat != "" {
		excl = fmt.Sprintf(", leaving out %s", qcat)
	}
	fmt.Fprintf(stdout, "top %d %s items%s:\n", len(matches), what, excl)
	for r, mt := range matches {
		fmt.Fprintf(stdout, "%3d. %-24s %-22s distance %.4f\n", r+1, mt.ID, orNone(mt.Category), mt.Distance)
	}
	if len(matches) < *k {
		fmt.Fprintf(stdout, "(only %d items pass the filters)\n", len(matches))
	}

	if *sheet == "" {
		return nil
	}
	imgs := make([]image.Image, len(matches))
	labels := make([]string, 0, 1+len(matches))
	labels = append(labels, "query\n"+qlabel+"\n"+orNone(qcat))
	for i, mt := range matches {
		img, err := style.OpenImage(ctx, m.Src, mt.ID)
		if err != nil {
			fmt.Fprintf(stderr, "contact sheet: %v\n", err) // drawn as a grey box
		}
		imgs[i] = img
		labels = append(labels, fmt.Sprintf("%d. %s\n%s\nd=%.4g", i+1, mt.ID, orNone(mt.Category), mt.Distance))
	}
	opts := &picture.SheetOptions{ThumbWidth: *thumb, ThumbHeight: *thumb, Enlarge: true}
	if err := picture.WriteContactSheet(*sheet, qimg, imgs, labels, opts); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "contact sheet: %s\n", *sheet)
	return nil
}

// findItem returns the catalogue ID that query names: an item ID with or
// without an image extension (see style.Catalog.Index), or the ID of a
// file inside the images folder given by its path. It returns "" if there
// is none.
func findItem(c *style.Catalog, images, query string) string {
	if i, ok := c.Index(query); ok {
		return c.Item(i).ID
	}
	absDir, err1 := filepath.Abs(images)
	absQuery, err2 := filepath.Abs(query)
	if err1 != nil || err2 != nil {
		return ""
	}
	if rel, err := filepath.Rel(absDir, absQuery); err == nil && filepath.IsLocal(rel) {
		if i, ok := c.Index(filepath.ToSlash(rel)); ok {
			return c.Item(i).ID
		}
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return strings.TrimSpace(s)
}
