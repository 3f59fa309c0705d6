package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // the formats the library decodes, for image.DecodeConfig
	_ "image/jpeg"
	_ "image/png"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Limits of a request's form beyond its total size.
const (
	maxParts      = 16      // parts of a multipart form
	maxValueBytes = 8 << 10 // a form value that is not a file, such as a URL
	maxK          = 100     // matches one recommendation may ask for
	defaultK      = 5
)

// upload is an image of a request: sent as a file, or named by a URL.
type upload struct {
	field string
	name  string // the file name or URL, for messages
	data  []byte // the encoded image once read or fetched
	url   string // "" for a file
}

// apiRequest is a parsed request: its images by field and its other values.
type apiRequest struct {
	images map[string]*upload
	values url.Values
}

// jsonRequest is the JSON form of a request.
type jsonRequest struct {
	A             string `json:"a"`
	B             string `json:"b"`
	Image         string `json:"image"`
	K             *int   `json:"k"`
	Category      string `json:"category"`
	OtherCategory bool   `json:"other_category"`
}

// parseRequest reads a request's body, at most MaxUpload bytes: a
// multipart form, a URL-encoded form or a JSON object. imageFields are the
// fields holding images (files, or URLs as plain values); the other values
// (k, category...) are merged with the query string's.
func (s *server) parseRequest(w http.ResponseWriter, r *http.Request, imageFields ...string) (*apiRequest, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxUpload)
	req := &apiRequest{images: map[string]*upload{}, values: url.Values{}}
	isImage := func(f string) bool {
		for _, name := range imageFields {
			if f == name {
				return true
			}
		}
		return false
	}
	addURL := func(field, raw string) error {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return nil
		}
		if req.images[field] != nil {
			return errorf(http.StatusBadRequest, "field %q given twice", field)
		}
		req.images[field] = &upload{field: field, name: raw, url: raw}
		return nil
	}

	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" {
		mt, err = "", nil
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "Content-Type %q: %v", ct, err)
	}
	switch mt {
	case "multipart/form-data":
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "multipart form: %v", err)
		}
		for n := 0; ; n++ {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, bodyError(err)
			}
			if n == maxParts {
				return nil, errorf(http.StatusBadRequest, "multipart form: more than %d parts", maxParts)
			}
			field := part.FormName()
			if isImage(field) && part.FileName() != "" {
				data, err := io.ReadAll(part)
				if err != nil {
					return nil, bodyError(err)
				}
				if req.images[field] != nil {
					return nil, errorf(http.StatusBadRequest, "field %q given twice", field)
				}
				if len(data) == 0 {
					continue // a file input left empty
				}
				req.images[field] = &upload{field: field, name: part.FileName(), data: data}
				continue
			}
			v, err := io.ReadAll(io.LimitReader(part, maxValueBytes+1))
			if err != nil {
				return nil, bodyError(err)
			}
			if len(v) > maxValueBytes {
				return nil, errorf(http.StatusBadRequest, "field %q: more than %d bytes (send images as files)", field, maxValueBytes)
			}
			if isImage(field) {
				if err := addURL(field, string(v)); err != nil {
					return nil, err
				}
			} else {
				req.values.Add(field, string(v))
			}
		}
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, bodyError(err)
		}
		for field, vs := range r.PostForm {
			for _, v := range vs {
				if isImage(field) {
					if err := addURL(field, v); err != nil {
						return nil, err
					}
				} else {
					req.values.Add(field, v)
				}
			}
		}
	case "application/json":
		var jr jsonRequest
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&jr); err != nil {
			return nil, bodyError(err)
		}
		if dec.More() {
			return nil, errorf(http.StatusBadRequest, "JSON body: more than one value")
		}
		for field, v := range map[string]string{"a": jr.A, "b": jr.B, "image": jr.Image} {
			if isImage(field) {
				if err := addURL(field, v); err != nil {
					return nil, err
				}
			}
		}
		if jr.K != nil {
			req.values.Set("k", strconv.Itoa(*jr.K))
		}
		if jr.Category != "" {
			req.values.Set("category", jr.Category)
		}
		if jr.OtherCategory {
			req.values.Set("other_category", "1")
		}
	case "":
		return nil, errorf(http.StatusBadRequest, "no Content-Type: send a multipart form, a URL-encoded form or JSON")
	default:
		return nil, errorf(http.StatusUnsupportedMediaType, "Content-Type %s: send multipart/form-data, application/x-www-form-urlencoded or application/json", mt)
	}
	for k, vs := range r.URL.Query() {
		if !req.values.Has(k) {
			req.values[k] = vs
		}
	}
	for _, f := range imageFields {
		if req.images[f] == nil {
			return nil, errorf(http.StatusBadRequest, "missing image %q: send it as a file of a multipart form, or its URL", f)
		}
	}
	return req, nil
}

// bodyError classifies an error reading a request's body.
func bodyError(err error) error {
	var mbe *http.MaxBytesError
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &mbe):
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", mbe.Limit)
	case errors.As(err, &se), errors.As(err, &te), errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "malformed request body: %v", err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return err
	}
	return errorf(http.StatusBadRequest, "reading the request body: %v", err)
}

// load fetches u's URL if it has one, and checks its image header: the
// format must be one the library decodes and the size within MaxPixels.
func (s *server) load(ctx context.Context, u *upload) error {
	if u.url != "" {
		data, err := s.fetch(ctx, u.field, u.url)
		if err != nil {
			return err
		}
		u.data = data
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(u.data))
	switch {
	case errors.Is(err, image.ErrFormat):
		return errorf(http.StatusUnsupportedMediaType, "image %q (%s): not a JPEG, PNG or GIF image", u.field, u.name)
	case err != nil:
		return errorf(http.StatusUnprocessableEntity, "image %q (%s): unreadable image header: %v", u.field, u.name, err)
	case cfg.Width <= 0 || cfg.Height <= 0:
		return errorf(http.StatusUnprocessableEntity, "image %q (%s): empty image (%dx%d pixels)", u.field, u.name, cfg.Width, cfg.Height)
	case int64(cfg.Width)*int64(cfg.Height) > int64(s.cfg.MaxPixels):
		return errorf(http.StatusRequestEntityTooLarge, "image %q (%s): %dx%d pixels, more than the limit of %d",
			u.field, u.name, cfg.Width, cfg.Height, s.cfg.MaxPixels)
	}
	return nil
}

// extract decodes images and returns their features, holding a worker
// (waiting for one until ctx is done).
func (s *server) extract(ctx context.Context, m *model, ups ...*upload) ([][]float32, error) {
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if s.beforeExtract != nil {
		s.beforeExtract(ctx)
	}
	imgs := make([]image.Image, len(ups))
	for i, u := range ups {
		if imgs[i], err = decodeImage(u.data, u.name); err != nil {
			if errors.Is(err, errTooLarge) {
				return nil, errorf(http.StatusRequestEntityTooLarge, "image %q: %v", u.field, err)
			}
			return nil, errorf(http.StatusUnprocessableEntity, "image %q: %v", u.field, err)
		}
		u.data = nil // the decoded image replaces it
	}
	feats, err := m.features(ctx, imgs)
	switch {
	case err == nil:
		return feats, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	}
	// The error names the image by its index in ups.
	fields := make([]string, len(ups))
	for i, u := range ups {
		fields[i] = fmt.Sprintf("%d is %q", i, u.field)
	}
	return nil, errorf(http.StatusUnprocessableEntity, "unusable image: %v (image %s)", err, strings.Join(fields, ", "))
}

// imageRequest admits a request for images, parses it, checks its other
// values with check (if not nil), fetches its URLs, checks its images and
// extracts their features, within the request timeout.
func (s *server) imageRequest(ctx context.Context, w http.ResponseWriter, r *http.Request, m *model, check func(*apiRequest) error, fields ...string) ([][]float32, error) {
	release, err := s.admit()
	if err != nil {
		return nil, err
	}
	defer release()
	req, err := s.parseRequest(w, r, fields...)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(req); err != nil {
			return nil, err
		}
	}
	ups := make([]*upload, len(fields))
	for i, f := range fields {
		ups[i] = req.images[f]
		if err := s.load(ctx, ups[i]); err != nil {
			return nil, err
		}
	}
	return s.extract(ctx, m, ups...)
}

// apiScore answers POST /api/score.
func (s *server) apiScore(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	m, err := s.ready()
	if err != nil {
		writeError(w, err)
		return
	}
	feats, err := s.imageRequest(ctx, w, r.WithContext(ctx), m, nil, "a", "b")
	if err != nil {
		writeError(w, err)
		return
	}
	res, err := m.score(feats[0], feats[1])
	if err != nil {
		writeError(w, errorf(http.StatusUnprocessableEntity, "these images cannot be compared: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// recItem is one recommendation as the API and the page show it.
type recItem struct {
	ID           string  `json:"id"`
	Name         string  `json:"name"`
	Category     string  `json:"category"`
	Distance     float64 `json:"distance"`
	ThumbnailURL string  `json:"thumbnail_url,omitempty"`
}

// recItems describes matches; it fails with 422 if a distance is not
// finite.
func recItems(m *model, ms []match) ([]recItem, error) {
	out := make([]recItem, len(ms))
	for i, mt := range ms {
		if math.IsNaN(mt.Distance) || math.IsInf(mt.Distance, 0) {
			return nil, errorf(http.StatusUnprocessableEntity, "the distance to %s is not a finite number (%v)", mt.ID, mt.Distance)
		}
		info := m.info(mt.ID)
		out[i] = recItem{ID: mt.ID, Name: info.Name, Category: info.Category, Distance: mt.Distance, ThumbnailURL: m.thumbURL(mt.ID)}
	}
	return out, nil
}

// thumbURL is the path of an item's thumbnail, "" without -images.
func (m *model) thumbURL(id string) string {
	if m.src == nil {
		return ""
	}
	return "/thumb/" + escapePath(id)
}

// escapePath escapes each slash-separated element of p.
func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// recommendParams reads k and other_category.
func recommendParams(v url.Values) (k int, other bool, err error) {
	k = defaultK
	if s := v.Get("k"); s != "" {
		if k, err = strconv.Atoi(s); err != nil || k < 1 || k > maxK {
			return 0, false, errorf(http.StatusBadRequest, "k=%q: must be a whole number from 1 to %d", s, maxK)
		}
	}
	switch s := v.Get("other_category"); s {
	case "", "0", "false", "off":
	case "1", "true", "on":
		other = true
	default:
		return 0, false, errorf(http.StatusBadRequest, "other_category=%q: must be 1 or 0", s)
	}
	return k, other, nil
}

// catalogModel returns the model if it has a catalogue.
func (s *server) catalogModel() (*model, error) {
	m, err := s.ready()
	if err != nil {
		return nil, err
	}
	if m.cat == nil {
		return nil, errorf(http.StatusNotFound, "no catalogue: the server was started without -catalog")
	}
	return m, nil
}

// recommendByID returns the recommendations for the catalogue item id.
func recommendByID(m *model, id string, k int, other bool) ([]recItem, error) {
	if id == "" {
		return nil, errorf(http.StatusBadRequest, "missing id: the catalogue item to find matches for")
	}
	rid, ok := m.lookup(id)
	if !ok {
		return nil, errorf(http.StatusNotFound, "no item %q in the catalogue", id)
	}
	ms, err := m.recommendItem(rid, k, other)
	if errors.Is(err, errUnknownItem) {
		return nil, errorf(http.StatusNotFound, "no item %q in the catalogue", id)
	}
	if err != nil {
		return nil, err
	}
	return recItems(m, ms)
}

// apiRecommendItem answers GET /api/recommend?id=...
func (s *server) apiRecommendItem(w http.ResponseWriter, r *http.Request) {
	m, err := s.catalogModel()
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	k, other, err := recommendParams(q)
	if err != nil {
		writeError(w, err)
		return
	}
	items, err := recommendByID(m, q.Get("id"), k, other)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, items)
}

// apiRecommendImage answers POST /api/recommend with a photo.
func (s *server) apiRecommendImage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	m, err := s.catalogModel()
	if err != nil {
		writeError(w, err)
		return
	}
	var (
		k       int
		exclude string
	)
	check := func(req *apiRequest) error {
		var other bool
		var err error
		if k, other, err = recommendParams(req.values); err != nil {
			return err
		}
		if other {
			if exclude = req.values.Get("category"); exclude == "" {
				return errorf(http.StatusBadRequest, "other_category needs category, the photo's category")
			}
		}
		return nil
	}
	feats, err := s.imageRequest(ctx, w, r.WithContext(ctx), m, check, "image")
	if err != nil {
		writeError(w, err)
		return
	}
	q := m.query(feats[0])
	if !finite(q) {
		writeError(w, errorf(http.StatusUnprocessableEntity, "the photo's embedding is not made of finite numbers"))
		return
	}
	items, err := recItems(m, m.recommend(q, k, exclude))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, items)
}
