package style

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// gaussianMixture returns n points of dimension d drawn from a seeded
// mixture of k spherical Gaussians of unit variance whose centres are drawn
// with standard deviation 2 per coordinate.
func gaussianMixture(n, d, k int, seed uint64) (*Matrix, []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	centers := make([]float64, k*d)
	for i := range centers {
		centers[i] = 2 * rng.NormFloat64()
	}
	x := &Matrix{Rows: n, Cols: d, Data: make([]float32, n*d)}
	labels := make([]int, n)
	for i := 0; i < n; i++ {
		c := rng.IntN(k)
		labels[i] = c
		row := x.Data[i*d : (i+1)*d]
		for j := range row {
			row[j] = float32(centers[c*d+j] + rng.NormFloat64())
		}
	}
	return x, labels
}

// peakHeap samples the live heap every 10 ms until stop is called and
// returns the largest value seen, in bytes.
func peakHeap() (stop func() uint64) {
	var mu sync.Mutex
	var peak uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		v := sample[0].Value.Uint64()
		mu.Lock()
		peak = max(peak, v)
		mu.Unlock()
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			read()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		<-finished
		read()
		return peak
	}
}

// BenchmarkTSNE embeds a 20-cluster Gaussian mixture of 128-D points, 1,000
// iterations, reporting seconds per embedding and the peak live heap.
func BenchmarkTSNE(b *testing.B) {
	for _, bc := range []struct {
		n      int
		method TSNEMethod
	}{
		{2000, TSNEBarnesHut}, {10000, TSNEBarnesHut}, {10000, TSNEFFT}, {50000, TSNEFFT},
	} {
		for _, workers := range []int{1, 2} {
			name := map[TSNEMethod]string{TSNEBarnesHut: "bh", TSNEFFT: "fft"}[bc.method]
			b.Run(fmt.Sprintf("n=%d/%s/workers=%d", bc.n, name, workers), func(b *testing.B) {
				x, _ := gaussianMixture(bc.n, 128, 20, 1)
				b.ReportAllocs()
				b.ResetTimer()
				cpu0 := processCPUSeconds()
				stop := peakHeap()
				for i := 0; i < b.N; i++ {
					_, err := TSNE{Seed: 1, Method: bc.method, Workers: workers}.Fit(context.Background(), x)
					require.NoError(b, err)
				}
				peak := stop()
				b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/embed")
				b.ReportMetric(float64(peak)/(1<<20), "peak-MB")
				// CPU time of the process: on a shared machine the wall
				// time depends on the load, the CPU time much less.
				b.ReportMetric((processCPUSeconds()-cpu0)/float64(b.N), "cpu-s/embed")
			})
		}
	}
}

// BenchmarkTSNEGradient times one gradient evaluation on an embedding
// spread over about 100 x 100 units, the size a 50,000-point embedding
// reaches, so that the FFT grid has its late-iteration size.
func BenchmarkTSNEGradient(b *testing.B) {
	for _, bc := range []struct {
		n      int
		method TSNEMethod
	}{{10000, TSNEBarnesHut}, {10000, TSNEFFT}, {50000, TSNEBarnesHut}, {50000, TSNEFFT}} {
		for _, workers := range []int{1, 2} {
			name := map[TSNEMethod]string{TSNEBarnesHut: "bh", TSNEFFT: "fft"}[bc.method]
			b.Run(fmt.Sprintf("n=%d/%s/workers=%d", bc.n, name, workers), func(b *testing.B) {
				s := testState(b, bc.n, 2, bc.method, 0.5, workers)
				for i := range s.y {
					s.y[i] *= 3 // std 15: a span of about 100
				}
				s.gradient()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					s.gradient()
				}
			})
		}
	}
}

// BenchmarkTSNEAffinities times the exact 91-nearest-neighbour search and
// the perplexity calibration on 128-D Gaussian mixture data.
func BenchmarkTSNEAffinities(b *testing.B) {
	for _, n := range []int{10000, 50000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			x, _ := gaussianMixture(n, 128, 20, 1)
			data := float64s(x.Data)
			pool := newTSNEPool(1)
			defer pool.close()
			b.ResetTimer()
			cpu0 := processCPUSeconds()
			for i := 0; i < b.N; i++ {
				_, _, err := tsneAffinities(context.Background(), pool, data, n, 128, 91, 30)
				require.NoError(b, err)
			}
			b.ReportMetric((processCPUSeconds()-cpu0)/float64(b.N), "cpu-s/op")
		})
	}
}
