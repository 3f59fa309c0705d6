package style

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// The BenchmarkCatalogANN fixture's size and cache, settable from the
// command line (go test -bench CatalogANN -catalog.ann.cache DIR ...).
var (
	catalogANNN     = flag.Int("catalog.ann.n", 1_000_000, "BenchmarkCatalogANN: items")
	catalogANNCache = flag.String("catalog.ann.cache", "", "BenchmarkCatalogANN: directory where the catalogue and its index are saved and, when present, loaded instead of built")
)

const catalogANNQueries = 200

// catalogANNFixture is the catalogue, queries and exact answers of
// BenchmarkCatalogANN, built once per process on first use.
type catalogANNFixture struct {
	c         *Catalog
	qs        [][]float32
	exact     [][]Match
	build     time.Duration // 0 when loaded from the cache
	buildCPU  float64       // process CPU seconds of the build
	peakHeap  uint64        // largest HeapAlloc seen during the build
	baseHeap  uint64        // HeapAlloc before the build (the catalogue, mostly)
	afterHeap uint64        // HeapAlloc after the build and a GC
}

var catalogANNData = sync.OnceValue(func() *catalogANNFixture {
	n := *catalogANNN
	fx := new(catalogANNFixture)
	// The data of internal/ann's BenchmarkANN: seeds 101 (clusters), 102
	// (items) and 103 (queries).
	fx.c, fx.qs = clusteredCatalog(n, catalogANNQueries, 101)

	exact := &RecommendOptions{Approximate: -1}
	fx.exact = make([][]Match, len(fx.qs))
	for i, q := range fx.qs {
		fx.exact[i] = fx.c.Recommend(q, 10, exact)
	}

	var cache string
	if *catalogANNCache != "" {
		cache = filepath.Join(*catalogANNCache, fmt.Sprintf("catalog-ann-n%d.cat", n))
		if _, err := os.Stat(cache); err == nil {
			c, err := LoadCatalog(cache)
			if err != nil {
				panic(err)
			}
			if c.ann == nil || c.Len() != n {
				panic(cache + ": no valid index for this catalogue; remove it")
			}
			fx.c = c
			return fx
		}
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fx.baseHeap, fx.peakHeap = ms.HeapAlloc, ms.HeapAlloc
	start, cpu := time.Now(), processCPUSeconds()
	err := fx.c.BuildIndex(context.Background(), 0, func(Progress) {
		runtime.ReadMemStats(&ms)
		fx.peakHeap = max(fx.peakHeap, ms.HeapAlloc)
	})
	fx.build = time.Since(start)
	fx.buildCPU = processCPUSeconds() - cpu
	if err != nil {
		panic(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fx.afterHeap = ms.HeapAlloc
	if cache != "" {
		if err := fx.c.Save(cache); err != nil {
			panic(err)
		}
	}
	return fx
})

// BenchmarkCatalogANN measures the approximate search through the
// Catalog API on -catalog.ann.n (default 1,000,000) seeded clustered
// items of dimension 128, internal/ann's BenchmarkANN data: the index
// build (once per process; the ns/op of the build line), Recommend
// through the index one query at a time at several Ef, with recall@10
// against the exact search over 200 queries, filtered queries, and the
// exact search itself with 1 and 2 workers (the speedup is the ratio of
// their ns/op, measured in the same run). The build takes minutes: run it
// with -timeout 60m, and with -catalog.ann.cache DIR to build once and
// load the catalogue with its index in later runs.
func BenchmarkCatalogANN(b *testing.B) {
	fx := catalogANNData()
	n := fx.c.Len()
	b.Run(fmt.Sprintf("build/n=%d", n), func(b *testing.B) {
		if fx.build == 0 {
			b.Skip("index loaded from -catalog.ann.cache")
		}
		for b.Loop() {
		}
		b.ReportMetric(float64(fx.build.Nanoseconds()), "ns/op")
		b.ReportMetric(fx.build.Seconds(), "build-s")
		b.ReportMetric(fx.buildCPU, "build-cpu-s")
		b.ReportMetric(float64(fx.peakHeap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(fx.peakHeap-fx.baseHeap)/float64(n), "build-heap-B/item")
		b.ReportMetric(float64(fx.afterHeap-fx.baseHeap)/float64(n), "retained-B/item")
	})
	for _, ef := range []int{48, 64, 96} {
		b.Run(fmt.Sprintf("approx/ef=%d", ef), func(b *testing.B) {
			benchCatalogANN(b, fx, &RecommendOptions{Approximate: 1, Ef: ef}, fx.exact)
		})
	}
	b.Run("approx-filtered/ExcludeCategory", func(b *testing.B) {
		exact := make([][]Match, len(fx.qs)/4)
		for i := range exact {
			exact[i] = fx.c.Recommend(fx.qs[i], 10, &RecommendOptions{Approximate: -1, ExcludeCategory: "shoes"})
		}
		benchCatalogANN(b, fx, &RecommendOptions{Approximate: 1, ExcludeCategory: "shoes"}, exact)
	})
	for _, w := range []int{1, 2} {
		b.Run(fmt.Sprintf("exact/workers=%d", w), func(b *testing.B) {
			opts := &RecommendOptions{Approximate: -1, Workers: w}
			b.ReportAllocs()
			i := 0
			cpu := processCPUSeconds()
			for b.Loop() {
				fx.c.Recommend(fx.qs[i%len(fx.qs)], 10, opts)
				i++
			}
			b.ReportMetric((processCPUSeconds()-cpu)*1e9/float64(b.N), "cpu-ns/op")
		})
	}
}

// benchCatalogANN times Recommend with opts one query at a time and
// reports recall@10 against exact (the answers of the first len(exact)
// queries).
func benchCatalogANN(b *testing.B, fx *catalogANNFixture, opts *RecommendOptions, exact [][]Match) {
	r := 0.0
	for i, e := range exact {
		r += matchRecall(fx.c.Recommend(fx.qs[i], 10, opts), e)
	}
	b.ReportAllocs()
	i := 0
	cpu := processCPUSeconds()
	for b.Loop() {
		fx.c.Recommend(fx.qs[i%len(exact)], 10, opts)
		i++
	}
	b.ReportMetric((processCPUSeconds()-cpu)*1e9/float64(b.N), "cpu-ns/op")
	b.ReportMetric(r/float64(len(exact)), "recall@10")
}
