package ann

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stylespace/style/internal/clustered"
	"github.com/stylespace/style/internal/engine"
)

// The BenchmarkANN fixture: sizes and build parameters, settable for
// tuning (go test -bench ANN -ann.m 12 ...).
var (
	benchN     = flag.Int("ann.n", 1_000_000, "BenchmarkANN: items")
	benchM     = flag.Int("ann.m", DefaultM, "BenchmarkANN: Config.M")
	benchEfc   = flag.Int("ann.efc", DefaultEfConstruction, "BenchmarkANN: Config.EfConstruction")
	benchCache = flag.String("ann.cache", "", "BenchmarkANN: directory where the built index is saved and, when present, read instead of built")
)

const (
	benchDim     = 128
	benchQueries = 200
	benchK       = 10
)

// benchFixture is the data, exact answers and index of BenchmarkANN,
// built once per process, on first use.
type benchFixture struct {
	vecs, qs  []float32
	exact     [][]Result
	ix        *Index
	build     time.Duration // 0 when read from the cache
	buildCPU  float64       // process CPU seconds of the build
	peakHeap  uint64        // largest HeapAlloc seen during the build
	vecsHeap  uint64        // HeapAlloc before the build (the vectors, mostly)
	afterHeap uint64        // HeapAlloc after the build and a GC
}

var benchData = sync.OnceValue(func() *benchFixture {
	n := *benchN
	fx := new(benchFixture)
	cl := clustered.New(101, benchDim, max(n/1000, 1), 16, 0.1)
	fx.vecs = cl.Points(102, n)
	fx.qs = cl.Points(103, benchQueries)

	// Exact answers by brute force, two queries at a time.
	fx.exact = make([][]Result, benchQueries)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < benchQueries; i += 2 {
				fx.exact[i] = exactKNN(fx.vecs, benchDim, row(fx.qs, benchDim, i), benchK, nil)
			}
		})
	}
	wg.Wait()

	var cache string
	if *benchCache != "" {
		cache = filepath.Join(*benchCache, fmt.Sprintf("ann-n%d-m%d-efc%d.idx", n, *benchM, *benchEfc))
		if f, err := os.Open(cache); err == nil {
			st, err := f.Stat()
			if err == nil {
				fx.ix, err = Read(bufio.NewReader(f), st.Size(), fx.vecs, benchDim, cache)
			}
			f.Close()
			if err != nil {
				panic(err)
			}
			return fx
		}
	}

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fx.vecsHeap = ms.HeapAlloc
	fx.peakHeap = ms.HeapAlloc
	start, cpu := time.Now(), processCPUSeconds()
	ix, err := Build(context.Background(), fx.vecs, benchDim, &Config{M: *benchM, EfConstruction: *benchEfc, Seed: 104}, func(done, total int) {
		runtime.ReadMemStats(&ms)
		fx.peakHeap = max(fx.peakHeap, ms.HeapAlloc)
	})
	fx.build = time.Since(start)
	fx.buildCPU = processCPUSeconds() - cpu
	if err != nil {
		panic(err)
	}
	if cache != "" {
		var buf bytes.Buffer
		if _, err := ix.WriteTo(&buf); err != nil {
			panic(err)
		}
		if err := os.WriteFile(cache, buf.Bytes(), 0o644); err != nil {
			panic(err)
		}
	}
	fx.ix = ix
	runtime.GC()
	runtime.ReadMemStats(&ms)
	fx.afterHeap = ms.HeapAlloc
	return fx
})

// BenchmarkANN measures the index on -ann.n (default 1,000,000) seeded
// clustered vectors of dimension 128 (1 cluster per 1,000 items, each
// spread along 16 random directions plus isotropic noise): the build
// (once per process; its time is the ns/op of the build line), queries at
// several ef one at a time (ns/op per query, with recall@10 against the
// exact answers of 200 queries), queries on all cores at once, filtered
// queries, and the exact scan it replaces. cpu-ns/op is the process's
// CPU time per query, less sensitive than ns/op to other processes on a
// shared machine. The build takes minutes: run it with -timeout 60m, and
// with -ann.cache DIR to build once and reuse the index in later runs.
func BenchmarkANN(b *testing.B) {
	fx := benchData()
	n := len(fx.vecs) / benchDim
	b.Run(fmt.Sprintf("build/n=%d/M=%d/efc=%d", n, *benchM, *benchEfc), func(b *testing.B) {
		if fx.build == 0 {
			b.Skip("index read from -ann.cache")
		}
		for b.Loop() {
		}
		b.ReportMetric(float64(fx.build.Nanoseconds()), "ns/op")
		b.ReportMetric(fx.build.Seconds(), "build-s")
		b.ReportMetric(fx.buildCPU, "build-cpu-s")
		b.ReportMetric(float64(fx.ix.memBytes())/float64(n), "index-B/item")
		b.ReportMetric(float64(fx.peakHeap)/(1<<20), "peak-heap-MiB")
		b.ReportMetric(float64(fx.peakHeap-fx.vecsHeap)/float64(n), "build-heap-B/item")
		b.ReportMetric(float64(fx.afterHeap-fx.vecsHeap)/float64(n), "retained-B/item")
	})
	for _, ef := range []int{10, 16, 24, 32, 48, 64, 96, 128, 192} {
		b.Run(fmt.Sprintf("search/ef=%d", ef), func(b *testing.B) {
			benchSearch(b, fx, ef, nil, nil)
		})
	}
	b.Run(fmt.Sprintf("search-parallel/ef=%d", DefaultEf), func(b *testing.B) {
		b.ReportAllocs()
		var next sync.Mutex
		qi := 0
		b.RunParallel(func(pb *testing.PB) {
			var dst []Result
			for pb.Next() {
				next.Lock()
				i := qi % benchQueries
				qi++
				next.Unlock()
				dst, _ = fx.ix.Search(dst, row(fx.qs, benchDim, i), benchK, DefaultEf, nil)
			}
		})
	})
	for _, keep := range []int{2, 10, 100} {
		accept := func(i int) bool { return uint32(i)*2654435761%uint32(keep) == 0 }
		b.Run(fmt.Sprintf("filtered/keep=1in%d/ef=%d", keep, DefaultEf), func(b *testing.B) {
			exact := make([][]Result, benchQueries/4)
			for i := range exact {
				exact[i] = exactKNN(fx.vecs, benchDim, row(fx.qs, benchDim, i), benchK, accept)
			}
			benchSearch(b, fx, DefaultEf, accept, exact)
		})
	}
	b.Run("exact-scan", func(b *testing.B) {
		b.ReportAllocs()
		var h maxHeap
		i := 0
		cpu := processCPUSeconds()
		for b.Loop() {
			q := row(fx.qs, benchDim, i%benchQueries)
			i++
			h = h[:0]
			for j := range int32(n) {
				bound := inf32
				if len(h) == benchK {
					bound = h[0].d
				}
				d, ok := engine.SqDistBounded(q, row(fx.vecs, benchDim, int(j)), bound)
				if !ok {
					continue
				}
				if x := (item{d, j}); len(h) < benchK {
					h.push(x)
				} else if less(x, h[0]) {
					h.pop()
					h.push(x)
				}
			}
		}
		b.ReportMetric((processCPUSeconds()-cpu)*1e9/float64(b.N), "cpu-ns/op")
	})
}

// benchSearch times one query at a time and reports recall@10 and the
// fraction of searches that gave up, over the queries that have exact
// answers (all of fx.exact when exact is nil).
func benchSearch(b *testing.B, fx *benchFixture, ef int, accept func(int) bool, exact [][]Result) {
	if exact == nil {
		exact = fx.exact
	}
	var dst []Result
	r, gaveUp := 0.0, 0
	for i, e := range exact {
		var complete bool
		dst, complete = fx.ix.Search(dst, row(fx.qs, benchDim, i), benchK, ef, accept)
		r += recall(dst, e)
		if !complete {
			gaveUp++
		}
	}
	b.ReportAllocs()
	i := 0
	cpu := processCPUSeconds()
	for b.Loop() {
		dst, _ = fx.ix.Search(dst, row(fx.qs, benchDim, i%len(exact)), benchK, ef, accept)
		i++
	}
	b.ReportMetric((processCPUSeconds()-cpu)*1e9/float64(b.N), "cpu-ns/op")
	b.ReportMetric(r/float64(len(exact)), "recall@10")
	if accept != nil {
		b.ReportMetric(float64(gaveUp)/float64(len(exact)), "gave-up")
	}
}
