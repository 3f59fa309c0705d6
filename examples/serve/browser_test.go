package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromium returns the Chromium binary. Without one the test is skipped,
// unless STYLE_REQUIRE_BROWSER=1 (as in CI), where it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("STYLE_REQUIRE_BROWSER") == "1" {
		t.Fatal("Chromium is not installed (apt-get install chromium) and STYLE_REQUIRE_BROWSER=1")
	}
	t.Skip("skipping: Chromium is not installed (apt-get install chromium); set STYLE_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

// browser starts a headless Chromium with a fresh profile.
func browser(t *testing.T, exe string) context.Context {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Without these Chromium keeps trying to reach Google's hosts.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	return bctx
}

// shownScore is what the score page shows.
type shownScore struct {
	Verdict  string `json:"verdict"`
	Good     bool   `json:"good"`
	Distance string `json:"distance"` // the exact value, from data-distance
	Shown    string `json:"shown"`    // the text a person reads
	Cutoff   string `json:"cutoff"`
	Bar      string `json:"bar"` // the bar's width
}

// TestBrowser drives the page in headless Chromium: it uploads pairs of
// photos, reads the verdict and distance the page shows and compares them
// with the JSON API's answers for the same photos; then it browses
// recommendations by item and by uploaded photo.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	f := newFixture(t)
	m := f.load(t)
	ts := newTestServer(t, m, testConfig(), nil)

	// A compatible pair and an incompatible one, as the API answers.
	type pair struct {
		a, b string
		res  scoreResult
	}
	var pairs [2]*pair // [0] compatible, [1] not
	for i := 0; i < len(f.photos) && (pairs[0] == nil || pairs[1] == nil); i++ {
		for j := i + 1; j < len(f.photos); j++ {
			resp := scoreFiles(t, ts.URL, f.photos[i], f.photos[j])
			require.Equal(t, http.StatusOK, resp.status)
			var res scoreResult
			resp.json(t, &res)
			k := 1
			if res.Compatible {
				k = 0
			}
			if pairs[k] == nil {
				pairs[k] = &pair{f.photos[i], f.photos[j], res}
			}
		}
	}
	require.NotNil(t, pairs[0], "a compatible pair")
	require.NotNil(t, pairs[1], "an incompatible pair")

	ctx := browser(t, exe)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(ts.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("score-form")),
	))
	var shot []byte
	for _, p := range []*pair{pairs[1], pairs[0]} { // the picture shows the compatible pair
		a, err := filepath.Abs(p.a)
		require.NoError(t, err)
		b, err := filepath.Abs(p.b)
		require.NoError(t, err)
		require.NoError(t, chromedp.Do(ctx,
			chromedp.SetUploadFiles(chromedp.ID("photo-a"), []string{a}),
			chromedp.SetUploadFiles(chromedp.ID("photo-b"), []string{b}),
		))
		// Choosing the photos scores them; wait for this pair's answer.
		want := strconv.FormatFloat(p.res.Distance, 'g', -1, 64)
		got, err := chromedp.Run(ctx, chromedp.Poll[shownScore](fmt.Sprintf(`(() => {
			const d = document.getElementById("distance");
			if (document.getElementById("result").hidden || Number(d.dataset.distance) !== %s) return null;
			const v = document.getElementById("verdict");
			return {verdict: v.textContent, good: v.classList.contains("good"), distance: d.dataset.distance,
				shown: d.textContent, cutoff: document.getElementById("cutoff").textContent,
				bar: document.getElementById("meter-fill").style.width};
		})()`, want), chromedp.WithPollingTimeout(30*time.Second)))
		require.NoError(t, err, "the page shows the distance %s", want)
		dist, err := strconv.ParseFloat(got.Distance, 64)
		require.NoError(t, err)
		assert.Equal(t, p.res.Distance, dist)
		assert.Equal(t, p.res.Verdict, got.Verdict)
		assert.Equal(t, p.res.Compatible, got.Good)
		assert.Equal(t, fmt.Sprintf("%.3f", p.res.Distance), got.Shown)
		assert.Equal(t, fmt.Sprintf("%.3f", p.res.Cutoff), got.Cutoff)
		bar, err := strconv.ParseFloat(strings.TrimSuffix(got.Bar, "%"), 64)
		require.NoError(t, err, "bar width %q", got.Bar)
		// The browser keeps about 6 significant digits of a width.
		assert.InDelta(t, min(100, 100*p.res.Distance/(2*p.res.Cutoff)), bar, 1e-3)

		alt, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("preview-b"), "alt"))
		require.NoError(t, err)
		assert.Equal(t, "Second photo: "+filepath.Base(p.b), alt.Value, "the preview says what it shows")
		// The bar grows with a transition: let it end before the picture.
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.getAnimations().length === 0`, chromedp.WithPollingTimeout(10*time.Second)))
		require.NoError(t, err)
		shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
	}
	shotPath := filepath.Join(t.TempDir(), "score.png")
	require.NoError(t, os.WriteFile(shotPath, shot, 0o644))
	require.Greater(t, len(shot), 10000, "a PNG of the page")
	assert.Equal(t, "\x89PNG", string(shot[:4]))
	if dir := os.Getenv("STYLE_SCREENSHOT_DIR"); dir != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "serve-page.png"), shot, 0o644))
	}

	// A file that is not an image: the page shows the API's message.
	txt := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(txt, []byte("not a photo"), 0o644))
	require.NoError(t, chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("photo-a"), []string{txt})))
	msg, err := chromedp.Run(ctx, chromedp.Poll[string](`(() => {
		const e = document.getElementById("error");
		return !e.hidden && e.textContent;
	})()`, chromedp.WithPollingTimeout(30*time.Second)))
	require.NoError(t, err)
	assert.Contains(t, msg, "not a JPEG, PNG or GIF image")
	hidden, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.getElementById("result").hidden`))
	require.NoError(t, err)
	assert.True(t, hidden, "no stale verdict next to the error")

	// Recommendations of a catalogue item, rendered on the server, with
	// every thumbnail loaded.
	id := m.cat.Item(4).ID
	want, err := recommendByID(m, id, 4, false)
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/recommend?id="+id+"&k=4")))
	cards, err := chromedp.Run(ctx, chromedp.Poll[[]string](`(() => {
		const imgs = [...document.querySelectorAll("#matches img")];
		if (!imgs.every(i => i.complete && i.naturalWidth > 0)) return null;
		return imgs.map(i => i.alt);
	})()`, chromedp.WithPollingTimeout(30*time.Second)))
	require.NoError(t, err)
	require.Len(t, cards, 4)
	for i, it := range want {
		assert.Equal(t, it.Name, cards[i])
	}
	if dir := os.Getenv("STYLE_SCREENSHOT_DIR"); dir != "" {
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "serve-recommend.png"), shot, 0o644))
	}

	// Recommendations of an uploaded photo, rendered by the page's script
	// (its form has the k of the page, 4).
	photo, err := filepath.Abs(f.images + "/" + id)
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.SetUploadFiles(chromedp.ID("upload"), []string{photo}),
		chromedp.Click(chromedp.CSS("#upload-form button")),
	))
	ids, err := chromedp.Run(ctx, chromedp.Poll[[]string](`(() => {
		if (document.getElementById("results-title").textContent !== "Goes best with your photo") return null;
		return [...document.querySelectorAll("#matches a")].map(a => new URL(a.href).searchParams.get("id"));
	})()`, chromedp.WithPollingTimeout(30*time.Second)))
	require.NoError(t, err)
	body, ct := multipartBody(t, fileField(t, "image", photo))
	var api []recItem
	post(t, ts.URL+"/api/recommend?k=4", ct, body).json(t, &api)
	require.Len(t, ids, 4)
	for i, it := range api {
		assert.Equal(t, it.ID, ids[i])
	}
	assert.Equal(t, id, ids[0], "the item's own photo comes first")
}
