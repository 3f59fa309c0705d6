package main

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// web holds the page templates and the static files (CSS, JavaScript),
// served as they are: there is no build step.
//
//go:embed web
var web embed.FS

// maxListed is the number of catalogue items listed in the item picker.
const maxListed = 5000

// sampleSize is the number of catalogue items shown to browse from.
const sampleSize = 24

// parsePages parses each page with the shared layout.
func parsePages() map[string]*template.Template {
	pages := map[string]*template.Template{}
	for _, name := range []string{"score", "recommend"} {
		pages[name] = template.Must(template.New("").ParseFS(web, "web/layout.html", "web/"+name+".html"))
	}
	return pages
}

// staticHandler serves web/static under /static/, without listings.
func staticHandler() http.Handler {
	sub, err := fs.Sub(web, "web/static")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	})
}

// pageData is what the templates show.
type pageData struct {
	Page       string // "score" or "recommend"
	Title      string
	Loading    bool
	Model      string
	Cutoff     string
	Total      int
	HasCatalog bool
	MaxUpload  string

	// The recommendation page.
	Items      []itemInfo // the item picker's list
	Categories []string
	Sample     []card
	QueryID    string
	Query      *card
	K          int
	Other      bool
	Matches    []card
	Error      string
}

// card is a catalogue item on the page.
type card struct {
	recItem
	Href         string // its own recommendations
	ShowDistance bool
}

// basePage fills what every page shows.
func (s *server) basePage(page, title string) (*pageData, *model) {
	d := &pageData{Page: page, Title: title, MaxUpload: byteSize(s.cfg.MaxUpload), K: defaultK}
	m := s.model.Load()
	if m == nil {
		d.Loading = true
		return d, nil
	}
	d.Model = m.desc
	d.Cutoff = strconv.FormatFloat(m.cutoff(), 'g', 4, 64)
	d.Total = m.catalogLen()
	d.HasCatalog = m.cat != nil
	return d, m
}

// render executes a page into a buffer first, so that a template error
// gives a clean 500.
func (s *server) render(w http.ResponseWriter, status int, name string, d *pageData) {
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", d); err != nil {
		writeError(w, fmt.Errorf("page %s: %w", name, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// scorePage answers GET /: two photos in, a distance and a verdict out.
func (s *server) scorePage(w http.ResponseWriter, r *http.Request) {
	d, _ := s.basePage("score", "Do these go well together?")
	s.render(w, http.StatusOK, "score", d)
}

// recommendPage answers GET /recommend[?id=ITEM&k=K&other_category=1]:
// the item picker and, for an item, its matches, rendered on the server;
// the page's script adds the matches of an uploaded photo.
func (s *server) recommendPage(w http.ResponseWriter, r *http.Request) {
	d, m := s.basePage("recommend", "What goes with it?")
	if m == nil || m.cat == nil {
		s.render(w, http.StatusOK, "recommend", d)
		return
	}
	d.Items, _ = m.items(maxListed)
	d.Categories = m.categories
	q := r.URL.Query()
	status := http.StatusOK
	k, other, err := recommendParams(q)
	if err == nil {
		d.K, d.Other = k, other
		if id := q.Get("id"); id != "" {
			d.QueryID = id
			var items []recItem
			if items, err = recommendByID(m, id, k, other); err == nil {
				rid, _ := m.lookup(id)
				info := m.info(rid)
				d.Query = &card{recItem: recItem{ID: rid, Name: info.Name, Category: info.Category, ThumbnailURL: m.thumbURL(rid)}}
				for _, it := range items {
					d.Matches = append(d.Matches, card{recItem: it, Href: recommendHref(it.ID, k, other), ShowDistance: true})
				}
			}
		}
	}
	if err != nil {
		d.Error = err.Error()
		status = http.StatusBadRequest
		if ae, ok := err.(*apiError); ok {
			status = ae.status
		}
	}
	for _, it := range m.sample(sampleSize) {
		d.Sample = append(d.Sample, card{
			recItem: recItem{ID: it.ID, Name: it.Name, Category: it.Category, ThumbnailURL: m.thumbURL(it.ID)},
			Href:    recommendHref(it.ID, d.K, d.Other),
		})
	}
	s.render(w, status, "recommend", d)
}

// recommendHref is the page of an item's recommendations.
func recommendHref(id string, k int, other bool) string {
	v := url.Values{"id": {id}}
	if k != defaultK {
		v.Set("k", strconv.Itoa(k))
	}
	if other {
		v.Set("other_category", "1")
	}
	return "/recommend?" + v.Encode()
}

// byteSize writes n bytes for people: "16 MiB".
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
