// Command recommend indexes a folder of product photos into a style
// catalogue and prints the items that go best with a query item, with a
// contact sheet of the query and its matches.
//
//	go run ./examples/recommend -images ../shared/fashion/images \
//	    -meta ../shared/fashion/styles.csv -query 15970 -k 8 -other-category
//
// The catalogue is saved (-catalog, default catalog.stylecat) and reused by
// the next run, which only indexes images it does not hold yet; an
// interrupted indexing resumes. While it indexes, the program records its
// work in a journal beside the file (catalog.stylecat.journal) every 1,000
// images and 30 seconds, so that even a killed run loses at most that much:
// the next run replays the journal and goes on, and the journal is folded
// into the file when the catalogue is saved. Without -weights the VGG16 network is
// generated from a formula (its features are not ImageNet features);
// without -head the raw features are compared, so the matches are visually
// similar items rather than learned style matches. The program says so in
// its output. With -meta, the matches show their category and product name
// (-category-column, -name-column). The contact sheet (-sheet) shows each
// match's distance; with -head it also marks the matches within the head's
// cutoff (those it calls compatible) with a green frame and "goes
// together". -json prints the results as one JSON object on the standard
// output, the rest going to the standard error.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"image"
	"io"
	"math"
	"path/filepath"
	"strings"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/picture"
)

func main() {
	cli.Main("recommend", run)
}

// Output is what -json prints.
type Output struct {
	Query   Entry   `json:"query"`
	Head    string  `json:"head,omitempty"` // "" when raw features are compared
	Matches []Entry `json:"matches"`
	Sheet   string  `json:"sheet,omitempty"`
}

// Entry is the query or a match of Output.
type Entry struct {
	Rank     int      `json:"rank,omitempty"`
	ID       string   `json:"id,omitempty"`   // catalogue item; "" for a query file
	File     string   `json:"file,omitempty"` // the query file, if not an item
	Name     string   `json:"name,omitempty"`
	Category string   `json:"category,omitempty"`
	Distance *float64 `json:"distance,omitempty"` // null if not finite
}

// finite returns a pointer to d, or nil for NaN and infinities, which
// JSON cannot hold.
func finite(d float64) *float64 {
	if math.IsNaN(d) || math.IsInf(d, 0) {
		return nil
	}
	return &d
}

// run is the whole program, callable from tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("recommend", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var (
		mf cli.ModelFlags
		cf cli.CatalogFlags
	)
	mf.Register(fl, cli.OptionalHead)
	cf.Register(fl)
	query := fl.String("query", "", "item ID (file name, with or without extension) or image file to find matches for; empty: only index")
	k := fl.Int("k", 5, "number of matches")
	otherCat := fl.Bool("other-category", false, "leave out items of the query's category (no shoes for shoes)")
	sheet := fl.String("sheet", "recommend.png", "contact sheet PNG `file` of the query and its matches; empty: none")
	thumb := fl.Int("thumb", 160, "size of each picture's box on the contact sheet, in pixels")
	asJSON := fl.Bool("json", false, "print the results as JSON on the standard output (messages go to the standard error)")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: recommend -images DIR [-meta CSV] [-weights FILE] [-head FILE] -query ID|IMAGE [flags]\n\n")
		fl.PrintDefaults()
	}
	pos, err := cli.Parse(fl, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return cli.Usagef("unexpected arguments %q (all settings are flags; see -h)", pos)
	}
	if *k <= 0 {
		return cli.Usagef("-k %d: must be positive", *k)
	}
	if *thumb <= 0 || *thumb > 1024 {
		return cli.Usagef("-thumb %d: must be between 1 and 1024", *thumb)
	}
	if *query == "" {
		*sheet = ""
	}

	info := stdout
	if *asJSON {
		info = stderr
	}
	bars := cli.NewBars(stderr, mf.Quiet)
	m, err := cli.OpenModel(ctx, &mf, &cf, []string{*sheet}, info, stderr, bars)
	if err != nil {
		return err
	}
	defer m.Close()
	if *query == "" {
		fmt.Fprintln(info, "no -query given: nothing to recommend.")
		if *asJSON {
			return json.NewEncoder(stdout).Encode(Output{Matches: []Entry{}})
		}
		return nil
	}

	// The query: an item of the catalogue, or an image file.
	var (
		matches []style.Match
		qimg    image.Image
		qlabel  string
		qcat    string
		qEntry  Entry
		qID     = findItem(m.Cat, cf.Images, *query)
	)
	if qID != "" {
		i, _ := m.Cat.Index(qID)
		qcat = m.Cat.Item(i).Category
		if matches, err = m.Cat.RecommendItem(qID, *k, &style.RecommendOptions{ExcludeSameCategory: *otherCat}); err != nil {
			return err
		}
		qimg, _ = style.OpenImage(ctx, m.Src, qID)
		qlabel = qID
		qEntry = Entry{ID: qID, Name: m.Name(qID), Category: qcat}
		fmt.Fprintf(info, "query: catalogue item %s (%s)%s\n", qID, orNone(qcat), named(m.Name(qID)))
	} else {
		if qimg, err = style.LoadImage(ctx, *query); err != nil {
			return fmt.Errorf("-query %q is not an item of the catalogue, and not a readable image: %w", *query, err)
		}
		feat, err := m.FX.Features(qimg)
		if err != nil {
			return fmt.Errorf("-query %s: %w", *query, err)
		}
		vec := feat
		if m.Head != nil {
			vec = m.Head.Embed(feat)
		}
		qcat = m.Category(*query)
		qEntry = Entry{File: *query, Name: m.Name(*query), Category: qcat}
		fmt.Fprintf(info, "query: image file %s (%s)%s\n", *query, orNone(qcat), named(m.Name(*query)))
		opts := &style.RecommendOptions{}
		if *otherCat {
			if qcat == "" {
				fmt.Fprintln(info, "note: -other-category: the query file has no category in -meta, so no category is left out")
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
	res := Output{Query: qEntry, Head: mf.Head, Matches: make([]Entry, len(matches))}
	fmt.Fprintf(info, "top %d %s items%s:\n", len(matches), what, excl)
	for r, mt := range matches {
		name := m.Name(mt.ID)
		res.Matches[r] = Entry{Rank: r + 1, ID: mt.ID, Name: name, Category: mt.Category, Distance: finite(mt.Distance)}
		if !*asJSON {
			fmt.Fprintf(stdout, "%3d. %-24s %-22s distance %.4f%s\n", r+1, mt.ID, orNone(mt.Category), mt.Distance, nameColumn(name))
		}
	}
	if len(matches) < *k {
		fmt.Fprintf(info, "(only %d items pass the filters)\n", len(matches))
	}

	if *sheet != "" {
		imgs := make([]image.Image, len(matches))
		dists := make([]float64, len(matches))
		labels := make([]string, 0, 1+len(matches))
		labels = append(labels, "query\n"+qlabel+"\n"+orNone(qcat))
		for i, mt := range matches {
			img, err := style.OpenImage(ctx, m.Src, mt.ID)
			if err != nil {
				fmt.Fprintf(stderr, "contact sheet: %s\n", cli.Message(err)) // drawn as a grey box
			}
			imgs[i] = img
			dists[i] = mt.Distance
			labels = append(labels, fmt.Sprintf("%d. %s\n%s", i+1, mt.ID, orNone(mt.Category)))
		}
		// The sheet prints each match's distance under its label and, with
		// a head, marks the matches within its cutoff as going together.
		opts := &picture.SheetOptions{ThumbWidth: *thumb, ThumbHeight: *thumb, Enlarge: true, Distances: dists}
		if m.Head != nil {
			opts.Cutoff = m.Head.Cutoff
		}
		if err := picture.WriteContactSheet(*sheet, qimg, imgs, labels, opts); err != nil {
			return err
		}
		fmt.Fprintf(info, "contact sheet: %s\n", *sheet)
		res.Sheet = *sheet
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
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

// named is a product name in parentheses after a query, "" if none.
func named(name string) string {
	if name == "" {
		return ""
	}
	return ": " + strings.TrimSpace(name)
}

// nameColumn is a product name at the end of a match line, "" if none.
func nameColumn(name string) string {
	if name == "" {
		return ""
	}
	return "  " + strings.TrimSpace(name)
}
