package main

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"image/png"
	"io/fs"
	"net/http"
	"strconv"
	"sync"
)

// Thumbnail sizes, the longer side in pixels.
const (
	defaultThumb = 160
	minThumb     = 16
	maxThumb     = 512
)

// thumb answers GET /thumb/{id...}: a thumbnail of a catalogue item. Only
// IDs of the catalogue are served, read through the -images folder, which
// refuses names escaping it.
func (s *server) thumb(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	m, err := s.catalogModel()
	if err != nil {
		writeError(w, err)
		return
	}
	id := r.PathValue("id")
	rid, ok := m.lookup(id)
	if !ok {
		writeError(w, errorf(http.StatusNotFound, "no item %q in the catalogue", id))
		return
	}
	if m.src == nil {
		writeError(w, errorf(http.StatusNotFound, "no photos: the server was started without -images"))
		return
	}
	size := defaultThumb
	if v := r.URL.Query().Get("size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < minThumb || size > maxThumb {
			writeError(w, errorf(http.StatusBadRequest, "size=%q: must be a whole number from %d to %d", v, minThumb, maxThumb))
			return
		}
	}
	key := thumbKey{rid, size}
	t, ok := s.thumbs.get(key)
	if !ok {
		if t, err = s.makeThumb(ctx, m, rid, size); err != nil {
			writeError(w, err)
			return
		}
		s.thumbs.put(key, t)
	}
	h := w.Header()
	h.Set("Content-Type", t.contentType)
	h.Set("Content-Length", strconv.Itoa(len(t.data)))
	// The catalogue does not change while the server runs.
	h.Set("Cache-Control", "public, max-age=3600")
	w.Write(t.data)
}

// makeThumb reads, scales and encodes the photo of the catalogue item id,
// holding one of the thumbnail slots.
func (s *server) makeThumb(ctx context.Context, m *model, id string, size int) (encodedThumb, error) {
	select {
	case s.thumbSlots <- struct{}{}:
		defer func() { <-s.thumbSlots }()
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return encodedThumb{}, &apiError{status: http.StatusServiceUnavailable, retryAfter: true,
				msg: "overloaded: no thumbnail slot became free within the request timeout"}
		}
		return encodedThumb{}, ctx.Err()
	}
	img, err := m.openItem(ctx, id)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, errInvalidName):
		return encodedThumb{}, errorf(http.StatusNotFound, "no photo of item %q in the images folder", id)
	case err != nil:
		return encodedThumb{}, err // logged; a 500: the catalogue's photo is broken
	}
	t := thumbnail(img, size)
	var buf bytes.Buffer
	if o, ok := t.(interface{ Opaque() bool }); ok && o.Opaque() {
		err = jpeg.Encode(&buf, t, &jpeg.Options{Quality: 85})
		return encodedThumb{data: buf.Bytes(), contentType: "image/jpeg"}, err
	}
	err = png.Encode(&buf, t)
	return encodedThumb{data: buf.Bytes(), contentType: "image/png"}, err
}

type thumbKey struct {
	id   string
	size int
}

type encodedThumb struct {
	data        []byte
	contentType string
}

// thumbCache keeps the last thumbnails made, at most max of them, evicting
// the oldest first. It is safe for concurrent use.
type thumbCache struct {
	mu    sync.Mutex
	max   int
	m     map[thumbKey]encodedThumb
	order []thumbKey
}

func newThumbCache(max int) *thumbCache {
	return &thumbCache{max: max, m: make(map[thumbKey]encodedThumb)}
}

func (c *thumbCache) get(k thumbKey) (encodedThumb, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[k]
	return t, ok
}

func (c *thumbCache) put(k thumbKey, t encodedThumb) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	if len(c.order) == c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[k] = t
	c.order = append(c.order, k)
}
