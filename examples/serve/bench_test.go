package main

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
)

// BenchmarkScore measures POST /api/score over the loopback, two photos a
// request, with 1 and 8 concurrent clients, on the tests' narrow network
// (divisor 8) and on full-width VGG16 (divisor 1, generated weights: the
// same cost as the published ones). It reports requests per second and the
// median and 99th-percentile latencies. The server has the default number
// of workers and a queue long enough that no request is refused.
func BenchmarkScore(b *testing.B) {
	ps := photos(b)
	body, ct := multipartBody(b, fileField(b, "a", ps[0]), fileField(b, "b", ps[1]))
	for _, div := range []int{8, 1} {
		w, err := style.GenerateWeights(style.VGG16, 1, div)
		require.NoError(b, err)
		fx, err := style.NewNetwork(w, nil)
		require.NoError(b, err)
		head, err := style.NewSiameseHead(&style.HeadConfig{In: fx.FeatureLen(), Backbone: fx.Backbone()})
		require.NoError(b, err)
		m := &model{fx: fx, head: head, desc: "benchmark"}
		cfg := serverConfig{MaxUpload: 1 << 20, MaxPixels: 4 << 20, Timeout: time.Minute,
			Workers: runtime.GOMAXPROCS(0), Queue: 64}
		s := newServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		s.setModel(m)
		ts := httptest.NewServer(s.handler())
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("divisor=%d/clients=%d", div, clients), func(b *testing.B) {
				benchScore(b, ts, body.Bytes(), ct, clients)
			})
		}
		ts.Close()
	}
}

func benchScore(b *testing.B, ts *httptest.Server, body []byte, ct string, clients int) {
	client := ts.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = clients
	defer client.CloseIdleConnections()
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				resp, err := client.Post(ts.URL+"/api/score", ct, bytes.NewReader(body))
				if err != nil {
					failed.Store(err.Error())
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					failed.Store(fmt.Sprintf("status %d: %s", resp.StatusCode, msg))
					return
				}
				lat[i] = time.Since(t0)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if msg := failed.Load(); msg != nil {
		b.Fatal(msg)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		i := min(len(lat)-1, int(p*float64(len(lat))+0.999999)-1)
		return float64(lat[max(i, 0)].Microseconds()) / 1000
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
