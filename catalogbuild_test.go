package style

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// indexFolder writes n test PNGs, a corrupt "bad.png" and returns the source
// and the names in the order to index them: the PNGs with bad.png and a
// missing name in between.
func indexFolder(t *testing.T, n int) (*DirSource, []string) {
	t.Helper()
	dir := t.TempDir()
	names := makeImageFolder(t, dir, n)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.png"), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644))
	src, err := NewDirSource(dir)
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	all := slices.Concat(names[:3], []string{"bad.png", names[3], "missing.png"}, names[4:], []string{names[0]})
	return src, all
}

func testCategory(name string) string { return "cat" + name[len(name)-5:len(name)-4] }

func TestCatalogAddImages(t *testing.T) {
	src, names := indexFolder(t, 12)
	fx := &fakeExtractor{dim: 16}
	var c Catalog
	var calls []Progress
	rep, err := c.AddImages(context.Background(), src, names, fx, nil, &ExtractOptions{
		Category: testCategory, Workers: 3,
		Progress: func(p Progress) { calls = append(calls, p) },
	})
	require.NoError(t, err)
	// 12 PNGs + bad + missing, the duplicate counted once.
	require.Equal(t, 14, rep.Total, "report %+v", rep)
	require.Equal(t, 12, rep.Done, "report %+v", rep)
	require.Zero(t, rep.Skipped, "report %+v", rep)
	require.Len(t, rep.Failed, 2, "report %+v", rep)
	assert.Equal(t, "bad.png", rep.Failed[0].Name)
	assert.Equal(t, "missing.png", rep.Failed[1].Name)
	assert.ErrorIs(t, rep.Failed[0].Err, ErrFormat)
	assert.ErrorIs(t, rep.Failed[1].Err, os.ErrNotExist)
	assert.Equal(t, Progress{Stage: "index", Done: 14, Total: 14, Elapsed: calls[len(calls)-1].Elapsed}, calls[len(calls)-1], "last progress")
	// Items in the order of names, each holding exactly the raw features.
	var want []string
	for _, n := range names {
		if n != "bad.png" && n != "missing.png" && !slices.Contains(want, n) {
			want = append(want, n)
		}
	}
	require.Equal(t, len(want), c.Len())
	require.Equal(t, 16, c.Dim())
	for i, n := range want {
		it := c.Item(i)
		img, err := OpenImage(context.Background(), src, n)
		require.NoError(t, err)
		assert.Equal(t, Item{ID: n, Category: testCategory(n), Embedding: fakeFeatures(img, 16)}, it, "item %d", i)
	}
	assert.Equal(t, map[string]string{
		"style.embedding": "features",
		"style.backbone":  `{"Arch":"fake","Preprocess":"caffe","SHA256":"00ff","Seed":0,"Divisor":0}`,
		"style.head":      "none",
	}, c.Meta, "provenance")

	// One worker gives the same catalogue byte for byte.
	var c1 Catalog
	_, err = c1.AddImages(context.Background(), src, names, fx, nil, &ExtractOptions{Category: testCategory, Workers: 1})
	require.NoError(t, err)
	assert.Equal(t, encodeCatalog(t, &c), encodeCatalog(t, &c1), "catalogues built with 1 and 3 workers differ")

	_, err = c1.AddImages(context.Background(), src, names, fx, nil, &ExtractOptions{Workers: -2})
	assert.ErrorContains(t, err, "style: Catalog.AddImages: negative Workers -2")
}

func TestCatalogAddImagesHeadResume(t *testing.T) {
	src, names := indexFolder(t, 10)
	fx := &fakeExtractor{dim: 16}
	head, err := NewSiameseHead(&HeadConfig{In: 16, Out: 4, Seed: 3, Scale: 100, Backbone: storeTestBackbone})
	require.NoError(t, err)
	var whole Catalog
	_, err = whole.AddImages(context.Background(), src, names, fx, head, nil)
	require.NoError(t, err)
	for i := range whole.Len() {
		it := whole.Item(i)
		img, err := OpenImage(context.Background(), src, it.ID)
		require.NoError(t, err)
		require.Equal(t, head.Embed(fakeFeatures(img, 16)), it.Embedding, "item %s is not the head's embedding of its features", it.ID)
	}
	assert.Equal(t, "head", whole.Meta[metaEmbedding], "provenance %v", whole.Meta)
	assert.Len(t, whole.Meta[metaHead], 64, "provenance %v", whole.Meta)

	// Half now, all later: the second call skips the first half and the
	// result is the same catalogue.
	var c Catalog
	_, err = c.AddImages(context.Background(), src, names[:5], fx, head, nil)
	require.NoError(t, err)
	before := fx.calls.Load()
	rep, err := c.AddImages(context.Background(), src, names, fx, head, nil)
	require.NoError(t, err)
	assert.Equal(t, 4, rep.Skipped, "resume report %+v", rep) // names[:5] holds bad.png
	assert.Equal(t, int64(rep.Done), fx.calls.Load()-before, "extractor calls on resuming")
	assert.Equal(t, encodeCatalog(t, &whole), encodeCatalog(t, &c), "resumed catalogue differs from the one built at once")

	// Another head, no head, another backbone or a head for other
	// features are refused before anything is read.
	other, _ := NewSiameseHead(&HeadConfig{In: 16, Out: 4, Seed: 4, Scale: 100, Backbone: storeTestBackbone})
	wrongBackbone, _ := NewSiameseHead(&HeadConfig{In: 16, Out: 4, Seed: 3, Scale: 100})
	wrongIn, _ := NewSiameseHead(&HeadConfig{In: 8, Out: 4, Backbone: storeTestBackbone})
	otherFX := &otherBackbone{fakeExtractor{dim: 16}}
	sameHead, _ := NewSiameseHead(&HeadConfig{In: 16, Out: 4, Seed: 3, Scale: 100, Backbone: otherFX.Backbone()})
	raw := &fakeExtractor{dim: 4} // right length for the catalogue, but raw features
	n := c.Len()
	for _, tc := range []struct {
		name string
		fx   FeatureExtractor
		head *SiameseHead
	}{
		{"other head", fx, other},
		{"no head", raw, nil},
		{"head backbone", fx, wrongBackbone},
		{"extractor backbone", otherFX, sameHead}, // the same head weights, for another backbone
		{"head input", fx, wrongIn},
		{"dimension", fx, nil},
	} {
		calls := fx.calls.Load() + raw.calls.Load() + otherFX.calls.Load()
		_, err := c.AddImages(context.Background(), src, append(names, "new.png"), tc.fx, tc.head, nil)
		assert.ErrorIs(t, err, ErrBackboneMismatch, tc.name)
		assert.Equal(t, n, c.Len(), "%s: the refused call changed the catalogue", tc.name)
		assert.Equal(t, calls, fx.calls.Load()+raw.calls.Load()+otherFX.calls.Load(), "%s: the refused call read images", tc.name)
	}
	_, err = c.AddImages(context.Background(), src, names, otherFX, sameHead, nil)
	assert.ErrorContains(t, err, `the catalogue's style.backbone is "{\"Arch\":\"fake\"`)
}

func TestCatalogAddImagesCancel(t *testing.T) {
	src, names := indexFolder(t, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx := &fakeExtractor{dim: 8, onCall: func(n int64) {
		if n == 5 {
			cancel()
		}
	}}
	var c Catalog
	rep, err := c.AddImages(ctx, src, names, fx, nil, &ExtractOptions{Workers: 2})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, c.Len(), rep.Done, "report %+v", rep)
	require.True(t, c.Len() > 0 && c.Len() <= 8, "after cancelling at the 5th image: %d items", c.Len())
	// Running again completes the catalogue with the same items as a
	// single uninterrupted run (the order may differ: an image
	// interrupted by the cancellation is added after the ones behind it).
	_, err = c.AddImages(context.Background(), src, names, fx, nil, nil)
	require.NoError(t, err)
	var whole Catalog
	_, err = whole.AddImages(context.Background(), src, names, &fakeExtractor{dim: 8}, nil, nil)
	require.NoError(t, err)
	require.Equal(t, whole.Len(), c.Len(), "items after resuming")
	for i := range whole.Len() {
		w := whole.Item(i)
		j, ok := c.Index(w.ID)
		if assert.True(t, ok, "item %s missing after resuming", w.ID) {
			assert.Equal(t, w.Embedding, c.Item(j).Embedding, "item %s after resuming", w.ID)
		}
	}
}

// BenchmarkCatalogAddImages measures the indexing overhead around the
// extractor (opening, decoding, ordering, adding) with a cheap fake
// extractor over 64 small PNGs.
func BenchmarkCatalogAddImages(b *testing.B) {
	dir := b.TempDir()
	var names []string
	for i := range 64 {
		name := filepath.Join(dir, "img"+string(rune('a'+i/26))+string(rune('a'+i%26))+".png")
		if err := os.WriteFile(name, testPNG(b, i+1), 0o644); err != nil {
			b.Fatal(err)
		}
		names = append(names, filepath.Base(name))
	}
	src, err := NewDirSource(dir)
	require.NoError(b, err)
	defer src.Close()
	fx := &fakeExtractor{dim: 128}
	b.ReportAllocs()
	for b.Loop() {
		var c Catalog
		if _, err := c.AddImages(context.Background(), src, names, fx, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(names))/b.Elapsed().Seconds(), "images/s")
}
