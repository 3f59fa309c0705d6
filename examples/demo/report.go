package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/stylespace/style"
	"github.com/stylespace/style/internal/atomicfile"
)

// recommendation is one recommended product, with the hidden truth the
// demo knows about it.
type recommendation struct {
	item      item
	distance  float64
	verdict   style.Verdict
	sameStyle bool
}

// demoReport returns the Markdown sections the demo adds to the study's
// report: the recommendations for query, with how many share its hidden
// style, and the style-space pictures. Picture names are relative to the
// report's folder.
func demoReport(query item, recs []recommendation, cutoff float64, sheet string, maps []string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	same, within := 0, 0
	for _, r := range recs {
		if r.sameStyle {
			same++
		}
		if r.verdict == style.Compatible {
			within++
		}
	}
	p("\n## Recommendations\n\n")
	p("The catalogue holds every generated product embedded by the trained head. For the query %s (%s %s), the %d nearest products of other categories:\n\n",
		query.ID, query.styleName(), query.Category, len(recs))
	p("**%d of %d recommendations share the query's hidden style** (%s); the head learned the styles only from the labelled pairs. %d of %d are within the cutoff %.4f.\n\n",
		same, len(recs), query.styleName(), within, len(recs), cutoff)
	p("| item | category | hidden style | distance | within the cutoff |\n|---|---|---|---|---|\n")
	for _, r := range recs {
		mark := ""
		if r.sameStyle {
			mark = " (same)"
		}
		yes := "no"
		if r.verdict == style.Compatible {
			yes = "yes"
		}
		p("| %s | %s | %s%s | %.4f | %s |\n", r.item.ID, r.item.Category, r.item.styleName(), mark, r.distance, yes)
	}
	p("\n![Recommendations for %s](%s)\n\n", query.ID, filepath.ToSlash(sheet))
	p("## Style space\n\n")
	p("A t-SNE map of the catalogue's embeddings: products of one hidden style should gather, whatever their category.\n\n")
	for _, m := range maps {
		name := strings.TrimSuffix(filepath.Base(m), filepath.Ext(m))
		p("![%s](%s)\n\n", strings.ReplaceAll(name, "_", " "), filepath.ToSlash(m))
	}
	return b.String()
}

// appendReport adds sections to the Markdown report at path, atomically.
func appendReport(path, sections string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		if _, err := w.Write(old); err != nil {
			return err
		}
		_, err := io.WriteString(w, sections)
		return err
	})
}
