package style

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style/internal/ann"
	"github.com/stylespace/style/internal/clustered"
	"github.com/stylespace/style/internal/engine"
)

// annCategories are the categories of the index tests' items, item i
// having annCategories[i%4].
var annCategories = [...]string{"shoes", "bags", "tops", ""}

// annTestCatalog returns a catalogue of n seeded clustered 128-value
// embeddings (1 cluster per 1,000 items) with its index built, and nq
// queries drawn from the same clusters. The catalogue is built once per
// process: tests must not change it.
var annTestCatalog = sync.OnceValues(func() (*Catalog, [][]float32) {
	n, nq := 20000, 100
	switch {
	case engine.RaceEnabled:
		n, nq = 2000, 30
	case testing.Short():
		n, nq = 4000, 50
	}
	c, qs := clusteredCatalog(n, nq, 1)
	if err := c.BuildIndex(context.Background(), 0, nil); err != nil {
		panic(err)
	}
	return c, qs
})

// clusteredCatalog returns a catalogue of n clustered embeddings of
// dimension 128 and nq queries, drawn with the given seed.
func clusteredCatalog(n, nq int, seed uint64) (*Catalog, [][]float32) {
	const d = 128
	cl := clustered.New(seed, d, max(1, n/1000), 16, 0.1)
	vecs := cl.Points(seed+1, n)
	c := &Catalog{}
	c.ids = make([]string, 0, n)
	c.vecs = make([]float32, 0, n*d)
	for i := range n {
		if err := c.Add(Item{ID: fmt.Sprintf("item%07d", i), Category: annCategories[i%4], Embedding: vecs[i*d : (i+1)*d]}); err != nil {
			panic(err)
		}
	}
	qv := cl.Points(seed+2, nq)
	qs := make([][]float32, nq)
	for i := range qs {
		qs[i] = qv[i*d : (i+1)*d]
	}
	return c, qs
}

// matchRecall returns the fraction of exact's items that got holds.
func matchRecall(got, exact []Match) float64 {
	if len(exact) == 0 {
		return 1
	}
	in := make(map[int]bool, len(got))
	for _, m := range got {
		in[m.Index] = true
	}
	hit := 0
	for _, m := range exact {
		if in[m.Index] {
			hit++
		}
	}
	return float64(hit) / float64(len(exact))
}

// checkApprox checks that the approximate matches got are sorted by
// (distance, index), hold no item twice, and have exactly the distances
// of the exact search.
func checkApprox(t *testing.T, c *Catalog, q []float32, got []Match) {
	t.Helper()
	seen := map[int]bool{}
	for j, m := range got {
		require.False(t, seen[m.Index], "item %d twice", m.Index)
		seen[m.Index] = true
		d, _ := engine.SqDistBounded(q, c.row(m.Index), float32(math.Inf(1)))
		require.Equal(t, math.Sqrt(float64(d)), m.Distance, "match %d", j)
		require.Equal(t, c.ids[m.Index], m.ID)
		require.Equal(t, c.cats[c.cat[m.Index]], m.Category)
		if j > 0 {
			p := got[j-1]
			require.True(t, p.Distance < m.Distance || (p.Distance == m.Distance && p.Index < m.Index), "matches %d and %d out of order", j-1, j)
		}
	}
}

// TestCatalogIndexRecall checks recall@10 of Recommend through the index
// against the exact search on clustered data, that the index is used only
// as RecommendOptions.Approximate and the size threshold say, and that
// RecommendBatch answers as Recommend does.
func TestCatalogIndexRecall(t *testing.T) {
	c, qs := annTestCatalog()
	require.NotNil(t, c.ann)
	const k = 10
	exact := &RecommendOptions{Approximate: -1}
	approx := &RecommendOptions{Approximate: 1}
	r := 0.0
	differs := 0
	for _, q := range qs {
		want := c.Recommend(q, k, exact)
		require.Len(t, want, k)
		got := c.Recommend(q, k, approx)
		require.Len(t, got, k)
		checkApprox(t, c, q, got)
		r += matchRecall(got, want)
		if !assert.ObjectsAreEqual(want, got) {
			differs++
		}
		// Below the threshold, the default is the exact search.
		require.Equal(t, want, c.Recommend(q, k, nil))
	}
	r /= float64(len(qs))
	t.Logf("recall@%d = %.4f over %d queries (n=%d, ef=%d); %d answers differ from the exact ones", k, r, len(qs), c.Len(), ann.DefaultEf, differs)
	assert.GreaterOrEqual(t, r, 0.95)

	// A larger ef finds at least as many.
	r2 := 0.0
	for _, q := range qs {
		r2 += matchRecall(c.Recommend(q, k, &RecommendOptions{Approximate: 1, Ef: 200}), c.Recommend(q, k, exact))
	}
	r2 /= float64(len(qs))
	assert.GreaterOrEqual(t, r2, r)

	// From the threshold on, the default is the index.
	defer func(v int) { annMinItems = v }(annMinItems)
	annMinItems = c.Len()
	for _, q := range qs[:10] {
		require.Equal(t, c.Recommend(q, k, approx), c.Recommend(q, k, nil))
	}
	// RecommendBatch, on the batch path's query count, answers as
	// Recommend does, for any number of workers.
	for _, w := range []int{1, 2} {
		got, err := c.RecommendBatch(context.Background(), qs, k, &RecommendOptions{Workers: w})
		require.NoError(t, err)
		for i, q := range qs {
			require.Equal(t, c.Recommend(q, k, nil), got[i], "query %d, workers %d", i, w)
		}
	}
}

// TestCatalogIndexFilters checks that the exclusions and Filter are
// honoured by the index, and that very selective filters fall back to
// the exact search.
func TestCatalogIndexFilters(t *testing.T) {
	c, qs := annTestCatalog()
	const k = 10
	for _, q := range qs[:20] {
		got := c.Recommend(q, k, &RecommendOptions{Approximate: 1, ExcludeCategory: "shoes"})
		require.Len(t, got, k)
		checkApprox(t, c, q, got)
		for _, m := range got {
			require.NotEqual(t, "shoes", m.Category)
		}
		want := c.Recommend(q, k, &RecommendOptions{Approximate: -1, ExcludeCategory: "shoes"})
		assert.GreaterOrEqual(t, matchRecall(got, want), 0.7)

		// Excluding the nearest item by ID.
		first := c.Recommend(q, 1, &RecommendOptions{Approximate: 1})[0]
		got = c.Recommend(q, k, &RecommendOptions{Approximate: 1, ExcludeID: first.ID})
		require.Len(t, got, k)
		for _, m := range got {
			require.NotEqual(t, first.ID, m.ID)
		}

		before := annFallbacks.Load()
		odd := func(it Item) bool { return it.ID[len(it.ID)-1]%2 == 1 }
		got = c.Recommend(q, k, &RecommendOptions{Approximate: 1, Filter: odd})
		require.Len(t, got, k)
		checkApprox(t, c, q, got)
		for _, m := range got {
			require.True(t, odd(c.Item(m.Index)), "item %s", m.ID)
		}
		assert.Equal(t, before, annFallbacks.Load(), "half the items accepted: no fall back")
	}

	// RecommendItem: never the item itself nor its category.
	for i := 0; i < c.Len(); i += c.Len() / 20 {
		it := c.Item(i)
		got, err := c.RecommendItem(it.ID, k, &RecommendOptions{Approximate: 1, ExcludeSameCategory: true})
		require.NoError(t, err)
		require.Len(t, got, k)
		checkApprox(t, c, it.Embedding, got)
		for _, m := range got {
			require.NotEqual(t, it.ID, m.ID)
			if it.Category != "" {
				require.NotEqual(t, it.Category, m.Category)
			}
		}
	}

	// One item in 997 accepted: the index gives up and the exact scan
	// answers, so the results are the exact ones. (A filtered search
	// gives up after max(n/4, 4·ef·2M) distances, so on the small
	// catalogues of -short and -race it visits the whole graph instead.)
	givesUp := c.Len() > 4*ann.DefaultEf*2*ann.DefaultM
	rare := func(it Item) bool {
		var n int
		fmt.Sscanf(it.ID, "item%d", &n)
		return n%997 == 0
	}
	for _, q := range qs[:5] {
		want := c.Recommend(q, k, &RecommendOptions{Approximate: -1, Filter: rare})
		require.NotEmpty(t, want)
		before := annFallbacks.Load()
		assert.Equal(t, want, c.Recommend(q, k, &RecommendOptions{Approximate: 1, Filter: rare}))
		if givesUp {
			assert.Equal(t, before+1, annFallbacks.Load(), "no fall back to the exact scan")
		}
	}
	// A filter that rejects everything.
	assert.Empty(t, c.Recommend(qs[0], k, &RecommendOptions{Approximate: 1, Filter: func(Item) bool { return false }}))
}

// TestCatalogIndexSaveLoad checks that Save writes the index next to the
// catalogue, that LoadCatalog attaches it and answers as before, and that
// changes to the items drop it.
func TestCatalogIndexSaveLoad(t *testing.T) {
	c, qs := clusteredCatalog(3000, 20, 7)
	var calls []Progress
	require.NoError(t, c.BuildIndex(context.Background(), 2, func(p Progress) { calls = append(calls, p) }))
	require.NotEmpty(t, calls)
	for _, p := range calls {
		require.Equal(t, "index", p.Stage)
		require.LessOrEqual(t, p.Done, p.Total)
	}
	assert.Equal(t, int64(c.Len()), calls[len(calls)-1].Done)

	// The same index for any number of workers.
	c1, _ := clusteredCatalog(3000, 0, 7)
	require.NoError(t, c1.BuildIndex(context.Background(), 1, nil))
	var b1, b2 bytes.Buffer
	_, err := c.ann.WriteTo(&b1)
	require.NoError(t, err)
	_, err = c1.ann.WriteTo(&b2)
	require.NoError(t, err)
	require.Equal(t, b1.Bytes(), b2.Bytes())

	path := filepath.Join(t.TempDir(), "cat.bin")
	require.NoError(t, c.Save(path))
	require.FileExists(t, path+".ann")
	got, err := LoadCatalog(path)
	require.NoError(t, err)
	require.NotNil(t, got.ann, "index not attached")
	opts := &RecommendOptions{Approximate: 1}
	for _, q := range qs {
		require.Equal(t, c.Recommend(q, 10, opts), got.Recommend(q, 10, opts))
	}

	// Any change to the items drops the index; saving then removes the
	// file.
	require.NoError(t, got.Add(Item{ID: "new", Embedding: qs[0]}))
	assert.Nil(t, got.ann)
	require.NoError(t, got.Save(path))
	assert.NoFileExists(t, path+".ann")
	c2, err := LoadCatalog(path)
	require.NoError(t, err)
	assert.Nil(t, c2.ann)
	require.NoError(t, c2.BuildIndex(context.Background(), 0, nil))
	c2.removeWhere(func(i int) bool { return i == 5 })
	assert.Nil(t, c2.ann)
}

// TestCatalogIndexStale checks that an index built over other embeddings
// than the catalogue's (items added since, through Add or the journal) is
// detected and ignored: searches are then exact.
func TestCatalogIndexStale(t *testing.T) {
	c, qs := clusteredCatalog(2000, 5, 9)
	require.NoError(t, c.BuildIndex(context.Background(), 0, nil))
	dir := t.TempDir()
	path := filepath.Join(dir, "cat.bin")
	require.NoError(t, c.Save(path))
	idx, err := os.ReadFile(path + ".ann")
	require.NoError(t, err)

	// Change one embedding value, save without an index, and put the old
	// index back.
	v := c.Item(100)
	v.Embedding[0] += 1
	require.NoError(t, c.put(v, itemKey{}, "test"))
	require.NoError(t, c.Save(path))
	require.NoError(t, os.WriteFile(path+".ann", idx, 0o644))

	got, err := LoadCatalog(path)
	require.NoError(t, err)
	assert.Nil(t, got.ann, "stale index attached")
	err = got.loadIndex(path)
	require.ErrorIs(t, err, ann.ErrMismatch)
	for _, q := range qs {
		require.Equal(t, got.Recommend(q, 10, &RecommendOptions{Approximate: -1}), got.Recommend(q, 10, &RecommendOptions{Approximate: 1}))
	}
	require.NoError(t, got.BuildIndex(context.Background(), 0, nil))
	assert.NotNil(t, got.ann)
}

// TestCatalogIndexHostile checks that malformed index files are ignored,
// with a *ann.FormatError from loadIndex, never a panic.
func TestCatalogIndexHostile(t *testing.T) {
	c, _ := clusteredCatalog(500, 0, 11)
	require.NoError(t, c.BuildIndex(context.Background(), 0, nil))
	path := filepath.Join(t.TempDir(), "cat.bin")
	require.NoError(t, c.Save(path))
	good, err := os.ReadFile(path + ".ann")
	require.NoError(t, err)
	cases := map[string][]byte{
		"empty":     {},
		"truncated": good[:len(good)/2],
		"header":    good[:40],
		"extra":     append(bytes.Clone(good), 0),
		"garbage":   bytes.Repeat([]byte{0xff}, len(good)),
	}
	for _, off := range []int{0, 9, 13, 20, 50, 70, len(good) - 1} {
		b := bytes.Clone(good)
		b[off] ^= 0x40
		cases[fmt.Sprintf("flip@%d", off)] = b
	}
	for name, b := range cases {
		require.NoError(t, os.WriteFile(path+".ann", b, 0o644))
		got, err := LoadCatalog(path)
		require.NoError(t, err, name)
		assert.Nil(t, got.ann, name)
		var fe *ann.FormatError
		assert.ErrorAs(t, got.loadIndex(path), &fe, name)
	}
	require.NoError(t, os.WriteFile(path+".ann", good, 0o644))
	got, err := LoadCatalog(path)
	require.NoError(t, err)
	assert.NotNil(t, got.ann)
}

// FuzzCatalogIndex checks that LoadCatalog never fails or panics because
// of the index file next to a valid catalogue, and that an index it
// attaches answers queries.
func FuzzCatalogIndex(f *testing.F) {
	c, _ := clusteredCatalog(64, 0, 13)
	if err := c.BuildIndex(context.Background(), 1, nil); err != nil {
		f.Fatal(err)
	}
	var good bytes.Buffer
	if _, err := c.ann.WriteTo(&good); err != nil {
		f.Fatal(err)
	}
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:64])
	f.Add([]byte("STYLEANN"))
	dir := f.TempDir()
	path := filepath.Join(dir, "cat.bin")
	c.ann = nil
	if err := c.Save(path); err != nil {
		f.Fatal(err)
	}
	q := c.Item(3).Embedding
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path+".ann", data, 0o644))
		got, err := LoadCatalog(path)
		require.NoError(t, err)
		require.Equal(t, c.Len(), got.Len())
		ms := got.Recommend(q, 5, &RecommendOptions{Approximate: 1, ExcludeCategory: "bags"})
		for _, m := range ms {
			require.Less(t, m.Index, got.Len())
			require.NotEqual(t, "bags", m.Category)
		}
	})
}

// TestCatalogBuildIndexErrors checks the errors of BuildIndex.
func TestCatalogBuildIndexErrors(t *testing.T) {
	c, _ := clusteredCatalog(2000, 0, 15)
	require.Error(t, c.BuildIndex(context.Background(), -1, nil))
	require.NoError(t, c.BuildIndex(context.Background(), 0, nil))
	prev := c.ann
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, c.BuildIndex(ctx, 0, nil), context.Canceled)
	assert.Same(t, prev, c.ann, "a cancelled build keeps the previous index")
	var empty Catalog
	require.NoError(t, empty.BuildIndex(context.Background(), 0, nil))
	assert.Empty(t, empty.Recommend(nil, 3, &RecommendOptions{Approximate: 1}))
}
