package study

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
)

func TestPrefetch(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, image.NewGray(image.Rect(0, 0, 4, 3))))
	var mu sync.Mutex
	requests := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/img/")
		mu.Lock()
		requests[name]++
		mu.Unlock()
		if name == "gone.jpg" {
			http.NotFound(w, r)
			return
		}
		w.Write(buf.Bytes())
	}))
	defer srv.Close()
	src, err := style.NewURLSource(srv.URL+"/img/", &style.URLOptions{CacheDir: t.TempDir(), Backoff: time.Millisecond, Attempts: 2})
	require.NoError(t, err)
	var names []string
	for i := range 20 {
		names = append(names, fmt.Sprintf("%02d.jpg", i))
	}
	names = append(names, "gone.jpg", names[3])
	var last style.Progress
	failed, err := Prefetch(context.Background(), src, names, &PrefetchOptions{Concurrent: 4, Progress: func(p style.Progress) { last = p }})
	require.NoError(t, err)
	require.Len(t, failed, 1, "failures %v", failed)
	assert.Equal(t, "gone.jpg", failed[0].Name)
	assert.ErrorIs(t, failed[0].Err, fs.ErrNotExist)
	assert.Equal(t, "download", last.Stage, "last progress")
	assert.EqualValues(t, 21, last.Done, "last progress")
	assert.EqualValues(t, 21, last.Total, "last progress")
	srv.Close()
	for _, n := range names[:20] {
		assert.Equal(t, 1, requests[n], "requests of %s", n)
		_, err := style.OpenImage(context.Background(), src, n)
		assert.NoError(t, err, "%s not cached", n)
	}

	_, err = Prefetch(context.Background(), src, names, &PrefetchOptions{Concurrent: -1})
	assert.ErrorContains(t, err, "negative Concurrent")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	failed, err = Prefetch(ctx, src, names, nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, failed, "nothing is opened after a cancellation")
}
