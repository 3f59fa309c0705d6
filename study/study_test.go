package study

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
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

func (x *studyExtractor) FeatureLen() int { return studyDim }
func (x *studyExtractor) Backbone() style.Backbone {
	return style.Backbone{Arch: "synthetic", Preprocess: "none"}
}

// studyData returns n images of 4 hidden styles and m pairs between them,
// compatible when the styles agree; every tenth pair names a missing image
// "ghost.png".
func studyData(t *testing.T, n, m int) (*studyImages, []style.Pair) {
	t.Helper()
	src := &studyImages{data: map[string][]byte{}, opens: map[string]int{}}
	for i := range n {
		img := image.NewNRGBA(image.Rect(0, 0, 2, 2))
		for p := 0; p < 4; p++ {
			img.Set(p%2, p/2, color.NRGBA{uint8(60*(i%4) + 5), uint8(i), uint8(i >> 8), 255})
		}
		var buf bytes.Buffer
		require.NoError(t, png.Encode(&buf, img))
		src.data[fmt.Sprintf("img%03d.png", i)] = buf.Bytes()
	}
	rng := rand.New(rand.NewPCG(7, 7))
	pairs := make([]style.Pair, m)
	for k := range pairs {
		a, b := rng.IntN(n), rng.IntN(n)
		if k%3 == 0 { // more compatible pairs than chance gives
			b = (a + 4*rng.IntN(n/4)) % n
		}
		p := style.Pair{A: fmt.Sprintf("img%03d.png", a), B: fmt.Sprintf("img%03d.png", b), Line: k + 1}
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

func newTestConfig(t *testing.T, src style.ImageSource, pairs []style.Pair, fx style.FeatureExtractor) *Config {
	dir := t.TempDir()
	return &Config{
		Pairs: pairs, Images: src, Extractor: fx,
		StoreDir: filepath.Join(dir, "features"), OutDir: filepath.Join(dir, "out"),
		Seed: 5, HeadOut: 8, Workers: 2,
		Trainer: &style.Trainer{Epochs: 40, Patience: 8, Seed: 5, Workers: 2, BatchSize: 32},
	}
}

// TestRun runs a whole study on synthetic data whose answer is known: the
// trained head must separate the styles far better than the untrained one,
// the missing image must be reported with its pairs dropped, and the saved
// head, charts and report must agree with the result.
func TestRun(t *testing.T) {
	src, pairs := studyData(t, 64, 400)
	fx := &studyExtractor{}
	cfg := newTestConfig(t, src, pairs, fx)
	var stages sync.Map
	cfg.Progress = func(p style.Progress) { stages.Store(p.Stage, true) }
	trainer := *cfg.Trainer
	before := *cfg
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	// Run does not modify the configuration, nor the Trainer it points to
	// (whose nil Progress it fills in for the run).
	assert.Equal(t, fmt.Sprintf("%+v", before), fmt.Sprintf("%+v", *cfg), "Run modified its Config")
	assert.Nil(t, cfg.Trainer.Progress, "Run modified the caller's Trainer")
	assert.Equal(t, trainer.Epochs, cfg.Trainer.Epochs)

	// The hidden style is a clean signal under the noise. Everything is
	// seeded, so the run is deterministic: the untrained head reaches about
	// 0.80 here (random projections keep some of the style signal) and the
	// trained one 1.00; the thresholds sit between them with a margin.
	t.Logf("test AUC %.3f trained, %.3f untrained, %d epochs", res.ROC.AUC(), res.UntrainedROC.AUC(), len(res.History.Loss))
	if res.ROC.AUC() < 0.95 || res.ROC.AUC() < res.UntrainedROC.AUC()+0.15 {
		t.Errorf("test AUC %.3f after training, %.3f before: want >= 0.95 and a clear gain", res.ROC.AUC(), res.UntrainedROC.AUC())
	}
	if n := len(res.History.Loss); assert.GreaterOrEqual(t, n, 2, "epochs") {
		assert.Less(t, res.History.Loss[n-1], res.History.Loss[0], "training loss did not fall: %v", res.History.Loss)
	}
	for _, st := range []string{"features", "train"} {
		_, ok := stages.Load(st)
		assert.True(t, ok, "no progress reported for stage %q", st)
	}

	// Failures: the ghost image, and exactly the pairs naming it.
	if f := res.Extraction.Failed; assert.Len(t, f, 1, "failed images") {
		assert.Equal(t, "ghost.png", f[0].Name)
		assert.ErrorIs(t, f[0].Err, fs.ErrNotExist)
	}
	assert.Len(t, res.Dropped, len(pairs)/10, "pairs dropped")
	for _, p := range res.Dropped {
		assert.Equal(t, "ghost.png", p.B, "dropped pair %+v does not name the missing image", p)
	}
	got := int64(res.Extraction.Done)
	assert.Equal(t, fx.calls.Load(), got, "extracted images and extractor calls")
	assert.Equal(t, int64(res.Extraction.Total-1), got, "extracted images and distinct names but the ghost")
	usable := len(pairs) - len(res.Dropped)
	assert.Equal(t, usable, len(res.Train)+len(res.Val)+len(res.Test), "split of the usable pairs")
	assert.Len(t, res.Distances, len(res.Test))
	assert.Len(t, res.UntrainedDistances, len(res.Test))

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
	assert.True(t, res.CutoffChosen)
	assert.Equal(t, res.Head.Cutoff, res.Cutoff.Threshold)
	assert.Equal(t, tp/pos, res.Cutoff.TPR, "recounted TPR")
	assert.Equal(t, fp/neg, res.Cutoff.FPR, "recounted FPR")
	if assert.Len(t, res.Table, 3, "cutoff table") {
		assert.LessOrEqual(t, res.Table[0].FPR, 0.05)
		assert.LessOrEqual(t, res.Table[2].FPR, 0.20)
	}

	// The scale is the largest stored feature of the training images.
	store, err := style.OpenFeatureStore(cfg.StoreDir, &style.StoreOptions{ReadOnly: true})
	require.NoError(t, err)
	var want float32
	buf := make([]float32, store.Dim())
	for _, p := range res.Train {
		want = max(want, slices.Max(store.FeatureTo(buf, p.A)), slices.Max(store.FeatureTo(buf, p.B)))
	}
	assert.Equal(t, float64(want), res.Scale, "scale: want the training maximum")
	store.Close()

	// The saved head is the result's head.
	h, err := style.LoadHead(res.Files[HeadFile])
	require.NoError(t, err)
	assert.Equal(t, res.Head.Cutoff, h.Cutoff)
	assert.Equal(t, res.Scale, h.Scale)
	assert.Equal(t, fx.Backbone(), h.Backbone)
	assert.Equal(t, studyDim, h.Dense.In)
	assert.Equal(t, 8, h.Dense.Out)
	for _, name := range []string{LearningCurvesFile, ROCFile, DensitiesFile, FailedImagesFile} {
		assert.FileExists(t, res.Files[name])
	}
	report, err := os.ReadFile(res.Files[ReportFile])
	require.NoError(t, err)
	for _, want := range []string{
		fmt.Sprintf("| trained | %.4f |", res.ROC.AUC()),
		fmt.Sprintf("| untrained (random weights) | %.4f |", res.UntrainedROC.AUC()),
		fmt.Sprintf("at most **%.4f**", res.Head.Cutoff),
		fmt.Sprintf("%d dropped", len(res.Dropped)),
		"`ghost.png`",
		"![ROC curve](roc.png)",
	} {
		assert.Contains(t, string(report), want)
	}
}

// TestRunHiddenLayers runs the study with a hidden layer in the head: the
// saved head and the report record the shape, and the head still learns
// the synthetic style.
func TestRunHiddenLayers(t *testing.T) {
	src, pairs := studyData(t, 64, 400)
	cfg := newTestConfig(t, src, pairs, &studyExtractor{})
	cfg.HeadHidden = []int{16}
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	t.Logf("test AUC %.3f trained, %.3f untrained", res.ROC.AUC(), res.UntrainedROC.AUC())
	assert.Greater(t, res.ROC.AUC(), 0.95, "test AUC of the head with a hidden layer")
	h, err := style.LoadHead(res.Files[HeadFile])
	require.NoError(t, err)
	require.Len(t, h.Hidden, 1)
	assert.Equal(t, [3]int{studyDim, 16, 8}, [3]int{h.Hidden[0].In, h.Dense.In, h.Dense.Out})
	report, err := os.ReadFile(res.Files[ReportFile])
	require.NoError(t, err)
	assert.Contains(t, string(report), fmt.Sprintf("A siamese head (%d features -> 16 -> 8, ReLU)", studyDim))
}

// TestRunGrid runs the study with a small grid: the chosen setting is the
// head's, the report has the grid table, and the cross-validation journal
// is in OutDir/cv.
func TestRunGrid(t *testing.T) {
	src, pairs := studyData(t, 64, 400)
	cfg := newTestConfig(t, src, pairs, &studyExtractor{})
	cfg.Trainer.Epochs, cfg.Trainer.Patience = 10, 3
	cfg.Grid = &Grid{Margins: []float64{0.5, 1}, Dims: []int{8}, LRs: []float64{1e-3}}
	cfg.CVFolds = 3
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	require.NotNil(t, res.CV)
	require.Len(t, res.CV.Results, 2)
	best := res.CV.Results[res.CV.Best]
	t.Logf("chosen %s, CV AUC %.4f, test AUC %.4f", best.Setting, best.Mean, res.ROC.AUC())
	assert.Equal(t, best.Setting.Margin, res.Head.Margin)
	assert.Equal(t, best.Setting.Dim, res.Head.Dense.Out)
	assert.FileExists(t, filepath.Join(cfg.OutDir, "cv", "cv.jsonl"))
	report, err := os.ReadFile(res.Files[ReportFile])
	require.NoError(t, err)
	for _, r := range res.CV.Results {
		assert.Contains(t, string(report), r.Setting.String())
		assert.Contains(t, string(report), fmt.Sprintf("| %.4f | %.4f |", r.Mean, r.Std))
	}
	assert.Contains(t, string(report), "**(chosen)**")

	// The chosen setting is refit on training and validation pairs
	// together, without early stopping, for the median of the epochs the
	// folds kept, with the feature scale of those pairs.
	require.Len(t, best.Epochs, 3)
	for _, e := range best.Epochs {
		assert.True(t, e >= 1 && e <= cfg.Trainer.Epochs, "fold epochs %v", best.Epochs)
	}
	assert.Len(t, res.History.Loss, best.RefitEpochs())
	assert.Nil(t, res.History.ValLoss, "the refit has no validation pairs")
	assert.Equal(t, -1, res.History.BestEpoch)
	fitted := slices.Concat(res.Train, res.Val)
	store, err := style.OpenFeatureStore(cfg.StoreDir, &style.StoreOptions{ReadOnly: true})
	require.NoError(t, err)
	defer store.Close()
	scale, err := style.FeatureScale(context.Background(), store, fitted)
	require.NoError(t, err)
	assert.Equal(t, scale, res.Scale)
	assert.Equal(t, scale, res.Head.Scale)
	assert.Contains(t, string(report), fmt.Sprintf("refit on all %d training and validation pairs for %d epochs", len(fitted), best.RefitEpochs()))
}

// TestRunResume interrupts a study during the feature extraction and runs
// it again: no image is computed twice, and the result is identical to that
// of an uninterrupted run.
func TestRunResume(t *testing.T) {
	src, pairs := studyData(t, 64, 300)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx := &studyExtractor{cancelAt: 10, cancel: cancel}
	cfg := newTestConfig(t, src, pairs, fx)
	_, err := Run(ctx, cfg)
	require.ErrorIs(t, err, context.Canceled, "interrupted run")
	n1 := fx.calls.Load()
	_, err = os.Stat(filepath.Join(cfg.OutDir, HeadFile))
	assert.ErrorIs(t, err, fs.ErrNotExist, "interrupted run left a head file")

	fx2 := &studyExtractor{}
	cfg.Extractor = fx2
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	n2 := fx2.calls.Load()
	distinct := int64(res.Extraction.Total - 1) // all but the ghost
	if n1 < 10 || n1+n2 != distinct || int64(res.Extraction.Skipped) != n1 || int64(res.Extraction.Done) != n2 {
		t.Errorf("runs computed %d + %d features of %d images; report: %d skipped, %d extracted",
			n1, n2, distinct, res.Extraction.Skipped, res.Extraction.Done)
	}

	want, err := Run(context.Background(), newTestConfig(t, src, pairs, &studyExtractor{}))
	require.NoError(t, err)
	// Store positions differ between the runs, features and pair order do
	// not: training and evaluation must give bit-identical distances.
	assert.Equal(t, want.Distances, res.Distances, "distances after resuming and uninterrupted")
}

// TestRunPrefetch reads every image once before extracting: the missing
// image is tried once only and reported.
func TestRunPrefetch(t *testing.T) {
	src, pairs := studyData(t, 32, 120)
	cfg := newTestConfig(t, src, pairs, &studyExtractor{})
	cfg.Prefetch = true
	cfg.Trainer = &style.Trainer{Epochs: 2}
	var downloads atomic.Int64
	cfg.Progress = func(p style.Progress) {
		if p.Stage == "download" {
			downloads.Add(1)
		}
	}
	res, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	assert.Equal(t, 1, src.opens["ghost.png"], "opens of ghost.png: the prefetch only")
	assert.Equal(t, 2, src.opens["img000.png"], "opens of img000.png: prefetch, then extraction")
	if assert.Len(t, res.Extraction.Failed, 1) {
		assert.Equal(t, "ghost.png", res.Extraction.Failed[0].Name)
	}
	assert.Equal(t, 33, res.Extraction.Total, "distinct images")
	assert.Equal(t, int64(33), downloads.Load(), "download progress reports: one per distinct image")
}

// TestRunErrors checks the configuration errors.
func TestRunErrors(t *testing.T) {
	src, pairs := studyData(t, 16, 40)
	for _, tc := range []struct {
		name   string
		change func(c *Config)
		want   string
	}{
		{"no images", func(c *Config) { c.Images = nil }, "no Images"},
		{"no extractor", func(c *Config) { c.Extractor = nil }, "no Extractor"},
		{"no store", func(c *Config) { c.StoreDir = "" }, "no StoreDir"},
		{"no output", func(c *Config) { c.OutDir = "" }, "no OutDir"},
		{"no pairs", func(c *Config) { c.Pairs = nil }, "no pairs"},
		{"too few pairs", func(c *Config) { c.Limit = 3 }, "needs both labels"},
		{"negative workers", func(c *Config) { c.Workers = -1 }, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := newTestConfig(t, src, pairs, &studyExtractor{})
			tc.change(cfg)
			_, err := Run(context.Background(), cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Regexp(t, "^study: ", err.Error())
		})
	}
	_, err := Run(context.Background(), nil)
	assert.ErrorContains(t, err, "no Images", "nil Config")

	// A bad grid value stops the run before the extraction.
	fx := &studyExtractor{}
	cfg := newTestConfig(t, src, pairs, fx)
	cfg.Grid = &Grid{LRs: []float64{0}}
	_, err = Run(context.Background(), cfg)
	assert.ErrorContains(t, err, "study: Grid: learning rate 0 is not a positive finite number")
	assert.Zero(t, fx.calls.Load(), "images extracted before the grid was checked")

	// A store made with another backbone is refused.
	cfg = newTestConfig(t, src, pairs, &studyExtractor{})
	st, err := style.OpenFeatureStore(cfg.StoreDir, &style.StoreOptions{Dim: studyDim, Backbone: style.Backbone{Arch: "other"}})
	require.NoError(t, err)
	st.Close()
	_, err = Run(context.Background(), cfg)
	assert.ErrorContains(t, err, "feature store", "store of another backbone")
}

// TestRunDamagedStore damages the feature store behind its index between
// two runs: the second run must stop with an error naming the damaged
// record rather than train and measure on wrong features.
func TestRunDamagedStore(t *testing.T) {
	src, pairs := studyData(t, 32, 120)
	cfg := newTestConfig(t, src, pairs, &studyExtractor{})
	cfg.Trainer = &style.Trainer{Epochs: 2}
	_, err := Run(context.Background(), cfg)
	require.NoError(t, err)
	// Flip a bit of the last record's features: every record is covered
	// by the index written when the store was closed.
	data := filepath.Join(cfg.StoreDir, "features.f16")
	f, err := os.OpenFile(data, os.O_RDWR, 0)
	require.NoError(t, err)
	fi, err := f.Stat()
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, fi.Size()-16)
	require.NoError(t, err)
	b[0] ^= 0x04
	_, err = f.WriteAt(b, fi.Size()-16)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	_, err = Run(context.Background(), cfg)
	require.ErrorIs(t, err, style.ErrFormat)
	assert.ErrorContains(t, err, data)
	assert.ErrorContains(t, err, "record 31 (")
	assert.ErrorContains(t, err, "is damaged: checksum mismatch")
}
