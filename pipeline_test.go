package style

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// studyImages is an in-memory image source that counts the opens of each
// name.
type studyImages struct {
	data  map[string][]byte
	mu    sync.Mutex
	opens map[string]int
}

func (s *studyImages) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	s.mu.Lock()
	s.opens[name]++
	s.mu.Unlock()
	b, ok := s.data[name]
	if !ok {
		return nil, fmt.Errorf("studyImages: %s: %w", name, fs.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// studyExtractor reads a hidden style (0..3) from an image's red channel and
// returns studyDim features: the style as a one-hot code in the first four,
// and large per-image noise (from the green and blue channels) in the rest,
// so that an untrained head sees mostly noise and a trained one can learn to
// ignore it. It counts its calls and can cancel a context after a number of
// them.
type studyExtractor struct {
	calls    atomic.Int64
	cancelAt int64
	cancel   context.CancelFunc
}

const studyDim = 24

func (x *studyExtractor) Features(img image.Image) ([]float32, error) {
	if n := x.calls.Add(1); x.cancel != nil && n == x.cancelAt {
		x.cancel()
	}
	r, g, b, _ := img.At(0, 0).RGBA()
	f := make([]float32, studyDim)
	f[(r>>8)/60] = 3
	rng := rand.New(rand.NewPCG(uint64(g), uint64(b)))
	for i := 4; i < studyDim; i++ {
		f[i] = 3 * rng.Float32()
	}
	return f, nil
}

func (x *studyExtractor) FeatureLen() int    { return studyDim }
func (x *studyExtractor) Backbone() Backbone { return Backbone{Name: "synthetic", Preprocess: "none"} }

// studyData returns n images of 4 hidden styles and m pairs between them,
// compatible when the styles agree; every tenth pair names a missing image
// "ghost.png".
func studyData(t *testing.T, n, m int) (*studyImages, []Pair) {
	t.Helper()
	src := &studyImages{data: map[string][]byte{}, opens: map[string]int{}}
	for i := range n {
		img := image.NewNRGBA(image.Rect(0, 0, 2, 2))
		for p := 0; p < 4; p++ {
			img.Set(p%2, p/2, color.NRGBA{uint8(60*(i%4) + 5), uint8(i), uint8(i >> 8), 255})
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		src.data[fmt.Sprintf("img%03d.png", i)] = buf.Bytes()
	}
	rng := rand.New(rand.NewPCG(7, 7))
	pairs := make([]Pair, m)
	for k := range pairs {
		a, b := rng.IntN(n), rng.IntN(n)
		if k%3 == 0 { // more compatible pairs than chance gives
			b = (a + 4*rng.IntN(n/4)) % n
		}
		p := Pair{A: fmt.Sprintf("img%03d.png", a), B: fmt.Sprintf("img%03d.png", b), Line: k + 1}
		if a%4 == b%4 {
			p.Label = 1
		}
		if k%10 == 9 {
			p.B = "ghost.png"
		}
		pairs[k] = p
	}
	return src, pairs
}

func newTestStudy(t *testing.T, src ImageSource, pairs []Pair, fx FeatureExtractor) *Study {
	dir := t.TempDir()
	return &Study{
		Pairs: pairs, Images: src, Extractor: fx,
		StoreDir: filepath.Join(dir, "features"), OutDir: filepath.Join(dir, "out"),
		Seed: 5, HeadOut: 8, Workers: 2,
		Trainer: &Trainer{Epochs: 40, Patience: 8, Seed: 5, Workers: 2, BatchSize: 32},
	}
}

// TestStudyRun runs a whole study on synthetic data whose answer is known:
// the trained head must separate the styles far better than the untrained
// one, the missing image must be reported with its pairs dropped, and the
// saved head, charts and report must agree with the result.
func TestStudyRun(t *testing.T) {
	src, pairs := studyData(t, 64, 400)
	fx := &studyExtractor{}
	s := newTestStudy(t, src, pairs, fx)
	var stages sync.Map
	s.Progress = func(p Progress) { stages.Store(p.Stage, true) }
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	// The hidden style is a clean signal under the noise. Everything is
	// seeded, so the run is deterministic: the untrained head reaches about
	// 0.80 here (random projections keep some of the style signal) and the
	// trained one 1.00; the thresholds sit between them with a margin.
	t.Logf("test AUC %.3f trained, %.3f untrained, %d epochs", res.ROC.AUC(), res.UntrainedROC.AUC(), len(res.History.Loss))
	if res.ROC.AUC() < 0.95 || res.ROC.AUC() < res.UntrainedROC.AUC()+0.15 {
		t.Errorf("test AUC %.3f after training, %.3f before: want >= 0.95 and a clear gain", res.ROC.AUC(), res.UntrainedROC.AUC())
	}
	if n := len(res.History.Loss); n < 2 || res.History.Loss[n-1] >= res.History.Loss[0] {
		t.Errorf("training loss did not fall: %v", res.History.Loss)
	}
	for _, st := range []string{"features", "train"} {
		if _, ok := stages.Load(st); !ok {
			t.Errorf("no progress reported for stage %q", st)
		}
	}

	// Failures: the ghost image, and exactly the pairs naming it.
	if f := res.Extraction.Failed; len(f) != 1 || f[0].Name != "ghost.png" || !errors.Is(f[0].Err, fs.ErrNotExist) {
		t.Errorf("failed images %v, want ghost.png not found", f)
	}
	if len(res.Dropped) != len(pairs)/10 {
		t.Errorf("%d pairs dropped, want %d", len(res.Dropped), len(pairs)/10)
	}
	for _, p := range res.Dropped {
		if p.B != "ghost.png" {
			t.Errorf("dropped pair %+v does not name the missing image", p)
		}
	}
	if got := int64(res.Extraction.Extracted); got != fx.calls.Load() || got != int64(res.Extraction.Total-1) {
		t.Errorf("extracted %d images with %d extractor calls of %d distinct names", got, fx.calls.Load(), res.Extraction.Total)
	}
	usable := len(pairs) - len(res.Dropped)
	if len(res.Train)+len(res.Val)+len(res.Test) != usable || len(res.Test) != len(res.Distances) || len(res.Test) != len(res.UntrainedDistances) {
		t.Errorf("split %d/%d/%d of %d usable pairs, %d test distances", len(res.Train), len(res.Val), len(res.Test), usable, len(res.Distances))
	}

	// The cutoff's test rates, recounted here.
	var tp, fp, pos, neg float64
	for i, p := range res.Test {
		in := res.Distances[i] <= res.Head.Cutoff
		if p.Label == 1 {
			pos++
			if in {
				tp++
			}
		} else {
			neg++
			if in {
				fp++
			}
		}
	}
	if !res.CutoffChosen || res.Cutoff.Threshold != res.Head.Cutoff || res.Cutoff.TPR != tp/pos || res.Cutoff.FPR != fp/neg {
		t.Errorf("cutoff %+v (chosen %v), head cutoff %g; recounted TPR %g FPR %g", res.Cutoff, res.CutoffChosen, res.Head.Cutoff, tp/pos, fp/neg)
	}
	if len(res.Table) != 3 || res.Table[0].FPR > 0.05 || res.Table[2].FPR > 0.20 {
		t.Errorf("cutoff table %+v", res.Table)
	}

	// The scale is the largest stored feature of the training images.
	store, err := OpenFeatureStore(s.StoreDir, &StoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var idx []int
	for _, p := range res.Train {
		idx = append(idx, p.A, p.B)
	}
	if want := float64(store.MaxOf(idx)); res.Scale != want {
		t.Errorf("scale %g, want the training maximum %g", res.Scale, want)
	}
	store.Close()

	// The saved head is the result's head.
	h, err := LoadHead(res.Files[StudyHeadFile])
	if err != nil {
		t.Fatal(err)
	}
	if h.Cutoff != res.Head.Cutoff || h.Scale != res.Scale || h.Backbone != fx.Backbone() || h.In() != studyDim || h.Out() != 8 {
		t.Errorf("saved head: cutoff %g scale %g backbone %+v %d->%d; result cutoff %g scale %g",
			h.Cutoff, h.Scale, h.Backbone, h.In(), h.Out(), res.Head.Cutoff, res.Scale)
	}
	for _, name := range []string{StudyLearningCurvesFile, StudyROCFile, StudyDensitiesFile, StudyFailedImagesFile} {
		if _, err := os.Stat(res.Files[name]); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	report, err := os.ReadFile(res.Files[StudyReportFile])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("| trained | %.4f |", res.ROC.AUC()),
		fmt.Sprintf("| untrained (random weights) | %.4f |", res.UntrainedROC.AUC()),
		fmt.Sprintf("at most **%.4f**", res.Head.Cutoff),
		fmt.Sprintf("%d dropped", len(res.Dropped)),
		"`ghost.png`",
		"![ROC curve](roc.png)",
	} {
		if !strings.Contains(string(report), want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
}

// TestStudyResume interrupts a study during the feature extraction and runs
// it again: no image is computed twice, and the result is identical to that
// of an uninterrupted run.
func TestStudyResume(t *testing.T) {
	src, pairs := studyData(t, 64, 300)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx := &studyExtractor{cancelAt: 10, cancel: cancel}
	s := newTestStudy(t, src, pairs, fx)
	if _, err := s.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	n1 := fx.calls.Load()
	if _, err := os.Stat(filepath.Join(s.OutDir, StudyHeadFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("interrupted run left a head file (%v)", err)
	}

	fx2 := &studyExtractor{}
	s.Extractor = fx2
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n2 := fx2.calls.Load()
	distinct := int64(res.Extraction.Total - 1) // all but the ghost
	if n1 < 10 || n1+n2 != distinct || int64(res.Extraction.Skipped) != n1 || int64(res.Extraction.Extracted) != n2 {
		t.Errorf("runs computed %d + %d features of %d images; report: %d skipped, %d extracted",
			n1, n2, distinct, res.Extraction.Skipped, res.Extraction.Extracted)
	}

	clean := newTestStudy(t, src, pairs, &studyExtractor{})
	want, err := clean.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Store positions differ between the runs, features and pair order do
	// not: training and evaluation must give bit-identical distances.
	for i := range want.Distances {
		if res.Distances[i] != want.Distances[i] {
			t.Fatalf("distance %d: %v after resuming, %v uninterrupted", i, res.Distances[i], want.Distances[i])
		}
	}
}

// TestStudyPrefetch reads every image once before extracting: the missing
// image is tried once only and reported.
func TestStudyPrefetch(t *testing.T) {
	src, pairs := studyData(t, 32, 120)
	s := newTestStudy(t, src, pairs, &studyExtractor{})
	s.Prefetch = true
	s.Trainer = &Trainer{Epochs: 2}
	var downloads atomic.Int64
	s.Progress = func(p Progress) {
		if p.Stage == "download" {
			downloads.Add(1)
		}
	}
	res, err := s.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if src.opens["ghost.png"] != 1 || src.opens["img000.png"] != 2 {
		t.Errorf("opens: ghost.png %d, img000.png %d; want 1 and 2 (prefetch, then extraction)", src.opens["ghost.png"], src.opens["img000.png"])
	}
	if len(res.Extraction.Failed) != 1 || res.Extraction.Failed[0].Name != "ghost.png" || res.Extraction.Total != 33 {
		t.Errorf("report: %d distinct, failed %v; want 33 and ghost.png", res.Extraction.Total, res.Extraction.Failed)
	}
	if downloads.Load() != 33 {
		t.Errorf("%d download progress reports, want one per distinct image (33)", downloads.Load())
	}
}

// TestStudyErrors checks the configuration errors.
func TestStudyErrors(t *testing.T) {
	src, pairs := studyData(t, 16, 40)
	for _, tc := range []struct {
		name   string
		change func(s *Study)
		want   string
	}{
		{"no images", func(s *Study) { s.Images = nil }, "no Images"},
		{"no extractor", func(s *Study) { s.Extractor = nil }, "no Extractor"},
		{"no store", func(s *Study) { s.StoreDir = "" }, "no StoreDir"},
		{"no output", func(s *Study) { s.OutDir = "" }, "no OutDir"},
		{"no pairs", func(s *Study) { s.Pairs = nil }, "no pairs"},
		{"too few pairs", func(s *Study) { s.Limit = 3 }, "needs both labels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStudy(t, src, pairs, &studyExtractor{})
			tc.change(s)
			_, err := s.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error saying %q", err, tc.want)
			}
		})
	}

	// A store made with another backbone is refused.
	s := newTestStudy(t, src, pairs, &studyExtractor{})
	st, err := OpenFeatureStore(s.StoreDir, &StoreOptions{Dim: studyDim, Backbone: Backbone{Name: "other"}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := s.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "feature store") {
		t.Errorf("store of another backbone: %v", err)
	}
}
