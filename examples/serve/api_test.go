package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
)

// wantScore computes the answer for two photos directly with the library.
func wantScore(t *testing.T, m *model, a, b string) scoreResult {
	t.Helper()
	var feats [][]float32
	for _, p := range []string{a, b} {
		img, err := style.LoadImage(t.Context(), p)
		require.NoError(t, err)
		ft, err := m.fx.Features(img)
		require.NoError(t, err)
		feats = append(feats, ft)
	}
	res, err := m.score(feats[0], feats[1])
	require.NoError(t, err)
	return res
}

func TestScore(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	ts := newTestServer(t, m, testConfig(), nil)

	verdicts := map[bool]int{}
	for i := 0; i < len(f.photos); i += 2 {
		a, b := f.photos[i], f.photos[i+1]
		resp := scoreFiles(t, ts.URL, a, b)
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		var got scoreResult
		resp.json(t, &got)
		want := wantScore(t, m, a, b)
		// The same library calls on the same bytes: bit-identical.
		assert.Equal(t, want, got, "%s + %s", filepath.Base(a), filepath.Base(b))
		assert.Equal(t, got.Distance <= got.Cutoff, got.Compatible)
		assert.Equal(t, f.cutoff(t), got.Cutoff)
		verdicts[got.Compatible]++
	}
	// Pairs across the 8 photos, to see both verdicts.
	for i := range 4 {
		var got scoreResult
		resp := scoreFiles(t, ts.URL, f.photos[i], f.photos[7-i])
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		resp.json(t, &got)
		verdicts[got.Compatible]++
	}
	assert.Positive(t, verdicts[true], "some pair is compatible (the cutoff is the median distance)")
	assert.Positive(t, verdicts[false], "some pair is not compatible")
	assert.Contains(t, ts.log.String(), "method=POST path=/api/score status=200")
}

// cutoff is the cutoff of the fixture's head.
func (f *fixture) cutoff(t *testing.T) float64 {
	h, err := style.LoadHead(f.head)
	require.NoError(t, err)
	return h.Cutoff
}

// photoServer serves the photos folder and a few test answers over HTTP
// on the loopback: the tests' stand-in for the web.
func photoServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.Handle("/photos/", http.StripPrefix("/photos/", http.FileServer(http.Dir(photosDir))))
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte{0xff}, 2<<20)) // no Content-Length: streamed
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/photos/matching_1.jpg", http.StatusFound)
	})
	ps := httptest.NewServer(mux)
	t.Cleanup(ps.Close)
	return ps
}

func TestScoreURLs(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	ts := newTestServer(t, m, testConfig(), nil)
	ps := photoServer(t)
	a, b := f.photos[0], f.photos[1]
	want := wantScore(t, m, a, b)
	ua := ps.URL + "/photos/" + filepath.Base(a)
	ub := ps.URL + "/photos/" + filepath.Base(b)

	t.Run("json", func(t *testing.T) {
		resp := post(t, ts.URL+"/api/score", "application/json", strings.NewReader(fmt.Sprintf(`{"a": %q, "b": %q}`, ua, ub)))
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		var got scoreResult
		resp.json(t, &got)
		assert.Equal(t, want, got)
	})
	t.Run("form", func(t *testing.T) {
		form := url.Values{"a": {ua}, "b": {ub}}
		resp := post(t, ts.URL+"/api/score", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		var got scoreResult
		resp.json(t, &got)
		assert.Equal(t, want, got)
	})
	t.Run("multipart file and URL", func(t *testing.T) {
		body, ct := multipartBody(t, fileField(t, "a", a), part{name: "b", data: []byte(ub)})
		resp := post(t, ts.URL+"/api/score", ct, body)
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		var got scoreResult
		resp.json(t, &got)
		assert.Equal(t, want, got)
	})
	t.Run("redirect", func(t *testing.T) {
		resp := post(t, ts.URL+"/api/score", "application/json",
			strings.NewReader(fmt.Sprintf(`{"a": %q, "b": %q}`, ps.URL+"/redirect", ps.URL+"/photos/matching_1.jpg")))
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		var got scoreResult
		resp.json(t, &got)
		// The same photo twice: the distance's floor, sqrt(1e-7), as in
		// training.
		assert.Equal(t, math.Sqrt(1e-7), got.Distance)
	})

	for _, tc := range []struct {
		name, a, b string
		status     int
		msg        string
	}{
		{"not found", ps.URL + "/photos/nope.jpg", ub, http.StatusUnprocessableEntity, "404"},
		{"too large", ps.URL + "/big", ub, http.StatusRequestEntityTooLarge, "larger than"},
		{"not http", "ftp://example.com/a.jpg", ub, http.StatusBadRequest, "http or https"},
		{"not a URL", "shirt.jpg", ub, http.StatusBadRequest, "http or https"},
		{"nothing listening", "http://127.0.0.1:1/a.jpg", ub, http.StatusUnprocessableEntity, "could not fetch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, ts.URL+"/api/score", "application/json", strings.NewReader(fmt.Sprintf(`{"a": %q, "b": %q}`, tc.a, tc.b)))
			assert.Equal(t, tc.status, resp.status, "%s", resp.body)
			assert.Contains(t, resp.errorMessage(t), tc.msg)
		})
	}

	t.Run("private address refused", func(t *testing.T) {
		cfg := testConfig()
		cfg.FetchPrivate = false
		ts := newTestServer(t, m, cfg, nil)
		resp := post(t, ts.URL+"/api/score", "application/json", strings.NewReader(fmt.Sprintf(`{"a": %q, "b": %q}`, ua, ub)))
		assert.Equal(t, http.StatusUnprocessableEntity, resp.status, "%s", resp.body)
		assert.Contains(t, resp.errorMessage(t), "public addresses only")
	})
}

// pngOf encodes a w x h image.
func pngOf(t *testing.T, w, h int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

// gifHeader is a GIF header declaring w x h pixels, with no image data.
func gifHeader(w, h int) []byte {
	return []byte{'G', 'I', 'F', '8', '9', 'a', byte(w), byte(w >> 8), byte(h), byte(h >> 8), 0, 0, 0}
}

func TestScoreBadInput(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	cfg := testConfig()
	ts := newTestServer(t, m, cfg, nil)
	good := fileField(t, "a", f.photos[0])
	other := fileField(t, "b", f.photos[1])
	jpg := good.data
	require.Greater(t, len(jpg), 4000)

	for _, tc := range []struct {
		name   string
		parts  []part
		status int
		msg    string
	}{
		{"not an image", []part{{name: "a", file: "a.jpg", data: []byte("hello, this is text")}, other}, http.StatusUnsupportedMediaType, "not a JPEG, PNG or GIF"},
		{"too many bytes", []part{{name: "a", file: "a.png", data: bytes.Repeat(jpg, int(cfg.MaxUpload)/len(jpg)+1)}, other}, http.StatusRequestEntityTooLarge, "larger than"},
		{"too many pixels", []part{{name: "a", file: "a.png", data: pngOf(t, 3000, 1500)}, other}, http.StatusRequestEntityTooLarge, "3000x1500 pixels"},
		{"too many pixels in a header alone", []part{{name: "a", file: "a.gif", data: gifHeader(65535, 65535)}, other}, http.StatusRequestEntityTooLarge, "65535x65535"},
		{"truncated JPEG", []part{{name: "a", file: "a.jpg", data: jpg[:len(jpg)/2]}, other}, http.StatusUnprocessableEntity, "cannot decode"},
		{"JPEG header cut", []part{{name: "a", file: "a.jpg", data: jpg[:20]}, other}, http.StatusUnprocessableEntity, "unreadable image header"},
		{"empty GIF", []part{{name: "a", file: "a.gif", data: gifHeader(0, 0)}, other}, http.StatusUnprocessableEntity, "empty image"},
		{"missing b", []part{good}, http.StatusBadRequest, `missing image "b"`},
		{"empty file b", []part{good, {name: "b", file: "b.jpg"}}, http.StatusBadRequest, `missing image "b"`},
		{"a twice", []part{good, good, other}, http.StatusBadRequest, `"a" given twice`},
		{"huge value", []part{good, {name: "b", data: bytes.Repeat([]byte("x"), maxValueBytes+1)}}, http.StatusBadRequest, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ct := multipartBody(t, tc.parts...)
			resp := post(t, ts.URL+"/api/score", ct, body)
			assert.Equal(t, tc.status, resp.status, "%s", resp.body)
			assert.Contains(t, resp.errorMessage(t), tc.msg)
		})
	}

	for _, tc := range []struct {
		name, ct, body string
		status         int
	}{
		{"malformed JSON", "application/json", `{"a": "http://x/a.jpg",`, http.StatusBadRequest},
		{"JSON of the wrong type", "application/json", `{"a": 1}`, http.StatusBadRequest},
		{"two JSON values", "application/json", `{} {}`, http.StatusBadRequest},
		{"JSON without b", "application/json", `{"a": "http://127.0.0.1/a.jpg"}`, http.StatusBadRequest},
		{"no Content-Type", "", `a=1`, http.StatusBadRequest},
		{"bad Content-Type", "multipart/form-data; boundary=", "--x", http.StatusBadRequest},
		{"plain text", "text/plain", "hello", http.StatusUnsupportedMediaType},
		{"raw image", "image/jpeg", string(jpg), http.StatusUnsupportedMediaType},
		{"JSON too large", "application/json", `{"a": "` + strings.Repeat("x", int(cfg.MaxUpload)) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, ts.URL+"/api/score", tc.ct, strings.NewReader(tc.body))
			assert.Equal(t, tc.status, resp.status, "%s", resp.body)
			resp.errorMessage(t)
		})
	}

	t.Run("wrong method", func(t *testing.T) {
		resp := get(t, ts.URL+"/api/score")
		assert.Equal(t, http.StatusMethodNotAllowed, resp.status)
		assert.Equal(t, "POST", resp.header.Get("Allow"))
		resp.errorMessage(t)
	})
	t.Run("no such endpoint", func(t *testing.T) {
		resp := get(t, ts.URL+"/api/nothing")
		assert.Equal(t, http.StatusNotFound, resp.status)
		resp.errorMessage(t)
	})
	assert.Contains(t, ts.log.String(), "status=413")
	assert.Contains(t, ts.log.String(), `error="image \"a\"`)
}

// TestScoreNonFinite: a head whose weights overflow gives distances that
// are not numbers; the answer is a JSON error, never broken JSON.
func TestScoreNonFinite(t *testing.T) {
	f := newFixture(t)
	for _, v := range []float32{float32(math.Inf(1)), float32(math.NaN())} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			m := f.load(t)
			h := *m.head
			d := *h.Dense
			d.W = append([]float32(nil), d.W...)
			for i := range d.W {
				d.W[i] = v
			}
			h.Dense = &d
			m.head = &h
			ts := newTestServer(t, m, testConfig(), nil)
			resp := scoreFiles(t, ts.URL, f.photos[0], f.photos[1])
			assert.Equal(t, http.StatusUnprocessableEntity, resp.status, "%s", resp.body)
			msg := resp.errorMessage(t)
			assert.Contains(t, msg, "cannot be compared")
			assert.Contains(t, msg, "distance is NaN", "the library's reason")

			body, ct := multipartBody(t, fileField(t, "image", f.photos[0]))
			resp = post(t, ts.URL+"/api/recommend", ct, body)
			assert.Equal(t, http.StatusUnprocessableEntity, resp.status, "%s", resp.body)
			assert.Contains(t, resp.errorMessage(t), "finite numbers")
		})
	}
}

// TestPNGTransparent: a PNG with an alpha channel is scored.
func TestScorePNG(t *testing.T) {
	f := newFixture(t)
	m := f.load(t)
	ts := newTestServer(t, m, testConfig(), nil)
	img := image.NewNRGBA(image.Rect(0, 0, 300, 200))
	for y := range 200 {
		for x := range 300 {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 128, uint8(x + y)})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	path := filepath.Join(t.TempDir(), "a.png")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	resp := scoreFiles(t, ts.URL, path, f.photos[0])
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	var got scoreResult
	resp.json(t, &got)
	assert.Equal(t, wantScore(t, m, path, f.photos[0]), got)
}
