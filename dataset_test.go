package style

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeExtractor computes dim features from an image's pixels and counts
// its calls per image size. onCall, if set, runs at the start of each call
// with the call's 1-based number.
type fakeExtractor struct {
	dim    int
	calls  atomic.Int64
	onCall func(n int64)
}

func (f *fakeExtractor) FeatureLen() int    { return f.dim }
func (f *fakeExtractor) Backbone() Backbone { return storeTestBackbone }

func (f *fakeExtractor) Features(img image.Image) ([]float32, error) {
	n := f.calls.Add(1)
	if f.onCall != nil {
		f.onCall(n)
	}
	return fakeFeatures(img, f.dim), nil
}

// fakeFeatures samples the image's colours: feature k is r+g+b (0..765)
// of a pixel chosen by k, times a factor in [0.5, 1.5).
func fakeFeatures(img image.Image, dim int) []float32 {
	b := img.Bounds()
	v := make([]float32, dim)
	for k := range v {
		p := k * 7919 % (b.Dx() * b.Dy())
		r, g, bl, _ := img.At(b.Min.X+p%b.Dx(), b.Min.Y+p/b.Dx()).RGBA()
		v[k] = float32(r>>8+g>>8+bl>>8) * (0.5 + float32(k%10)/10)
	}
	return v
}

// makeImageFolder writes n small PNGs named img000.png... and returns
// their names.
func makeImageFolder(t testing.TB, dir string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("img%03d.png", i)
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), testPNG(t, i+1), 0o644))
		names = append(names, name)
	}
	return names
}

// checkExtracted checks that every name has exactly the features fx gives
// its image (after float16 rounding).
func checkExtracted(t *testing.T, s *FeatureStore, src ImageSource, names []string) {
	t.Helper()
	dst := make([]float32, s.Dim())
	for _, n := range names {
		i, ok := s.Index(n)
		require.True(t, ok, "%s missing from the store", n)
		img, err := OpenImage(context.Background(), src, n)
		require.NoError(t, err)
		require.Equal(t, rounded16(fakeFeatures(img, s.Dim())), s.FeatureTo(dst, i), "%s: stored features differ from the extractor's", n)
	}
}

func TestExtractFeaturesFailuresAndResume(t *testing.T) {
	const dim = 48
	imgDir := t.TempDir()
	good := makeImageFolder(t, imgDir, 40)
	require.NoError(t, os.WriteFile(filepath.Join(imgDir, "corrupt.jpg"), []byte("\xff\xd8\xff\xe0 not really a jpeg"), 0o644))
	src, err := NewDirSource(imgDir)
	require.NoError(t, err)
	defer src.Close()
	// The names in pair-list order, with repeats and two bad images.
	names := append([]string{"corrupt.jpg"}, good[:20]...)
	names = append(names, good[5], "missing.jpg", "../escape.png")
	names = append(names, good[20:]...)

	storeDir := filepath.Join(t.TempDir(), "features")
	store, err := OpenFeatureStore(storeDir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone, CheckpointEvery: 1000})
	require.NoError(t, err)
	// Run 1 is cancelled from inside the 15th extraction.
	ctx, cancel := context.WithCancel(context.Background())
	fx := &fakeExtractor{dim: dim, onCall: func(n int64) {
		if n == 15 {
			cancel()
		}
	}}
	var progress []Progress
	rep, err := ExtractFeatures(ctx, store, src, fx, names, &ExtractOptions{Workers: 3, Progress: func(p Progress) { progress = append(progress, p) }})
	require.ErrorIs(t, err, context.Canceled, "cancelled run")
	calls1 := fx.calls.Load()
	// In-flight images finish: at most one per worker after the 15th.
	require.True(t, calls1 >= 15 && calls1 <= 17 && int64(rep.Done) == calls1 && store.Len() == rep.Done,
		"cancelled run: %d calls, %d extracted, %d stored", calls1, rep.Done, store.Len())
	require.Equal(t, 43, rep.Total, "report %+v", rep)
	require.NotEmpty(t, progress)
	require.Equal(t, "features", progress[0].Stage)
	require.EqualValues(t, 43, progress[0].Total)
	// Closing and reopening keeps what the cancelled run stored.
	require.NoError(t, store.Close())
	store, err = OpenFeatureStore(storeDir, nil)
	require.NoError(t, err)
	defer store.Close()
	require.EqualValues(t, calls1, store.Len(), "reopened store")

	// Run 2 finishes the job, extracting only what is missing.
	fx2 := &fakeExtractor{dim: dim}
	progress = nil
	rep, err = ExtractFeatures(context.Background(), store, src, fx2, names, &ExtractOptions{Workers: 2, Progress: func(p Progress) { progress = append(progress, p) }})
	require.NoError(t, err)
	require.True(t, fx2.calls.Load() == 40-calls1 && rep.Skipped == int(calls1) && rep.Done == int(40-calls1),
		"resumed run: %d calls, report %+v; want %d calls", fx2.calls.Load(), rep, 40-calls1)
	last := progress[len(progress)-1]
	require.EqualValues(t, 43, last.Done, "last progress")
	require.EqualValues(t, 43, last.Total, "last progress")
	for i := 1; i < len(progress); i++ {
		require.Equal(t, progress[i-1].Done+1, progress[i].Done, "progress not counting up by one: %+v", progress)
	}
	// The three bad images are reported in name order, with the reason.
	require.Len(t, rep.Failed, 3)
	f0, f1, f2 := rep.Failed[0], rep.Failed[1], rep.Failed[2]
	assert.Equal(t, "corrupt.jpg", f0.Name)
	assert.ErrorIs(t, f0.Err, ErrFormat)
	assert.Equal(t, "missing.jpg", f1.Name)
	assert.ErrorIs(t, f1.Err, fs.ErrNotExist)
	assert.Equal(t, "../escape.png", f2.Name)
	assert.ErrorIs(t, f2.Err, ErrInvalidName)
	require.Equal(t, 40, store.Len())
	checkExtracted(t, store, src, good)
	require.NoError(t, store.checkRecords(context.Background(), nil))

	// The pairs with a failed image are dropped.
	pairs := []Pair{{A: good[0], B: good[1], Label: 1}, {A: good[2], B: "missing.jpg"}, {A: "corrupt.jpg", B: good[3]}, {A: good[4], B: good[0]}}
	lp, dropped := store.LabeledPairs(pairs)
	i0, _ := store.Index(good[0])
	i1, _ := store.Index(good[1])
	i4, _ := store.Index(good[4])
	assert.Equal(t, []LabeledPair{{A: i0, B: i1, Label: 1}, {A: i4, B: i0}}, lp, "LabeledPairs")
	assert.Equal(t, pairs[1:3], dropped, "LabeledPairs dropped")

	// A store of another dimension or backbone is refused, as are
	// negative workers.
	_, err = ExtractFeatures(context.Background(), store, src, &fakeExtractor{dim: dim + 1}, names, nil)
	assert.Error(t, err, "extractor of another dimension accepted")
	_, err = ExtractFeatures(context.Background(), store, src, &otherBackbone{fakeExtractor{dim: dim}}, names, nil)
	assert.ErrorIs(t, err, ErrBackboneMismatch, "extractor of another backbone")
	_, err = ExtractFeatures(context.Background(), store, src, fx2, names, &ExtractOptions{Workers: -1})
	assert.ErrorContains(t, err, "negative Workers")
}

// TestExtractFeaturesAfterCrash resumes from a store whose last record was
// torn by a crash: the complete records are kept and not recomputed.
func TestExtractFeaturesAfterCrash(t *testing.T) {
	const dim = 40
	imgDir := t.TempDir()
	names := makeImageFolder(t, imgDir, 12)
	src, err := NewDirSource(imgDir)
	require.NoError(t, err)
	defer src.Close()
	storeDir := t.TempDir()
	s, err := OpenFeatureStore(storeDir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone, CheckpointEvery: 1000})
	require.NoError(t, err)
	for _, n := range names[:7] {
		img, err := OpenImage(context.Background(), src, n)
		require.NoError(t, err)
		_, err = s.Put(n, fakeFeatures(img, dim))
		require.NoError(t, err)
	}
	s.release() // crash: no index written since creation
	rec := storeRecordSize(dim)
	require.NoError(t, os.Truncate(filepath.Join(storeDir, storeDataFile), 6*rec+100))

	s, err = OpenFeatureStore(storeDir, nil)
	require.NoError(t, err)
	defer s.Close()
	fx := &fakeExtractor{dim: dim}
	rep, err := ExtractFeatures(context.Background(), s, src, fx, names, &ExtractOptions{Workers: 4})
	require.NoError(t, err)
	// 6 recomputed: the torn one and 5 new.
	assert.EqualValues(t, 6, fx.calls.Load(), "calls")
	assert.Equal(t, ExtractReport{Total: 12, Skipped: 6, Done: 6, Elapsed: rep.Elapsed}, *rep)
	checkExtracted(t, s, src, names)
}

func TestExtractFeaturesDeterministic(t *testing.T) {
	// The records are stored in the order of the names for any number of
	// workers: the stores are identical, byte for byte.
	const dim = 16
	imgDir := t.TempDir()
	names := makeImageFolder(t, imgDir, 40)
	slices.Reverse(names)
	src, err := NewDirSource(imgDir)
	require.NoError(t, err)
	defer src.Close()
	var files [][]byte
	for _, w := range []int{1, 5} {
		dir := t.TempDir()
		s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone})
		require.NoError(t, err)
		// A random delay per image makes them finish out of order.
		fx := &fakeExtractor{dim: dim, onCall: func(n int64) { time.Sleep(time.Duration(n*7919%5) * time.Millisecond) }}
		_, err = ExtractFeatures(context.Background(), s, src, fx, names, &ExtractOptions{Workers: w})
		require.NoError(t, err)
		for i, n := range names {
			require.Equal(t, n, s.Name(i), "workers=%d: record %d", w, i)
		}
		require.NoError(t, s.Close())
		data, err := os.ReadFile(filepath.Join(dir, storeDataFile))
		require.NoError(t, err)
		files = append(files, data)
	}
	assert.True(t, bytes.Equal(files[0], files[1]), "stores differ between 1 and 5 workers")
}

// TestExtractFeaturesFashion runs the pipeline on real product photos.
func TestExtractFeaturesFashion(t *testing.T) {
	const dir = "../shared/fashion/images"
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Skipf("reference photos %s absent: %v", dir, err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	names = names[:min(60, len(names))]
	src, err := NewDirSource(dir)
	require.NoError(t, err)
	defer src.Close()
	s, err := OpenFeatureStore(t.TempDir(), &StoreOptions{Dim: 64, Backbone: storeTestBackbone})
	require.NoError(t, err)
	defer s.Close()
	rep, err := ExtractFeatures(context.Background(), s, src, &fakeExtractor{dim: 64}, append(names, "no-such-photo.jpg"), nil)
	require.NoError(t, err)
	require.Equal(t, len(names), rep.Done, "report %+v", rep)
	require.Len(t, rep.Failed, 1, "report %+v", rep)
	require.Equal(t, "no-such-photo.jpg", rep.Failed[0].Name)
	checkExtracted(t, s, src, names)
	// White-background photos: some feature reaches near white (765 x 1.4).
	m := s.maxAll()
	assert.True(t, m >= 700 && m <= 765*1.4, "max feature %v", m)
}

func TestExtractFeaturesStoreFailure(t *testing.T) {
	// A store that cannot be written stops the run with its error, and no
	// goroutine is left behind (the call returns).
	imgDir := t.TempDir()
	names := makeImageFolder(t, imgDir, 60)
	src, err := NewDirSource(imgDir)
	require.NoError(t, err)
	defer src.Close()
	s, err := OpenFeatureStore(t.TempDir(), &StoreOptions{Dim: 8, Backbone: storeTestBackbone})
	require.NoError(t, err)
	defer s.release()
	var once sync.Once
	fx := &fakeExtractor{dim: 8, onCall: func(n int64) {
		if n == 3 {
			once.Do(func() { s.f.Close() }) // the disk goes away
		}
	}}
	_, err = ExtractFeatures(context.Background(), s, src, fx, names, &ExtractOptions{Workers: 2})
	require.Error(t, err, "want the store's write error")
	require.NotErrorIs(t, err, context.Canceled)
	// Records are written in order on the calling goroutine, so the
	// workers may have computed up to extractWindow×2 images ahead of the
	// first failed write; nothing more is handed out after it.
	assert.LessOrEqual(t, fx.calls.Load(), int64(3+extractWindow*2+2), "extractions after the store failed")
}

// nanExtractor returns NaN features on its second call.
type nanExtractor struct{ fakeExtractor }

func (f *nanExtractor) Features(img image.Image) ([]float32, error) {
	v, err := f.fakeExtractor.Features(img)
	if f.calls.Load() == 2 {
		v[3] = float32(math.NaN())
	}
	return v, err
}

func TestExtractFeaturesRejectedVector(t *testing.T) {
	// Features the store cannot hold fail that image only.
	imgDir := t.TempDir()
	names := makeImageFolder(t, imgDir, 6)
	src, err := NewDirSource(imgDir)
	require.NoError(t, err)
	defer src.Close()
	s, err := OpenFeatureStore(t.TempDir(), &StoreOptions{Dim: 8, Backbone: storeTestBackbone})
	require.NoError(t, err)
	defer s.Close()
	rep, err := ExtractFeatures(context.Background(), s, src, &nanExtractor{fakeExtractor{dim: 8}}, names, &ExtractOptions{Workers: 1})
	require.NoError(t, err)
	require.Equal(t, 5, rep.Done, "report %+v", rep)
	require.Len(t, rep.Failed, 1, "report %+v", rep)
	assert.Equal(t, names[1], rep.Failed[0].Name)
	assert.ErrorContains(t, rep.Failed[0].Err, "float16 range")
}

type otherBackbone struct{ fakeExtractor }

func (*otherBackbone) Backbone() Backbone {
	return Backbone{Arch: "vgg16", Preprocess: PreprocessTorch}
}

// TestExtractionLoop drives the shared loop directly: commits in the order
// of the names whatever the order results arrive in, a bounded number of
// results waiting, checkpoints every N commits and every T, failures in
// order, and a fatal commit error that stops the run.
func TestExtractionLoop(t *testing.T) {
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprintf("n%03d", i)
	}
	done := func(n string) bool { return n == "n010" || n == "n011" }

	t.Run("order and checkpoints", func(t *testing.T) {
		var committed []string
		var checkpoints []int
		var inFlight, maxAhead, next atomic.Int64 // next: position of the next commit among the names to do
		x := &extraction[string]{
			workers:  4,
			stage:    "test",
			progress: func(p Progress) { next.Store(p.Done - 2) },
			compute: func(ctx context.Context, name string) (string, error) {
				var i int
				fmt.Sscanf(name, "n%d", &i)
				inFlight.Add(1)
				defer inFlight.Add(-1)
				pos := int64(i)
				if i > 11 {
					pos -= 2 // n010 and n011 are done
				}
				ahead := pos - next.Load()
				for m := maxAhead.Load(); ahead > m && !maxAhead.CompareAndSwap(m, ahead); m = maxAhead.Load() {
				}
				// Late names finish first.
				time.Sleep(time.Duration(3-i%4) * 200 * time.Microsecond)
				if i%9 == 0 {
					return "", fmt.Errorf("image %d is bad", i)
				}
				return "v" + name, nil
			},
			commit: func(name string, v string) (failed, fatal error) {
				require.Equal(t, "v"+name, v)
				var i int
				fmt.Sscanf(name, "n%d", &i)
				if i%13 == 0 {
					return fmt.Errorf("cannot add %d", i), nil
				}
				committed = append(committed, name)
				return nil, nil
			},
			checkpoint:      func() error { checkpoints = append(checkpoints, len(committed)); return nil },
			checkpointEvery: 25,
		}
		rep, err := x.run(context.Background(), append(names, names[:5]...), done)
		require.NoError(t, err)
		var want, wantFailed []string
		for i, n := range names {
			switch {
			case done(n):
			case i%9 == 0 || i%13 == 0:
				wantFailed = append(wantFailed, n)
			default:
				want = append(want, n)
			}
		}
		assert.Equal(t, want, committed, "commit order")
		var failed []string
		for _, f := range rep.Failed {
			failed = append(failed, f.Name)
		}
		assert.Equal(t, wantFailed, failed, "failures in the order of the names")
		assert.Equal(t, ExtractReport{Total: 100, Skipped: 2, Done: len(want), Failed: rep.Failed, Elapsed: rep.Elapsed,
			FailedBy: map[string]int{"other": len(wantFailed)}}, *rep)
		// Every 25 successful commits, then the rest at the end.
		assert.Equal(t, []int{25, 50, 75, len(want)}, checkpoints)
		assert.Less(t, maxAhead.Load(), int64(extractWindow*4), "workers ran too far ahead")
		assert.Zero(t, inFlight.Load())
	})

	t.Run("checkpoint interval", func(t *testing.T) {
		n := 0
		x := &extraction[int]{
			workers:            2,
			compute:            func(context.Context, string) (int, error) { time.Sleep(2 * time.Millisecond); return 1, nil },
			commit:             func(string, int) (error, error) { return nil, nil },
			checkpoint:         func() error { n++; return nil },
			checkpointInterval: 15 * time.Millisecond,
		}
		_, err := x.run(context.Background(), names[:40], done)
		require.NoError(t, err)
		// 38 images, 2 at a time, 2 ms each: about 40 ms, so at least
		// one checkpoint on the way and one at the end.
		assert.GreaterOrEqual(t, n, 2)
		assert.Less(t, n, 38)
	})

	t.Run("fatal", func(t *testing.T) {
		var computed atomic.Int64
		boom := errors.New("disk full")
		ckErr := errors.New("checkpoint after the failure")
		commits, checkpoints := 0, 0
		x := &extraction[int]{
			workers: 3,
			compute: func(context.Context, string) (int, error) { computed.Add(1); return 1, nil },
			commit: func(string, int) (error, error) {
				if commits++; commits == 7 {
					return nil, boom
				}
				return nil, nil
			},
			checkpoint: func() error { checkpoints++; return ckErr },
		}
		rep, err := x.run(context.Background(), names, done)
		require.ErrorIs(t, err, boom)
		assert.Equal(t, 6, rep.Done)
		assert.Equal(t, 1, checkpoints, "what was committed is checkpointed at the end")
		assert.LessOrEqual(t, computed.Load(), int64(7+extractWindow*3), "images handed out after the failure")
	})

	t.Run("nothing to do", func(t *testing.T) {
		x := &extraction[int]{workers: 3, compute: func(context.Context, string) (int, error) { panic("computed") }}
		rep, err := x.run(context.Background(), []string{"n010", "n011", "n010"}, done)
		require.NoError(t, err)
		assert.Equal(t, ExtractReport{Total: 2, Skipped: 2, Elapsed: rep.Elapsed}, *rep)
	})
}

// webSource serves names starting with "web/" from web, the others from
// dir.
type webSource struct{ dir, web ImageSource }

func (s webSource) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if n, ok := strings.CutPrefix(name, "web/"); ok {
		return s.web.Open(ctx, n)
	}
	return s.dir.Open(ctx, name)
}

// failingExtractor fails for images one pixel wide.
type failingExtractor struct{ fakeExtractor }

func (f *failingExtractor) Features(img image.Image) ([]float32, error) {
	if img.Bounds().Dx() == 1 {
		return nil, errors.New("extractor failure")
	}
	return f.fakeExtractor.Features(img)
}

func TestExtractReportFailedBy(t *testing.T) {
	dir := t.TempDir()
	names := makeImageFolder(t, dir, 3)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.png"), []byte("<html></html>"), 0o644))
	// A PNG whose header declares 100,000 × 100,000 pixels.
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, image.NewGray(image.Rect(0, 0, 1, 1))))
	huge := b.Bytes()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "one.png"), huge, 0o644))
	huge = slices.Clone(huge)
	binary.BigEndian.PutUint32(huge[16:], 100000)
	binary.BigEndian.PutUint32(huge[20:], 100000)
	binary.BigEndian.PutUint32(huge[29:], crc32.ChecksumIEEE(huge[12:29]))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "huge.png"), huge, 0o644))
	dsrc, err := NewDirSource(dir)
	require.NoError(t, err)
	defer dsrc.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	usrc, err := NewURLSource("http://"+addr+"/", fastURLOptions())
	require.NoError(t, err)
	src := webSource{dsrc, usrc}

	all := append(names, "missing.png", "gone.jpg", "../up.png", "bad.png", "huge.png", "one.png", "web/a.jpg", "web/b.jpg")
	var c Catalog
	rep, err := c.AddImages(context.Background(), src, all, &failingExtractor{fakeExtractor{dim: 4}}, nil, nil)
	require.NoError(t, err)
	assert.Equal(t, 3, rep.Done)
	assert.Equal(t, map[string]int{"not found": 2, "invalid name": 1, "decode": 1, "too large": 1, "other": 1, "network": 2}, rep.FailedBy)
	assert.Len(t, rep.Failed, 8)

	rep, err = c.AddImages(context.Background(), src, names, &fakeExtractor{dim: 4}, nil, nil)
	require.NoError(t, err)
	assert.Nil(t, rep.FailedBy, "nothing failed")
}
