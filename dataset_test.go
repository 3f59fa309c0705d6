package style

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
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
func makeImageFolder(t *testing.T, dir string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("img%03d.png", i)
		if err := os.WriteFile(filepath.Join(dir, name), testPNG(t, i+1), 0o644); err != nil {
			t.Fatal(err)
		}
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
		if !ok {
			t.Fatalf("%s missing from the store", n)
		}
		img, err := OpenImage(context.Background(), src, n)
		if err != nil {
			t.Fatal(err)
		}
		want := rounded16(fakeFeatures(img, s.Dim()))
		if got := s.FeatureTo(dst, i); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: stored features differ from the extractor's", n)
		}
	}
}

func TestExtractFeaturesFailuresAndResume(t *testing.T) {
	const dim = 48
	imgDir := t.TempDir()
	good := makeImageFolder(t, imgDir, 40)
	if err := os.WriteFile(filepath.Join(imgDir, "corrupt.jpg"), []byte("\xff\xd8\xff\xe0 not really a jpeg"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := NewDirSource(imgDir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// The names in pair-list order, with repeats and two bad images.
	names := append([]string{"corrupt.jpg"}, good[:20]...)
	names = append(names, good[5], "missing.jpg", "../escape.png")
	names = append(names, good[20:]...)

	storeDir := filepath.Join(t.TempDir(), "features")
	store, err := OpenFeatureStore(storeDir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone, CheckpointEvery: 1000})
	if err != nil {
		t.Fatal(err)
	}
	// Run 1 is cancelled from inside the 15th extraction.
	ctx, cancel := context.WithCancel(context.Background())
	fx := &fakeExtractor{dim: dim, onCall: func(n int64) {
		if n == 15 {
			cancel()
		}
	}}
	var progress []Progress
	rep, err := ExtractFeatures(ctx, store, src, fx, names, &ExtractOptions{Workers: 3, Progress: func(p Progress) { progress = append(progress, p) }})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled run: got %v, want context.Canceled", err)
	}
	calls1 := fx.calls.Load()
	// In-flight images finish: at most one per worker after the 15th.
	if calls1 < 15 || calls1 > 17 || int64(rep.Extracted) != calls1 || store.Len() != rep.Extracted {
		t.Fatalf("cancelled run: %d calls, %d extracted, %d stored", calls1, rep.Extracted, store.Len())
	}
	if rep.Total != 43 || len(progress) == 0 || progress[0].Stage != "features" || progress[0].Total != 43 {
		t.Fatalf("report %+v, progress %+v", rep, progress)
	}
	// Closing and reopening keeps what the cancelled run stored.
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store, err = OpenFeatureStore(storeDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if int64(store.Len()) != calls1 {
		t.Fatalf("reopened store holds %d, want %d", store.Len(), calls1)
	}

	// Run 2 finishes the job, extracting only what is missing.
	fx2 := &fakeExtractor{dim: dim}
	progress = nil
	rep, err = ExtractFeatures(context.Background(), store, src, fx2, names, &ExtractOptions{Workers: 2, Progress: func(p Progress) { progress = append(progress, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if fx2.calls.Load() != 40-calls1 || rep.Skipped != int(calls1) || rep.Extracted != int(40-calls1) {
		t.Fatalf("resumed run: %d calls, report %+v; want %d calls", fx2.calls.Load(), rep, 40-calls1)
	}
	last := progress[len(progress)-1]
	if last.Done != 43 || last.Total != 43 {
		t.Fatalf("last progress %+v, want 43 of 43", last)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i].Done != progress[i-1].Done+1 {
			t.Fatalf("progress not counting up by one: %+v", progress)
		}
	}
	// The three bad images are reported in name order, with the reason.
	if len(rep.Failed) != 3 {
		t.Fatalf("failures %v, want 3", rep.Failed)
	}
	f0, f1, f2 := rep.Failed[0], rep.Failed[1], rep.Failed[2]
	if f0.Name != "corrupt.jpg" || !errors.Is(f0.Err, ErrFormat) ||
		f1.Name != "missing.jpg" || !errors.Is(f1.Err, fs.ErrNotExist) ||
		f2.Name != "../escape.png" || !errors.Is(f2.Err, ErrInvalidName) {
		t.Fatalf("failures: %v", rep.Failed)
	}
	if store.Len() != 40 {
		t.Fatalf("store holds %d, want 40", store.Len())
	}
	checkExtracted(t, store, src, good)
	if err := store.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The pairs with a failed image are dropped.
	pairs := []Pair{{A: good[0], B: good[1], Label: 1}, {A: good[2], B: "missing.jpg"}, {A: "corrupt.jpg", B: good[3]}, {A: good[4], B: good[0]}}
	lp, dropped := store.LabeledPairs(pairs)
	i0, _ := store.Index(good[0])
	i1, _ := store.Index(good[1])
	i4, _ := store.Index(good[4])
	if !reflect.DeepEqual(lp, []LabeledPair{{A: i0, B: i1, Label: 1}, {A: i4, B: i0}}) || !reflect.DeepEqual(dropped, pairs[1:3]) {
		t.Fatalf("LabeledPairs: %v, dropped %v", lp, dropped)
	}

	// A store of another dimension or backbone is refused.
	if _, err := ExtractFeatures(context.Background(), store, src, &fakeExtractor{dim: dim + 1}, names, nil); err == nil {
		t.Fatal("extractor of another dimension accepted")
	}
	if _, err := ExtractFeatures(context.Background(), store, src, &otherBackbone{fakeExtractor{dim: dim}}, names, nil); err == nil {
		t.Fatal("extractor of another backbone accepted")
	}
}

// TestExtractFeaturesAfterCrash resumes from a store whose last record was
// torn by a crash: the complete records are kept and not recomputed.
func TestExtractFeaturesAfterCrash(t *testing.T) {
	const dim = 40
	imgDir := t.TempDir()
	names := makeImageFolder(t, imgDir, 12)
	src, err := NewDirSource(imgDir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	storeDir := t.TempDir()
	s, err := OpenFeatureStore(storeDir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone, CheckpointEvery: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names[:7] {
		img, err := OpenImage(context.Background(), src, n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Put(n, fakeFeatures(img, dim)); err != nil {
			t.Fatal(err)
		}
	}
	s.release() // crash: no index written since creation
	rec := storeRecordSize(dim)
	if err := os.Truncate(filepath.Join(storeDir, storeDataFile), 6*rec+100); err != nil {
		t.Fatal(err)
	}

	s, err = OpenFeatureStore(storeDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fx := &fakeExtractor{dim: dim}
	rep, err := ExtractFeatures(context.Background(), s, src, fx, names, &ExtractOptions{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if fx.calls.Load() != 6 || rep.Skipped != 6 || rep.Extracted != 6 || len(rep.Failed) != 0 {
		t.Fatalf("%d calls, report %+v; want 6 recomputed (the torn one and 5 new)", fx.calls.Load(), rep)
	}
	checkExtracted(t, s, src, names)
}

func TestExtractFeaturesDeterministicValues(t *testing.T) {
	// The values stored do not depend on the number of workers, only the
	// record order does.
	const dim = 16
	imgDir := t.TempDir()
	names := makeImageFolder(t, imgDir, 16)
	src, _ := NewDirSource(imgDir)
	defer src.Close()
	var got [][]float32
	for _, w := range []int{1, 5} {
		s, err := OpenFeatureStore(t.TempDir(), &StoreOptions{Dim: dim, Backbone: storeTestBackbone})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ExtractFeatures(context.Background(), s, src, &fakeExtractor{dim: dim}, names, &ExtractOptions{Workers: w}); err != nil {
			t.Fatal(err)
		}
		var all []float32
		for _, n := range names {
			i, _ := s.Index(n)
			all = append(all, s.FeatureTo(make([]float32, dim), i)...)
		}
		got = append(got, all)
		s.Close()
	}
	if !reflect.DeepEqual(got[0], got[1]) {
		t.Fatal("features differ between 1 and 5 workers")
	}
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
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	s, err := OpenFeatureStore(t.TempDir(), &StoreOptions{Dim: 64, Backbone: storeTestBackbone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := ExtractFeatures(context.Background(), s, src, &fakeExtractor{dim: 64}, append(names, "no-such-photo.jpg"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Extracted != len(names) || len(rep.Failed) != 1 || rep.Failed[0].Name != "no-such-photo.jpg" {
		t.Fatalf("report %+v", rep)
	}
	checkExtracted(t, s, src, names)
	// White-background photos: some feature reaches near white (765 x 1.4).
	if m := s.maxAll(); m < 700 || m > 765*1.4 {
		t.Fatalf("max feature %v", m)
	}
}

func TestExtractFeaturesStoreFailure(t *testing.T) {
	// A store that cannot be written stops the run with its error, and no
	// goroutine is left behind (the call returns).
	imgDir := t.TempDir()
	names := makeImageFolder(t, imgDir, 8)
	src, _ := NewDirSource(imgDir)
	defer src.Close()
	s, err := OpenFeatureStore(t.TempDir(), &StoreOptions{Dim: 8, Backbone: storeTestBackbone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.release()
	var once sync.Once
	fx := &fakeExtractor{dim: 8, onCall: func(n int64) {
		if n == 3 {
			once.Do(func() { s.f.Close() }) // the disk goes away
		}
	}}
	_, err = ExtractFeatures(context.Background(), s, src, fx, names, &ExtractOptions{Workers: 2})
	if err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want the store's write error", err)
	}
	if n := fx.calls.Load(); n > 5 {
		t.Fatalf("%d extractions after the store failed", n)
	}
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
	src, _ := NewDirSource(imgDir)
	defer src.Close()
	s, err := OpenFeatureStore(t.TempDir(), &StoreOptions{Dim: 8, Backbone: storeTestBackbone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := ExtractFeatures(context.Background(), s, src, &nanExtractor{fakeExtractor{dim: 8}}, names, &ExtractOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Extracted != 5 || len(rep.Failed) != 1 || rep.Failed[0].Name != names[1] || !strings.Contains(rep.Failed[0].Err.Error(), "float16 range") {
		t.Fatalf("report %+v", rep)
	}
}

type otherBackbone struct{ fakeExtractor }

func (*otherBackbone) Backbone() Backbone {
	return Backbone{Arch: "vgg16", Preprocess: PreprocessTorch}
}
