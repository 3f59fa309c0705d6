package style

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// indexFolder writes n test PNGs, a corrupt "bad.png" and returns the source
// and the names in the order to index them: the PNGs with bad.png and a
// missing name in between.
func indexFolder(t *testing.T, n int) (*DirSource, []string) {
	t.Helper()
	dir := t.TempDir()
	names := makeImageFolder(t, dir, n)
	if err := os.WriteFile(filepath.Join(dir, "bad.png"), []byte("\x89PNG\r\n\x1a\nnot really"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := NewDirSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	all := slices.Concat(names[:3], []string{"bad.png", names[3], "missing.png"}, names[4:], []string{names[0]})
	return src, all
}

// catalogBytes is the saved form of c, to compare catalogues exactly.
func catalogBytes(t *testing.T, c *Catalog) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testCategory(name string) string { return "cat" + name[len(name)-5:len(name)-4] }

func TestCatalogAddImages(t *testing.T) {
	src, names := indexFolder(t, 12)
	fx := &fakeExtractor{dim: 16}
	var c Catalog
	var calls []Progress
	rep, err := c.AddImages(context.Background(), src, names, fx, nil, &AddImagesOptions{
		Category: testCategory, Workers: 3, Model: "fake model",
		Progress: func(p Progress) { calls = append(calls, p) },
	})
	if err != nil {
		t.Fatal(err)
	}
	// 12 PNGs + bad + missing, the duplicate counted once.
	if rep.Total != 14 || rep.Added != 12 || rep.Skipped != 0 || len(rep.Failed) != 2 {
		t.Fatalf("report %+v", rep)
	}
	if rep.Failed[0].Name != "bad.png" || rep.Failed[1].Name != "missing.png" {
		t.Errorf("failures %v, want bad.png then missing.png", rep.Failed)
	}
	if !errors.Is(rep.Failed[0].Err, ErrFormat) || !errors.Is(rep.Failed[1].Err, os.ErrNotExist) {
		t.Errorf("failure causes %v", rep.Failed)
	}
	if last := calls[len(calls)-1]; last.Stage != "index" || last.Done != 14 || last.Total != 14 {
		t.Errorf("last progress %+v", last)
	}
	// Items in the order of names, each holding exactly the raw features.
	var want []string
	for _, n := range names {
		if n != "bad.png" && n != "missing.png" && !slices.Contains(want, n) {
			want = append(want, n)
		}
	}
	if c.Len() != len(want) || c.Dim() != 16 {
		t.Fatalf("catalogue of %d items of dim %d", c.Len(), c.Dim())
	}
	for i, n := range want {
		it := c.Item(i)
		img, err := OpenImage(context.Background(), src, n)
		if err != nil {
			t.Fatal(err)
		}
		if it.ID != n || it.Category != testCategory(n) || !slices.Equal(it.Embedding, fakeFeatures(img, 16)) {
			t.Errorf("item %d = %s/%s %v, want %s/%s with its features", i, it.ID, it.Category, it.Embedding[:3], n, testCategory(n))
		}
	}
	if c.Meta[MetaEmbedding] != "features" || c.Meta[MetaHead] != "none" || c.Meta[MetaModel] != "fake model" ||
		!strings.Contains(c.Meta[MetaBackbone], "sha256=00ff") {
		t.Errorf("provenance %v", c.Meta)
	}

	// One worker gives the same catalogue byte for byte.
	var c1 Catalog
	if _, err := c1.AddImages(context.Background(), src, names, fx, nil, &AddImagesOptions{Category: testCategory, Workers: 1, Model: "fake model"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(catalogBytes(t, &c), catalogBytes(t, &c1)) {
		t.Error("catalogues built with 1 and 3 workers differ")
	}
}

func TestCatalogAddImagesHeadResume(t *testing.T) {
	src, names := indexFolder(t, 10)
	fx := &fakeExtractor{dim: 16}
	head, err := NewSiameseHead(&HeadConfig{In: 16, Out: 4, Seed: 3, Scale: 100, Backbone: storeTestBackbone})
	if err != nil {
		t.Fatal(err)
	}
	var whole Catalog
	if _, err := whole.AddImages(context.Background(), src, names, fx, head, nil); err != nil {
		t.Fatal(err)
	}
	for i := range whole.Len() {
		it := whole.Item(i)
		img, _ := OpenImage(context.Background(), src, it.ID)
		if !slices.Equal(it.Embedding, head.Embed(fakeFeatures(img, 16))) {
			t.Fatalf("item %s is not the head's embedding of its features", it.ID)
		}
	}
	if whole.Meta[MetaEmbedding] != "head" || len(whole.Meta[MetaHead]) != 64 {
		t.Errorf("provenance %v", whole.Meta)
	}

	// Half now, all later: the second call skips the first half and the
	// result is the same catalogue.
	var c Catalog
	if _, err := c.AddImages(context.Background(), src, names[:5], fx, head, nil); err != nil {
		t.Fatal(err)
	}
	before := fx.calls.Load()
	rep, err := c.AddImages(context.Background(), src, names, fx, head, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Skipped != 4 || fx.calls.Load()-before != int64(rep.Added) { // names[:5] holds bad.png
		t.Errorf("resume report %+v after %d extractor calls", rep, fx.calls.Load()-before)
	}
	if !bytes.Equal(catalogBytes(t, &c), catalogBytes(t, &whole)) {
		t.Error("resumed catalogue differs from the one built at once")
	}

	// Another head, no head, another model or a head for other features
	// are refused before anything is read.
	other, _ := NewSiameseHead(&HeadConfig{In: 16, Out: 4, Seed: 4, Scale: 100, Backbone: storeTestBackbone})
	wrongBackbone, _ := NewSiameseHead(&HeadConfig{In: 16, Out: 4, Seed: 3, Scale: 100})
	wrongIn, _ := NewSiameseHead(&HeadConfig{In: 8, Out: 4, Backbone: storeTestBackbone})
	raw := &fakeExtractor{dim: 4} // right length for the catalogue, but raw features
	n := c.Len()
	for _, tc := range []struct {
		name string
		fx   FeatureExtractor
		head *SiameseHead
		opts *AddImagesOptions
	}{
		{"other head", fx, other, nil},
		{"no head", raw, nil, nil},
		{"model", fx, head, &AddImagesOptions{Model: "seed 9"}},
		{"backbone", fx, wrongBackbone, nil},
		{"head input", fx, wrongIn, nil},
		{"dimension", fx, nil, nil},
	} {
		calls := fx.calls.Load() + raw.calls.Load()
		_, err := c.AddImages(context.Background(), src, append(names, "new.png"), tc.fx, tc.head, tc.opts)
		if !errors.Is(err, ErrBackboneMismatch) {
			t.Errorf("%s: err %v, want ErrBackboneMismatch", tc.name, err)
		}
		if c.Len() != n || fx.calls.Load()+raw.calls.Load() != calls {
			t.Errorf("%s: the refused call read images or changed the catalogue", tc.name)
		}
	}
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
	rep, err := c.AddImages(ctx, src, names, fx, nil, &AddImagesOptions{Workers: 2})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if rep.Added != c.Len() || c.Len() == 0 || c.Len() > 8 {
		t.Fatalf("after cancelling at the 5th image: report %+v, %d items", rep, c.Len())
	}
	// Running again completes the catalogue with the same items as a
	// single uninterrupted run (the order may differ).
	if _, err := c.AddImages(context.Background(), src, names, fx, nil, nil); err != nil {
		t.Fatal(err)
	}
	var whole Catalog
	if _, err := whole.AddImages(context.Background(), src, names, &fakeExtractor{dim: 8}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if c.Len() != whole.Len() {
		t.Fatalf("%d items after resuming, want %d", c.Len(), whole.Len())
	}
	for i := range whole.Len() {
		w := whole.Item(i)
		j, ok := c.Index(w.ID)
		if !ok || !slices.Equal(c.Item(j).Embedding, w.Embedding) {
			t.Errorf("item %s missing or different after resuming", w.ID)
		}
	}
}

func TestParseCategories(t *testing.T) {
	in := "\ufeffid,gender,articleType,name\n" +
		"15970,Men,Shirts,\"Turtle Check Men Navy Blue Shirt, slim\"\n" +
		" 39386 ,Men, Jeans ,Peter England Men Party Blue Jeans\n" +
		"1,Women,,no type\n" +
		"15970,Men,Shirts,listed twice with the same type\n"
	got, err := ParseCategories(strings.NewReader(in), "styles.csv", "id", "articleType")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"15970": "Shirts", "39386": "Jeans", "1": ""}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}

	for _, tc := range []struct {
		name, in string
		line     int
		msg      string
	}{
		{"empty", "", 1, "empty file"},
		{"no id column", "ID,articleType\n1,Shirts\n", 1, `no column "id"`},
		{"no category column", "id,type\n1,Shirts\n", 1, `no column "articleType"`},
		{"short row", "id,articleType\n1,Shirts\n2\n", 3, "wrong number of fields"},
		{"stray quote", "id,articleType\n1,Sh\"irts\n", 2, "quote"},
		{"empty id", "id,articleType\n1,Shirts\n,Jeans\n", 3, "empty id"},
		{"conflict", "id,articleType\n1,Shirts\n2,Jeans\n1,Jeans\n", 4, "listed again"},
		{"long id", "id,articleType\n" + strings.Repeat("x", MaxCatalogIDLen+1) + ",Shirts\n", 2, "longer than"},
	} {
		_, err := ParseCategories(strings.NewReader(tc.in), "styles.csv", "id", "articleType")
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Errorf("%s: err %v, want a *FormatError", tc.name, err)
			continue
		}
		if fe.Path != "styles.csv" || fe.Line != tc.line || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v (line %d), want line %d and %q", tc.name, err, fe.Line, tc.line, tc.msg)
		}
	}

	if _, err := ReadCategories(filepath.Join(t.TempDir(), "none.csv"), "id", "articleType"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
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
	if err != nil {
		b.Fatal(err)
	}
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
