package style

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stylespace/style/internal/engine"
)

// lowParallelThreshold makes small catalogues use several workers, so the
// tests exercise the parallel scan and merge.
func lowParallelThreshold(t testing.TB) {
	old := minParFloats
	minParFloats = 64
	t.Cleanup(func() { minParFloats = old })
}

// randomCatalog returns a catalogue of n items of dimension dim. With
// integer true the coordinates are small integers, so every squared
// distance is exact in float32 (at most 128*16^2 << 2^24) and many
// distances tie; otherwise they are normal deviates.
func randomCatalog(t testing.TB, n, dim int, integer bool, seed uint64) *Catalog {
	rng := rand.New(rand.NewPCG(seed, 7))
	var c Catalog
	cats := []string{"shoes", "bags", "shirts", "watches", ""}
	v := make([]float32, dim)
	for i := range n {
		for j := range v {
			if integer {
				v[j] = float32(rng.IntN(5) - 2)
			} else {
				v[j] = float32(rng.NormFloat64())
			}
		}
		if err := c.Add(Item{ID: fmt.Sprintf("item%05d", i), Category: cats[rng.IntN(len(cats))], Embedding: v}); err != nil {
			t.Fatal(err)
		}
	}
	return &c
}

// bruteForce is the reference search: float64 distances to every item that
// passes keep, sorted by (distance, index).
func bruteForce(c *Catalog, q []float32, k int, keep func(i int) bool) []Match {
	var all []Match
	for i := range c.Len() {
		if !keep(i) {
			continue
		}
		it := c.Item(i)
		var s float64
		for j, x := range it.Embedding {
			d := float64(x) - float64(q[j])
			s += d * d
		}
		all = append(all, Match{Index: i, ID: it.ID, Category: it.Category, Distance: math.Sqrt(s)})
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].Distance < all[b].Distance })
	return all[:min(k, len(all))]
}

func TestCatalogRecommendMatchesBruteForce(t *testing.T) {
	lowParallelThreshold(t)
	for _, dim := range []int{3, 37, 128} {
		c := randomCatalog(t, 1500, dim, true, uint64(dim))
		rng := rand.New(rand.NewPCG(2, uint64(dim)))
		q := make([]float32, dim)
		for j := range q {
			q[j] = float32(rng.IntN(5) - 2)
		}
		self := c.Item(17)
		type tc struct {
			name string
			opts RecommendOptions
			keep func(i int) bool
		}
		cases := []tc{
			{"all", RecommendOptions{}, func(int) bool { return true }},
			{"excludeID", RecommendOptions{ExcludeID: self.ID}, func(i int) bool { return i != 17 }},
			{"excludeCategory", RecommendOptions{ExcludeCategory: "shoes"},
				func(i int) bool { return c.Item(i).Category != "shoes" }},
			{"filter", RecommendOptions{Filter: func(it Item) bool { return strings.HasSuffix(it.ID, "3") }},
				func(i int) bool { return i%10 == 3 }},
		}
		for _, cs := range cases {
			for _, k := range []int{1, 5, 64, 1499, 5000} {
				want := bruteForce(c, q, k, cs.keep)
				for _, w := range []int{1, 2, 3, 8} {
					o := cs.opts
					o.Workers = w
					got := c.Recommend(q, k, &o)
					// Integer coordinates: float32 distances are exact, so
					// indices and distances must agree exactly, ties included.
					if !reflect.DeepEqual(got, want) {
						t.Fatalf("dim %d %s k=%d workers=%d: got %d matches, first %v; want %d, first %v",
							dim, cs.name, k, w, len(got), got[:min(3, len(got))], len(want), want[:min(3, len(want))])
					}
				}
			}
		}
	}
}

func TestCatalogRecommendContinuous(t *testing.T) {
	lowParallelThreshold(t)
	c := randomCatalog(t, 3000, 128, false, 11)
	rng := rand.New(rand.NewPCG(3, 3))
	for trial := range 5 {
		q := make([]float32, 128)
		for j := range q {
			q[j] = float32(rng.NormFloat64())
		}
		k := 10
		ref := bruteForce(c, q, k+1, func(int) bool { return true })
		got1 := c.Recommend(q, k, &RecommendOptions{Workers: 1})
		for _, w := range []int{2, 5} {
			if gotW := c.Recommend(q, k, &RecommendOptions{Workers: w}); !reflect.DeepEqual(gotW, got1) {
				t.Fatalf("trial %d: workers=%d differs from workers=1", trial, w)
			}
		}
		for j, m := range got1 {
			// float32 accumulation over 128 terms of size ~2 against a float64
			// reference: relative error well below 1e-5.
			if math.Abs(m.Distance-ref[j].Distance) > 1e-5*ref[j].Distance {
				t.Errorf("trial %d rank %d: distance %v, reference %v", trial, j, m.Distance, ref[j].Distance)
			}
			if j > 0 && m.Distance < got1[j-1].Distance {
				t.Errorf("trial %d: not sorted at rank %d", trial, j)
			}
			// Indices must agree unless the reference has a near-tie there.
			if m.Index != ref[j].Index && ref[j+1].Distance-ref[j].Distance > 1e-4 &&
				(j == 0 || ref[j].Distance-ref[j-1].Distance > 1e-4) {
				t.Errorf("trial %d rank %d: index %d, reference %d", trial, j, m.Index, ref[j].Index)
			}
		}
	}
}

func TestCatalogRecommendItem(t *testing.T) {
	c := randomCatalog(t, 500, 8, false, 5)
	id := c.Item(42).ID
	cat := c.Item(42).Category
	got, err := c.RecommendItem(id, 20, &RecommendOptions{ExcludeSameCategory: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 {
		t.Fatalf("got %d matches, want 20", len(got))
	}
	want := bruteForce(c, c.Item(42).Embedding, 20, func(i int) bool {
		return i != 42 && (cat == "" || c.Item(i).Category != cat)
	})
	if !reflect.DeepEqual(got, want) {
		// Distances are continuous; equality of the index lists is expected
		// because random normal data has no near-ties at this size.
		gi, wi := make([]int, len(got)), make([]int, len(want))
		for j := range got {
			gi[j], wi[j] = got[j].Index, want[j].Index
		}
		if !slices.Equal(gi, wi) {
			t.Fatalf("indices %v, want %v", gi, wi)
		}
	}
	// Without ExcludeSameCategory the item itself is still excluded.
	got, _ = c.RecommendItem(id, c.Len(), nil)
	if len(got) != c.Len()-1 {
		t.Fatalf("got %d matches, want %d", len(got), c.Len()-1)
	}
	for _, m := range got {
		if m.ID == id {
			t.Fatal("RecommendItem returned the query item")
		}
	}
	if _, err := c.RecommendItem("nope", 3, nil); !errors.Is(err, ErrUnknownItem) {
		t.Fatalf("unknown ID: err = %v, want ErrUnknownItem", err)
	}
}

func TestCatalogRecommendBatch(t *testing.T) {
	lowParallelThreshold(t)
	c := randomCatalog(t, 800, 16, false, 9)
	rng := rand.New(rand.NewPCG(4, 4))
	qs := make([][]float32, 13)
	for i := range qs {
		qs[i] = make([]float32, 16)
		for j := range qs[i] {
			qs[i][j] = float32(rng.NormFloat64())
		}
	}
	opts := &RecommendOptions{ExcludeCategory: "bags", Workers: 3}
	got, err := c.RecommendBatch(context.Background(), qs, 7, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, q := range qs {
		if want := c.Recommend(q, 7, &RecommendOptions{ExcludeCategory: "bags", Workers: 1}); !reflect.DeepEqual(got[i], want) {
			t.Fatalf("query %d: batch result differs from Recommend", i)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.RecommendBatch(ctx, qs, 7, opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled batch: err = %v", err)
	}
}

func TestCatalogConcurrentQueries(t *testing.T) {
	lowParallelThreshold(t)
	c := randomCatalog(t, 600, 12, false, 6)
	want := make([][]Match, 8)
	for g := range want {
		want[g] = c.Recommend(c.Item(g).Embedding, 5, &RecommendOptions{Workers: 1})
	}
	// Concurrent readers, each itself parallel, must not interfere (run
	// with -race to check the data races too).
	errs := make(chan error, len(want))
	for g := range want {
		go func() {
			for range 20 {
				if got := c.Recommend(c.Item(g).Embedding, 5, &RecommendOptions{Workers: 3}); !reflect.DeepEqual(got, want[g]) {
					errs <- fmt.Errorf("goroutine %d: result differs", g)
					return
				}
			}
			errs <- nil
		}()
	}
	for range want {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestCatalogRecommendEdgeCases(t *testing.T) {
	c := randomCatalog(t, 50, 4, true, 1)
	if got := c.Recommend(make([]float32, 4), 0, nil); len(got) != 0 {
		t.Errorf("k=0 gave %d matches", len(got))
	}
	var empty Catalog
	if got := empty.Recommend([]float32{1, 2}, 3, nil); len(got) != 0 {
		t.Errorf("empty catalogue gave %d matches", len(got))
	}
	nan := []float32{float32(math.NaN()), 0, 0, 0}
	got := c.Recommend(nan, 3, nil)
	if len(got) != 3 || got[0].Index != 0 || got[2].Index != 2 || !math.IsInf(got[0].Distance, 1) {
		t.Errorf("NaN query: got %v, want items 0,1,2 at +Inf", got)
	}
	mustPanic(t, "query length", func() { c.Recommend(make([]float32, 5), 3, nil) })
	mustPanic(t, "negative k", func() { c.Recommend(make([]float32, 4), -1, nil) })
	mustPanic(t, "embedding length", func() { c.Add(Item{ID: "x", Embedding: make([]float32, 3)}) })
	mustPanic(t, "out of range", func() { c.Item(50) })
}

func TestCatalogAddErrors(t *testing.T) {
	var c Catalog
	if err := c.Add(Item{ID: "a", Category: "x", Embedding: []float32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	bad := []Item{
		{ID: "", Embedding: []float32{1, 2}},
		{ID: "a", Embedding: []float32{1, 2}},
		{ID: "b", Embedding: []float32{1, float32(math.Inf(1))}},
		{ID: strings.Repeat("z", MaxCatalogIDLen+1), Embedding: []float32{1, 2}},
	}
	for _, it := range bad {
		if err := c.Add(it); err == nil {
			t.Errorf("Add(%.20q) succeeded", it.ID)
		}
	}
	if c.Len() != 1 || c.Dim() != 2 {
		t.Fatalf("after failed adds: Len %d Dim %d, want 1 and 2", c.Len(), c.Dim())
	}
	emb := []float32{3, 4}
	c.Add(Item{ID: "b", Embedding: emb})
	emb[0] = 99 // Add copies
	if got := c.FeatureTo(make([]float32, 2), 1); got[0] != 3 {
		t.Errorf("Add did not copy the embedding: %v", got)
	}
	if i, ok := c.Index("b"); !ok || i != 1 {
		t.Errorf("Index(b) = %d, %v", i, ok)
	}
	if got := c.Categories(); !slices.Equal(got, []string{"x", ""}) {
		t.Errorf("Categories = %q", got)
	}
}

func mustPanic(t *testing.T, substr string, f func()) {
	t.Helper()
	defer func() {
		r := recover()
		if r == nil {
			t.Errorf("no panic, want one mentioning %q", substr)
			return
		}
		if s := fmt.Sprint(r); !strings.HasPrefix(s, "style: ") || !strings.Contains(s, substr) {
			t.Errorf("panic %q, want a \"style: \" message mentioning %q", s, substr)
		}
	}()
	f()
}

func TestCatalogRecommendAllocs(t *testing.T) {
	if engine.RaceEnabled {
		t.Skip("the race detector makes sync.Pool drop items, so allocations are not counted")
	}
	c := randomCatalog(t, 4000, 32, false, 2)
	q := c.Item(0).Embedding
	opts := &RecommendOptions{Workers: 1}
	c.Recommend(q, 10, opts)
	// One allocation, the result slice; the scratch comes from a pool.
	if n := testing.AllocsPerRun(50, func() { c.Recommend(q, 10, opts) }); n > 1 {
		t.Errorf("Recommend allocates %v times per query, want at most 1", n)
	}
}

func TestCatalogSaveLoad(t *testing.T) {
	c := randomCatalog(t, 300, 19, false, 8)
	c.Meta = map[string]string{"backbone": "vgg16", "head": "sha256:abc"}
	path := filepath.Join(t.TempDir(), "cat.stylecat")
	if err := c.Save(path); err != nil {
		t.Fatal(err)
	}
	d, err := LoadCatalog(path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Len() != c.Len() || d.Dim() != c.Dim() || !reflect.DeepEqual(d.Meta, c.Meta) {
		t.Fatalf("loaded Len %d Dim %d Meta %v", d.Len(), d.Dim(), d.Meta)
	}
	for i := range c.Len() {
		if !reflect.DeepEqual(c.Item(i), d.Item(i)) {
			t.Fatalf("item %d differs after round trip", i)
		}
	}
	q := c.Item(3).Embedding
	if !reflect.DeepEqual(c.Recommend(q, 9, nil), d.Recommend(q, 9, nil)) {
		t.Fatal("recommendations differ after round trip")
	}
	var a, b bytes.Buffer
	c.WriteTo(&a)
	d.WriteTo(&b)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("re-encoding the loaded catalogue gives different bytes")
	}
	// An empty catalogue round-trips too.
	var e Catalog
	if err := e.Save(path); err != nil {
		t.Fatal(err)
	}
	if d, err := LoadCatalog(path); err != nil || d.Len() != 0 {
		t.Fatalf("empty catalogue: %v, %v", d, err)
	}
}

func TestCatalogSaveAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cat.stylecat")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := randomCatalog(t, 10, 4, true, 1)
	c.Meta = map[string]string{"k": strings.Repeat("v", MaxCatalogIDLen+1)}
	if err := c.Save(path); err == nil {
		t.Fatal("Save with an oversized metadata value succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("failed Save changed the file: %q", b)
	}
	if err := c.Save(filepath.Join(dir, "missing", "cat.stylecat")); err == nil {
		t.Fatal("Save into a missing directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}

func encodeCatalog(t testing.TB, c *Catalog) []byte {
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestLoadCatalogCorrupt(t *testing.T) {
	c := randomCatalog(t, 6, 3, false, 4)
	c.Meta = map[string]string{"m": "v"}
	good := encodeCatalog(t, c)
	check := func(name string, data []byte) {
		t.Helper()
		d, err := decodeCatalog(bytes.NewReader(data), int64(len(data)), "x.stylecat")
		var fe *FormatError
		if err == nil || !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
			t.Fatalf("%s: got %v, %v; want a *FormatError", name, d, err)
		}
		if fe.Path != "x.stylecat" || fe.Offset < 0 || fe.Offset > int64(len(data)) {
			t.Fatalf("%s: error %v lacks the file name or a plausible offset", name, err)
		}
	}
	for n := range len(good) {
		check(fmt.Sprintf("truncated to %d", n), good[:n])
	}
	check("trailing byte", append(slices.Clone(good), 0))
	// Every single-byte change is caught by a check or a checksum.
	for i := range good {
		bad := slices.Clone(good)
		bad[i] ^= 0x5a
		check(fmt.Sprintf("byte %d changed", i), bad)
	}
}

// hostileHeader returns a header with a valid checksum declaring the given
// counts.
func hostileHeader(dim uint32, items uint64, ncat, nmeta uint32, sbytes uint64) []byte {
	h := make([]byte, catalogHeaderSize)
	copy(h, catalogMagic)
	le := func(off int, v uint64, n int) {
		for j := range n {
			h[off+j] = byte(v >> (8 * j))
		}
	}
	le(8, catalogVersion, 4)
	le(12, uint64(dim), 4)
	le(16, items, 8)
	le(24, uint64(ncat), 4)
	le(28, uint64(nmeta), 4)
	le(32, sbytes, 8)
	crc := crcCastagnoli(h[:44])
	le(44, uint64(crc), 4)
	return h
}

func crcCastagnoli(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func TestLoadCatalogHostileHeader(t *testing.T) {
	cases := []struct {
		name   string
		header []byte
		want   string
	}{
		{"huge items", hostileHeader(128, 1<<40, 1, 0, 1<<41), "items"},
		{"huge dim", hostileHeader(1<<20, 10, 1, 0, 11), "dimension"},
		{"max counts", hostileHeader(MaxCatalogDim, MaxCatalogItems, 1, 0, MaxCatalogItems+1), "truncated"},
		{"huge strings", hostileHeader(4, 1, 1, 0, 1<<50), "string section"},
		{"zero dim", hostileHeader(0, 3, 1, 0, 4), "dimension 0"},
	}
	for _, cs := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decodeCatalog(bytes.NewReader(cs.header), int64(len(cs.header)), "h")
		runtime.ReadMemStats(&after)
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), cs.want) {
			t.Errorf("%s: err = %v, want a format error mentioning %q", cs.name, err, cs.want)
		}
		// A header alone must never make the reader allocate more than a
		// few kilobytes, whatever it declares.
		if a := after.TotalAlloc - before.TotalAlloc; a > 1<<16 {
			t.Errorf("%s: allocated %d bytes", cs.name, a)
		}
	}
	if _, err := LoadCatalog(filepath.Join(t.TempDir(), "missing")); err == nil || errors.Is(err, ErrFormat) {
		t.Errorf("missing file: err = %v, want a plain I/O error", err)
	}
}

func FuzzLoadCatalog(f *testing.F) {
	// The committed corpus in testdata/fuzz/FuzzLoadCatalog holds a valid
	// catalogue and damaged ones; add a small valid one here as well.
	var c Catalog
	c.Add(Item{ID: "a", Category: "x", Embedding: []float32{1, 2}})
	c.Add(Item{ID: "b", Embedding: []float32{3, 4}})
	f.Add(encodeCatalog(f, &c))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeCatalog(bytes.NewReader(data), int64(len(data)), "fuzz")
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not a format error", err)
			}
			return
		}
		// What loads must re-encode to the same bytes.
		if got := encodeCatalog(t, d); !bytes.Equal(got, data) {
			t.Fatalf("re-encoding gives %d bytes, input was %d", len(got), len(data))
		}
	})
}

// benchCatalog builds a catalogue of n clustered 128-D items (a seeded
// 20-cluster Gaussian mixture, closer to real embeddings than uniform
// noise) and a query drawn from the same mixture.
func benchCatalog(b testing.TB, n int) (*Catalog, []float32) {
	b.Helper()
	const dim = 128
	rng := rand.New(rand.NewPCG(1, 1))
	centres := make([][]float32, 20)
	for i := range centres {
		centres[i] = make([]float32, dim)
		for j := range centres[i] {
			centres[i][j] = float32(3 * rng.NormFloat64())
		}
	}
	var c Catalog
	v := make([]float32, dim)
	for i := range n {
		ctr := centres[rng.IntN(len(centres))]
		for j := range v {
			v[j] = ctr[j] + float32(rng.NormFloat64())
		}
		c.Add(Item{ID: fmt.Sprintf("%08d", i), Category: fmt.Sprint(i % 7), Embedding: v})
	}
	q := make([]float32, dim)
	ctr := centres[0]
	for j := range q {
		q[j] = ctr[j] + float32(rng.NormFloat64())
	}
	return &c, q
}

func BenchmarkRecommend(b *testing.B) {
	c, q := benchCatalog(b, 100_000)
	for _, w := range []int{1, 2} {
		for _, k := range []int{10, 100} {
			b.Run(fmt.Sprintf("n=100000/dim=128/k=%d/workers=%d", k, w), func(b *testing.B) {
				opts := &RecommendOptions{Workers: w, ExcludeCategory: "3"}
				b.ReportAllocs()
				for b.Loop() {
					c.Recommend(q, k, opts)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
				b.ReportMetric(float64(4*len(c.vecs))/1e6, "embeddings-MB")
			})
		}
	}
	for _, w := range []int{1, 2} {
		b.Run(fmt.Sprintf("n=100000/dim=128/k=10/batch=64/workers=%d", w), func(b *testing.B) {
			qs := make([][]float32, 64)
			for i := range qs {
				qs[i] = c.Item(i * 1000).Embedding
			}
			opts := &RecommendOptions{Workers: w}
			b.ReportAllocs()
			for b.Loop() {
				c.RecommendBatch(context.Background(), qs, 10, opts)
			}
			b.ReportMetric(float64(b.N*len(qs))/b.Elapsed().Seconds(), "queries/s")
		})
	}
}

func BenchmarkCatalogSaveLoad(b *testing.B) {
	c, _ := benchCatalog(b, 100_000)
	path := filepath.Join(b.TempDir(), "bench.stylecat")
	if err := c.Save(path); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(path)
	b.Run("Save", func(b *testing.B) {
		b.SetBytes(st.Size())
		b.ReportAllocs()
		for b.Loop() {
			if err := c.Save(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Load", func(b *testing.B) {
		b.SetBytes(st.Size())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := LoadCatalog(path); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func ExampleCatalog_RecommendItem() {
	var cat Catalog
	for _, it := range []Item{
		{ID: "black-blazer", Category: "jackets", Embedding: []float32{0.10, 0.90}},
		{ID: "black-trousers", Category: "trousers", Embedding: []float32{0.15, 0.80}},
		{ID: "silk-tie", Category: "ties", Embedding: []float32{0.20, 0.90}},
		{ID: "tweed-jacket", Category: "jackets", Embedding: []float32{0.12, 0.88}},
		{ID: "hiking-boots", Category: "shoes", Embedding: []float32{0.90, 0.10}},
		{ID: "oxford-shoes", Category: "shoes", Embedding: []float32{0.25, 0.70}},
	} {
		if err := cat.Add(it); err != nil {
			fmt.Println(err)
			return
		}
	}
	// The three most compatible items that are not jackets.
	matches, err := cat.RecommendItem("black-blazer", 3, &RecommendOptions{ExcludeSameCategory: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range matches {
		fmt.Printf("%-15s %-9s %.4f\n", m.ID, m.Category, m.Distance)
	}
	// Output:
	// silk-tie        ties      0.1000
	// black-trousers  trousers  0.1118
	// oxford-shoes    shoes     0.2500
}
