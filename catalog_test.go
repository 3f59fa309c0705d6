package style

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
		require.NoError(t, c.Add(Item{ID: fmt.Sprintf("item%05d", i), Category: cats[rng.IntN(len(cats))], Embedding: v}))
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
					require.Equal(t, want, got, "dim %d %s k=%d workers=%d", dim, cs.name, k, w)
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
			require.Equal(t, got1, c.Recommend(q, k, &RecommendOptions{Workers: w}), "trial %d: workers=%d differs from workers=1", trial, w)
		}
		for j, m := range got1 {
			// float32 accumulation over 128 terms of size ~2 against a float64
			// reference: relative error well below 1e-5.
			assert.InEpsilon(t, ref[j].Distance, m.Distance, 1e-5, "trial %d rank %d", trial, j)
			if j > 0 {
				assert.GreaterOrEqual(t, m.Distance, got1[j-1].Distance, "trial %d: not sorted at rank %d", trial, j)
			}
			// Indices must agree unless the reference has a near-tie there.
			if ref[j+1].Distance-ref[j].Distance > 1e-4 && (j == 0 || ref[j].Distance-ref[j-1].Distance > 1e-4) {
				assert.Equal(t, ref[j].Index, m.Index, "trial %d rank %d", trial, j)
			}
		}
	}
}

func TestCatalogRecommendItem(t *testing.T) {
	c := randomCatalog(t, 500, 8, false, 5)
	id := c.Item(42).ID
	cat := c.Item(42).Category
	got, err := c.RecommendItem(id, 20, &RecommendOptions{ExcludeSameCategory: true})
	require.NoError(t, err)
	require.Len(t, got, 20)
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
		require.Equal(t, wi, gi, "indices")
	}
	// Without ExcludeSameCategory the item itself is still excluded.
	got, err = c.RecommendItem(id, c.Len(), nil)
	require.NoError(t, err)
	require.Len(t, got, c.Len()-1)
	for _, m := range got {
		require.NotEqual(t, id, m.ID, "RecommendItem returned the query item")
	}
	_, err = c.RecommendItem("nope", 3, nil)
	assert.ErrorIs(t, err, ErrUnknownItem, "unknown ID")
	_, err = c.RecommendItem(id, 3, &RecommendOptions{Workers: -1})
	assert.ErrorContains(t, err, "style: Catalog.RecommendItem: negative Workers -1")
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
	require.NoError(t, err)
	for i, q := range qs {
		require.Equal(t, c.Recommend(q, 7, &RecommendOptions{ExcludeCategory: "bags", Workers: 1}), got[i], "query %d: batch result differs from Recommend", i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.RecommendBatch(ctx, qs, 7, opts)
	assert.ErrorIs(t, err, context.Canceled, "cancelled batch")
	_, err = c.RecommendBatch(context.Background(), qs, 7, &RecommendOptions{Workers: -3})
	assert.ErrorContains(t, err, "style: Catalog.RecommendBatch: negative Workers -3")
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
		assert.NoError(t, <-errs)
	}
}

func TestCatalogRecommendEdgeCases(t *testing.T) {
	c := randomCatalog(t, 50, 4, true, 1)
	assert.Empty(t, c.Recommend(make([]float32, 4), 0, nil), "k=0")
	var empty Catalog
	assert.Empty(t, empty.Recommend([]float32{1, 2}, 3, nil), "empty catalogue")
	nan := []float32{float32(math.NaN()), 0, 0, 0}
	got := c.Recommend(nan, 3, nil)
	if assert.Len(t, got, 3, "NaN query") {
		assert.Equal(t, []int{0, 1, 2}, []int{got[0].Index, got[1].Index, got[2].Index}, "NaN query: items in index order")
		assert.True(t, math.IsInf(got[0].Distance, 1), "NaN query: distance %v, want +Inf", got[0].Distance)
	}
	mustPanic(t, "query length", func() { c.Recommend(make([]float32, 5), 3, nil) })
	mustPanic(t, "negative k", func() { c.Recommend(make([]float32, 4), -1, nil) })
	mustPanic(t, "negative Workers", func() { c.Recommend(make([]float32, 4), 1, &RecommendOptions{Workers: -1}) })
	mustPanic(t, "embedding length", func() { c.Add(Item{ID: "x", Embedding: make([]float32, 3)}) })
	mustPanic(t, "out of range", func() { c.Item(50) })
}

func TestCatalogAddErrors(t *testing.T) {
	var c Catalog
	require.NoError(t, c.Add(Item{ID: "a", Category: "x", Embedding: []float32{1, 2}}))
	bad := []Item{
		{ID: "", Embedding: []float32{1, 2}},
		{ID: "a", Embedding: []float32{1, 2}},
		{ID: "b", Embedding: []float32{1, float32(math.Inf(1))}},
		{ID: strings.Repeat("z", maxCatalogIDLen+1), Embedding: []float32{1, 2}},
		{ID: "c", Category: strings.Repeat("z", maxCatalogIDLen+1), Embedding: []float32{1, 2}},
	}
	for _, it := range bad {
		assert.Error(t, c.Add(it), "Add(%.20q)", it.ID)
	}
	require.Equal(t, 1, c.Len(), "after failed adds")
	require.Equal(t, 2, c.Dim(), "after failed adds")
	emb := []float32{3, 4}
	require.NoError(t, c.Add(Item{ID: "b", Embedding: emb}))
	emb[0] = 99 // Add copies
	assert.Equal(t, []float32{3, 4}, c.FeatureTo(make([]float32, 2), 1), "Add did not copy the embedding")
	i, ok := c.Index("b")
	assert.True(t, ok, "Index(b)")
	assert.Equal(t, 1, i, "Index(b)")
	assert.Equal(t, Item{ID: "a", Category: "x", Embedding: []float32{1, 2}}, c.Item(0))
	assert.Equal(t, Item{ID: "b", Category: "", Embedding: []float32{3, 4}}, c.Item(1))
}

func TestCatalogIndex(t *testing.T) {
	var c Catalog
	for _, id := range []string{"15970", "15970.png", "1525.jpg", "shirt.JPEG", "a/b.gif", "x.jpg.png", "plain"} {
		require.NoError(t, c.Add(Item{ID: id, Embedding: []float32{1}}))
	}
	for _, tc := range []struct {
		name string
		want int // -1: not found
	}{
		{"15970", 0},      // exactly, before 15970.png
		{"15970.png", 1},  // exactly
		{"15970.jpg", 0},  // extension removed
		{"15970.GIF", 0},  // in any case
		{"1525", 2},       // .jpg added
		{"1525.jpg", 2},   // exactly
		{"1525.png", -1},  // extensions are not swapped
		{"shirt", -1},     // only lower-case extensions are added
		{"shirt.JPEG", 3}, // exactly
		{"a/b", 4},        // a slash path, .gif added
		{"x.jpg", 5},      // .png added
		{"x", -1},         // one extension at a time
		{"plain.jpeg", 6}, // .jpeg removed
		{"plain.txt", -1}, // not an image extension
		{".jpg", -1},      // no name left without the extension
		{"", -1},
	} {
		i, ok := c.Index(tc.name)
		if tc.want < 0 {
			assert.False(t, ok, "Index(%q) = %d", tc.name, i)
		} else if assert.True(t, ok, "Index(%q)", tc.name) {
			assert.Equal(t, tc.want, i, "Index(%q)", tc.name)
		}
	}
	_, err := c.RecommendItem("1525", 1, nil)
	assert.ErrorIs(t, err, ErrUnknownItem, "RecommendItem takes an exact ID")
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
	assert.LessOrEqual(t, testing.AllocsPerRun(50, func() { c.Recommend(q, 10, opts) }), 1.0, "allocations per query")
}

func TestCatalogSaveLoad(t *testing.T) {
	c := randomCatalog(t, 300, 19, false, 8)
	c.Meta = map[string]string{"backbone": "vgg16", "head": "sha256:abc"}
	path := filepath.Join(t.TempDir(), "cat.stylecat")
	require.NoError(t, c.Save(path))
	d, err := LoadCatalog(path)
	require.NoError(t, err)
	require.Equal(t, c.Len(), d.Len())
	require.Equal(t, c.Dim(), d.Dim())
	require.Equal(t, c.Meta, d.Meta)
	for i := range c.Len() {
		require.Equal(t, c.Item(i), d.Item(i), "item %d differs after round trip", i)
	}
	q := c.Item(3).Embedding
	require.Equal(t, c.Recommend(q, 9, nil), d.Recommend(q, 9, nil), "recommendations differ after round trip")
	require.Equal(t, encodeCatalog(t, c), encodeCatalog(t, d), "re-encoding the loaded catalogue gives different bytes")
	// An empty catalogue round-trips too.
	var e Catalog
	require.NoError(t, e.Save(path))
	d, err = LoadCatalog(path)
	require.NoError(t, err, "empty catalogue")
	require.Zero(t, d.Len(), "empty catalogue")
}

func TestCatalogSaveAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cat.stylecat")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	c := randomCatalog(t, 10, 4, true, 1)
	c.Meta = map[string]string{"k": strings.Repeat("v", maxCatalogIDLen+1)}
	require.Error(t, c.Save(path), "Save with an oversized metadata value")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "old", string(b), "failed Save changed the file")
	c.Meta = make(map[string]string, math.MaxUint16+1)
	for i := range math.MaxUint16 + 1 {
		c.Meta[strconv.Itoa(i)] = ""
	}
	require.ErrorContains(t, c.Save(path), "65536 metadata pairs", "Save with too many metadata pairs")
	c.Meta = nil
	require.Error(t, c.Save(filepath.Join(dir, "missing", "cat.stylecat")), "Save into a missing directory")
	entries, _ := os.ReadDir(dir)
	require.Len(t, entries, 1, "temporary files left behind: %v", entries)
}

// encodeCatalog returns what Save writes for c.
func encodeCatalog(t testing.TB, c *Catalog) []byte {
	var b bytes.Buffer
	fp, err := c.encode(&b)
	require.NoError(t, err)
	require.EqualValues(t, b.Len(), fp.size, "bytes written")
	return b.Bytes()
}

func TestLoadCatalogCorrupt(t *testing.T) {
	c := randomCatalog(t, 6, 3, false, 4)
	c.Meta = map[string]string{"m": "v"}
	good := encodeCatalog(t, c)
	check := func(name string, data []byte) {
		t.Helper()
		_, err := decodeCatalog(bytes.NewReader(data), int64(len(data)), "x.stylecat")
		var fe *FormatError
		require.ErrorAs(t, err, &fe, name)
		require.ErrorIs(t, err, ErrFormat, name)
		require.Equal(t, "x.stylecat", fe.Path, name)
		require.True(t, fe.Offset >= 0 && fe.Offset <= int64(len(data)), "%s: error %v lacks a plausible offset", name, err)
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
		{"max counts", hostileHeader(maxCatalogDim, maxCatalogItems, 1, 0, maxCatalogItems+1), "truncated"},
		{"huge strings", hostileHeader(4, 1, 1, 0, 1<<50), "string section"},
		{"zero dim", hostileHeader(0, 3, 1, 0, 4), "dimension 0"},
	}
	for _, cs := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decodeCatalog(bytes.NewReader(cs.header), int64(len(cs.header)), "h")
		runtime.ReadMemStats(&after)
		assert.ErrorIs(t, err, ErrFormat, cs.name)
		assert.ErrorContains(t, err, cs.want, cs.name)
		// A header alone must never make the reader allocate more than a
		// few kilobytes, whatever it declares.
		assert.LessOrEqual(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<16), "%s: bytes allocated", cs.name)
	}
	_, err := LoadCatalog(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorIs(t, err, fs.ErrNotExist, "missing file")
	assert.NotErrorIs(t, err, ErrFormat, "missing file: want a plain I/O error")
}

func FuzzLoadCatalog(f *testing.F) {
	// The committed corpus in testdata/fuzz/FuzzLoadCatalog holds a valid
	// catalogue and damaged ones; add a small valid one here as well.
	var c Catalog
	require.NoError(f, c.Add(Item{ID: "a", Category: "x", Embedding: []float32{1, 2}}))
	require.NoError(f, c.Add(Item{ID: "b", Embedding: []float32{3, 4}}))
	f.Add(encodeCatalog(f, &c))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := decodeCatalog(bytes.NewReader(data), int64(len(data)), "fuzz")
		if err != nil {
			require.ErrorIs(t, err, ErrFormat, "not a format error")
			return
		}
		got := encodeCatalog(t, d)
		if binary.LittleEndian.Uint32(data[8:]) == 1 {
			// Version 1 is read, and written as version 2, which
			// must load as the same catalogue and re-encode to the
			// same bytes.
			d2, err := decodeCatalog(bytes.NewReader(got), int64(len(got)), "fuzz")
			require.NoError(t, err, "version 1 rewritten as version 2")
			require.Equal(t, d.Len(), d2.Len())
			require.Equal(t, d.Meta, d2.Meta)
			for i := range d.Len() {
				require.Equal(t, d.Item(i), d2.Item(i), "item %d", i)
			}
			require.Equal(t, got, encodeCatalog(t, d2), "version 1 rewritten as version 2")
			return
		}
		// What loads must re-encode to the same bytes.
		if !bytes.Equal(got, data) {
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
