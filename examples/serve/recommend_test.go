package main

import (
	"bytes"
	"fmt"
	"image"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
)

func TestRecommendItem(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	ts := newTestServer(t, m, testConfig(), nil)
	id := m.cat.Item(3).ID
	bare := strings.TrimSuffix(id, ".jpg")

	var got []recItem
	resp := get(t, ts.URL+"/api/recommend?id="+bare+"&k=6")
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	resp.json(t, &got)
	want, err := m.cat.RecommendItem(id, 6, nil)
	require.NoError(t, err)
	require.Len(t, got, 6)
	for i, w := range want {
		assert.Equal(t, w.ID, got[i].ID)
		assert.Equal(t, w.Category, got[i].Category)
		assert.Equal(t, w.Distance, got[i].Distance)
		assert.Equal(t, "/thumb/"+w.ID, got[i].ThumbnailURL)
		name := m.meta.Value(w.ID, "productDisplayName")
		require.NotEmpty(t, name, "%s has a name in styles.csv", w.ID)
		assert.Equal(t, name, got[i].Name)
		assert.NotEqual(t, id, got[i].ID, "the query item itself is left out")
	}

	t.Run("default k", func(t *testing.T) {
		var got []recItem
		resp := get(t, ts.URL+"/api/recommend?id="+id)
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		resp.json(t, &got)
		assert.Len(t, got, defaultK)
	})
	t.Run("other category", func(t *testing.T) {
		var got []recItem
		resp := get(t, ts.URL+"/api/recommend?id="+id+"&k=100&other_category=1")
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		resp.json(t, &got)
		cat := m.info(id).Category
		require.NotEmpty(t, cat)
		same := 0
		for i := range m.cat.Len() {
			if m.cat.Item(i).Category == cat {
				same++
			}
		}
		assert.Len(t, got, m.cat.Len()-same, "every item but those of %s", cat)
		for _, it := range got {
			assert.NotEqual(t, cat, it.Category)
		}
	})
	for _, tc := range []struct {
		query  string
		status int
		msg    string
	}{
		{"id=nope.jpg", http.StatusNotFound, `no item "nope.jpg"`},
		{"id=../../../shared/images/matching_1.jpg", http.StatusNotFound, "no item"},
		{"", http.StatusBadRequest, "missing id"},
		{"id=" + id + "&k=0", http.StatusBadRequest, "k="},
		{"id=" + id + "&k=101", http.StatusBadRequest, "k="},
		{"id=" + id + "&k=five", http.StatusBadRequest, "k="},
		{"id=" + id + "&other_category=maybe", http.StatusBadRequest, "other_category"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			resp := get(t, ts.URL+"/api/recommend?"+tc.query)
			assert.Equal(t, tc.status, resp.status, "%s", resp.body)
			assert.Contains(t, resp.errorMessage(t), tc.msg)
		})
	}
}

func TestRecommendImage(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	ts := newTestServer(t, m, testConfig(), nil)
	id := m.cat.Item(5).ID
	photo := fileField(t, "image", f.images+"/"+id)

	// A catalogue item's own photo: it comes first, at the distance floor.
	var got []recItem
	body, ct := multipartBody(t, photo)
	resp := post(t, ts.URL+"/api/recommend?k=4", ct, body)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	resp.json(t, &got)
	require.Len(t, got, 4)
	assert.Equal(t, id, got[0].ID)
	assert.InDelta(t, 0, got[0].Distance, 1e-6)
	img, err := style.DecodeImage(bytes.NewReader(photo.data), id)
	require.NoError(t, err)
	feat, err := m.fx.Features(img)
	require.NoError(t, err)
	want := m.cat.Recommend(m.head.Embed(feat), 4, nil)
	for i, w := range want {
		assert.Equal(t, w.ID, got[i].ID)
		assert.Equal(t, w.Distance, got[i].Distance)
	}

	t.Run("leave out its category", func(t *testing.T) {
		cat := m.info(id).Category
		var got []recItem
		body, ct := multipartBody(t, photo, part{name: "category", data: []byte(cat)}, part{name: "other_category", data: []byte("on")})
		resp := post(t, ts.URL+"/api/recommend?k=10", ct, body)
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		resp.json(t, &got)
		assert.Len(t, got, 10)
		for _, it := range got {
			assert.NotEqual(t, cat, it.Category)
		}
	})
	t.Run("JSON URL", func(t *testing.T) {
		ps := photoServer(t)
		var got []recItem
		resp := post(t, ts.URL+"/api/recommend", "application/json",
			strings.NewReader(fmt.Sprintf(`{"image": %q, "k": 2}`, ps.URL+"/photos/matching_1.jpg")))
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		resp.json(t, &got)
		assert.Len(t, got, 2)
	})
	for _, tc := range []struct {
		name   string
		parts  []part
		query  string
		status int
		msg    string
	}{
		{"other category without category", []part{photo, {name: "other_category", data: []byte("1")}}, "", http.StatusBadRequest, "needs category"},
		{"bad k", []part{photo}, "?k=0", http.StatusBadRequest, "k="},
		{"no image", []part{{name: "k", data: []byte("3")}}, "", http.StatusBadRequest, `missing image "image"`},
		{"not an image", []part{{name: "image", file: "x.jpg", data: []byte("GIF87a?")}}, "", http.StatusUnprocessableEntity, "unreadable image header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := multipartBody(t, tc.parts...)
			resp := post(t, ts.URL+"/api/recommend"+tc.query, ct, body)
			assert.Equal(t, tc.status, resp.status, "%s", resp.body)
			assert.Contains(t, resp.errorMessage(t), tc.msg)
		})
	}
}

func TestRecommendWithoutCatalog(t *testing.T) {
	f := newFixture(t)
	cfg := f.cfg
	cfg.Catalog, cfg.Images, cfg.Meta = "", "", ""
	m, err := loadModel(t.Context(), cfg)
	require.NoError(t, err)
	ts := newTestServer(t, m, testConfig(), nil)
	for _, resp := range []response{
		get(t, ts.URL+"/api/recommend?id=1.jpg"),
		post(t, ts.URL+"/api/recommend", "application/json", strings.NewReader(`{"image": "http://127.0.0.1/a.jpg"}`)),
		get(t, ts.URL+"/thumb/1.jpg"),
	} {
		assert.Equal(t, http.StatusNotFound, resp.status, "%s", resp.body)
		assert.Contains(t, resp.errorMessage(t), "without -catalog")
	}
	resp := get(t, ts.URL+"/recommend")
	assert.Equal(t, http.StatusOK, resp.status)
	assert.Contains(t, string(resp.body), "started without a catalogue")
}

func TestThumb(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	ts := newTestServer(t, m, testConfig(), nil)
	id := m.cat.Item(0).ID
	orig, err := style.LoadImage(t.Context(), f.images+"/"+id)
	require.NoError(t, err)
	long := max(orig.Bounds().Dx(), orig.Bounds().Dy())

	for _, tc := range []struct {
		query string
		box   int
	}{{"", defaultThumb}, {"?size=16", 16}} {
		resp := get(t, ts.URL+"/thumb/"+id+tc.query)
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		assert.Equal(t, "image/jpeg", resp.header.Get("Content-Type"))
		assert.Contains(t, resp.header.Get("Cache-Control"), "max-age")
		img, _, err := image.Decode(bytes.NewReader(resp.body))
		require.NoError(t, err)
		b := img.Bounds()
		// The longer side fills the box, or keeps its size: thumbnails
		// never enlarge.
		assert.Equal(t, min(tc.box, long), max(b.Dx(), b.Dy()))
	}
	// The bare ID works too, and a second request comes from the cache.
	resp := get(t, ts.URL+"/thumb/"+strings.TrimSuffix(id, ".jpg"))
	require.Equal(t, http.StatusOK, resp.status)
	_, cached := ts.s.thumbs.get(thumbKey{id, defaultThumb})
	assert.True(t, cached)

	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/thumb/nope.jpg", http.StatusNotFound},
		{"/thumb/" + id + "?size=8", http.StatusBadRequest},
		{"/thumb/" + id + "?size=big", http.StatusBadRequest},
		// Paths out of the images folder: never served, whatever the
		// encoding. The mux cleans plain dot segments with a redirect to
		// a path that is not a thumbnail; escaped ones reach the handler
		// as an ID the catalogue does not have.
		{"/thumb/..%2f..%2f..%2fimages%2fmatching_1.jpg", http.StatusNotFound},
		{"/thumb/%2e%2e/%2e%2e/styles.csv", http.StatusNotFound},
		{"/thumb/../../../../etc/passwd", http.StatusNotFound},
		{"/thumb/%2fetc%2fpasswd", http.StatusNotFound},
	} {
		t.Run(tc.path, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, ts.URL, nil)
			require.NoError(t, err)
			req.URL.Opaque = tc.path // sent as written, not cleaned by the client
			resp := do(t, nil, req)
			assert.Equal(t, tc.status, resp.status, "%s", resp.body)
			assert.NotContains(t, resp.header.Get("Content-Type"), "image/")
		})
	}
}
