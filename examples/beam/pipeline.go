package main

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/fileio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/textio"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/transforms/filter"
	"github.com/stylespace/style"
)

// Result is the output of the pipeline for one image.
type Result struct {
	Image     string    // the image as listed in the input (path or URL)
	Category  string    // the category given in the list, "" if none
	Features  []float32 // VGG16 features, FeatureLen floats
	Embedding []float32 // the head's embedding; nil without a head
}

// Failure is one entry of the dead-letter report: an image that could not be
// processed, at which stage and why.
type Failure struct {
	Image string `json:"image"`
	Stage string `json:"stage"` // "read", "decode" or "features"
	Error string `json:"error"`
}

// Config describes one run of the pipeline.
type Config struct {
	// Input is a text file listing images (one path or http(s) URL per line,
	// optionally followed by a tab and a category; blank lines and lines
	// starting with # are skipped; relative paths are relative to the list's
	// directory), or a directory or glob of image files. It may be on a Beam
	// filesystem (gs://).
	Input string
	// Output is the directory the results are written to.
	Output string
	// Model is the model every worker loads once.
	Model ModelSpec
	// BatchSize is the number of images per forward pass; 0 means 16.
	BatchSize int
	// HTTPTimeout bounds the fetch of one image from a URL; 0 means 30s.
	HTTPTimeout time.Duration
	// NoFeatureStore skips writing the features (to keep only the
	// embeddings of a head: the features take 50 KB per image).
	NoFeatureStore bool
	// Shards is the number of shards the results are written in, each by
	// one worker; 0 means 16.
	Shards int
}

func (cfg *Config) shards() int {
	if cfg.Shards <= 0 {
		return defaultShards
	}
	return cfg.Shards
}

func init() {
	beam.RegisterType(reflect.TypeOf((*Result)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*Failure)(nil)).Elem())
	register.DoFn4x1[context.Context, string, func(Result), func(Failure), error](&extractFn{})
	register.Emitter1[Result]()
	register.Emitter1[Failure]()
	register.DoFn2x0[string, func(string)](&expandListFn{})
	register.Function1x1(metadataPath)
	beam.RegisterType(reflect.TypeOf((*ShardPlan)(nil)).Elem())
	register.DoFn1x2[string, int, string](&assignShardFn{})
	register.DoFn2x0[[]byte, func(int, string)](&shardMarkersFn{})
	register.Emitter2[int, string]()
	register.DoFn6x1[context.Context, int, func(*string) bool, func(string), func(int, ShardPlan), func(string), error](&planShardFn{})
	register.Iter1[string]()
	register.Emitter1[string]()
	register.Emitter2[int, ShardPlan]()
	register.DoFn1x2[Result, int, Result](&keyResultFn{})
	register.DoFn1x2[Failure, int, Failure](&keyFailureFn{})
	register.DoFn6x1[context.Context, int, func(*ShardPlan) bool, func(*Result) bool, func(*Failure) bool, func(string), error](&writeShardFn{})
	register.Iter1[ShardPlan]()
	register.Iter1[Result]()
	register.Iter1[Failure]()
	register.DoFn3x1[context.Context, []byte, func(*string) bool, error](&writeManifestFn{})
}

// Build adds the pipeline of cfg to scope s: list images, de-duplicate
// them, plan the shards (keeping those a previous run completed for the
// same images and model), extract features (and embeddings) in batches
// for the others, and write each of them, by one worker per shard, to
// cfg.Output: in shards/0000K-of-0000N, the features as a
// style.FeatureStore in folder "features", the embeddings (with a head) as
// a style.Catalog in "catalog.stylecat", the dead letters in
// "failures.jsonl" and the shard's summary. Then the dead letters of all
// shards in "failures.jsonl" and, last, the manifest "manifest.json",
// through which style.OpenFeatureStore and style.LoadCatalog open the
// output as one store and one catalogue.
func Build(s beam.Scope, cfg Config) {
	n := cfg.shards()
	images := listImages(s.Scope("ListImages"), cfg.Input)
	// Distinct groups by image name: duplicates in the list are computed
	// once.
	images = filter.Distinct(s.Scope("Distinct"), images)
	// Every entry goes to the shard of its image, and every shard gets an
	// empty marker so that it is planned even without images.
	keyed := beam.ParDo(s.Scope("AssignShard"), &assignShardFn{Shards: n}, images)
	markers := beam.ParDo(s.Scope("ShardMarkers"), &shardMarkersFn{Shards: n}, beam.Impulse(s))
	grouped := beam.GroupByKey(s.Scope("GroupEntries"), beam.Flatten(s, keyed, markers))
	todo, plans, kept := beam.ParDo3(s.Scope("PlanShards"), &planShardFn{
		Output: cfg.Output, Shards: n, Model: cfg.Model, Features: !cfg.NoFeatureStore,
	}, grouped)
	// The images of one shard leave its planner together: spread them
	// over the workers again.
	todo = beam.Reshuffle(s.Scope("Spread"), todo)
	results, failures := beam.ParDo2(s.Scope("Extract"), &extractFn{
		Model:       cfg.Model,
		BatchSize:   cfg.BatchSize,
		HTTPTimeout: cfg.HTTPTimeout,
	}, todo)
	// Each shard's results and dead letters meet its plan at one worker,
	// which writes the shard.
	byShard := beam.CoGroupByKey(s.Scope("GroupShards"), plans,
		beam.ParDo(s.Scope("KeyResults"), &keyResultFn{Shards: n}, results),
		beam.ParDo(s.Scope("KeyFailures"), &keyFailureFn{Shards: n}, failures))
	written := beam.ParDo(s.Scope("WriteShards"), &writeShardFn{
		Output: cfg.Output, Shards: n, Model: cfg.Model, Features: !cfg.NoFeatureStore,
	}, byShard)
	beam.ParDo0(s.Scope("WriteManifest"), &writeManifestFn{Output: cfg.Output, Shards: n},
		beam.Impulse(s), beam.SideInput{Input: beam.Flatten(s, kept, written)})
}

// listImages reads the image list: a text file of paths and URLs, or the
// files of a directory or glob.
func listImages(s beam.Scope, input string) beam.PCollection {
	if isGlob(input) {
		return beam.ParDo(s, metadataPath, fileio.MatchFiles(s, input))
	}
	if fi, err := os.Stat(input); err == nil && fi.IsDir() {
		return beam.ParDo(s, metadataPath, fileio.MatchFiles(s, filepath.Join(input, "*")))
	}
	lines := textio.Read(s, input)
	return beam.ParDo(s, &expandListFn{Dir: listDir(input)}, lines)
}

func isGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// listDir is the directory relative entries of the list at p refer to.
func listDir(p string) string {
	if strings.Contains(p, "://") {
		i := strings.LastIndex(p, "/")
		return p[:i]
	}
	return filepath.Dir(p)
}

func metadataPath(m fileio.FileMetadata) string { return m.Path }

// An entry is an image reference, optionally followed by a tab and its
// category: the element type from the list to the extraction (a string, so
// that de-duplication can group by it).

// splitEntry returns the image and the category of an entry.
func splitEntry(e string) (img, category string) {
	img, category, _ = strings.Cut(e, "\t")
	return img, category
}

// expandListFn turns a line of the list into an entry, resolving relative
// paths against the list's directory.
type expandListFn struct {
	Dir string // directory of the list file
}

func (f *expandListFn) ProcessElement(line string, emit func(string)) {
	line = strings.TrimRight(line, "\r")
	if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
		return
	}
	img, cat, hasCat := strings.Cut(line, "\t")
	img = strings.TrimSpace(img)
	switch {
	case isURL(img) || strings.Contains(img, "://") || filepath.IsAbs(img):
	case strings.Contains(f.Dir, "://"):
		img = f.Dir + "/" + path.Clean(img)
	default:
		img = filepath.Join(f.Dir, img)
	}
	if hasCat {
		img += "\t" + strings.TrimSpace(cat)
	}
	emit(img)
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// extractFn loads images, batches them and computes their features and
// embeddings. The model is shared by all instances in a worker process and
// loaded once (Setup). Images that fail go to the failure output.
type extractFn struct {
	Model       ModelSpec
	BatchSize   int
	HTTPTimeout time.Duration

	model  *model
	client *http.Client
	names  []string      // the buffered batch: image names,
	cats   []string      // categories
	imgs   []image.Image // and decoded images
}

// Setup loads the worker's model (once per process) and the HTTP client.
func (f *extractFn) Setup(ctx context.Context) error {
	m, err := sharedModel(ctx, f.Model)
	if err != nil {
		return fmt.Errorf("load model: %w", err)
	}
	f.model = m
	timeout := f.HTTPTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	f.client = &http.Client{Timeout: timeout}
	return nil
}

func (f *extractFn) batchSize() int {
	if f.BatchSize <= 0 {
		return 16
	}
	return f.BatchSize
}

// ProcessElement loads one image and runs a forward pass when a batch is
// full.
func (f *extractFn) ProcessElement(ctx context.Context, entry string, emit func(Result), fail func(Failure)) error {
	imagesSeen.Add(1)
	name, category := splitEntry(entry)
	img, stage, err := f.load(ctx, name)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fail(Failure{Image: name, Stage: stage, Error: err.Error()})
		return nil
	}
	f.names = append(f.names, name)
	f.cats = append(f.cats, category)
	f.imgs = append(f.imgs, img)
	if len(f.imgs) >= f.batchSize() {
		return f.flush(ctx, emit, fail)
	}
	return nil
}

// Batch statistics of this process, for tests and logs.
var (
	forwardPasses atomic.Int64 // batched forward passes run
	largestBatch  atomic.Int64 // most images in one forward pass
	bundles       atomic.Int64 // bundles finished by extractFn
	imagesSeen    atomic.Int64 // entries extractFn was given
)

// FinishBundle runs the forward pass on the last, partial batch.
func (f *extractFn) FinishBundle(ctx context.Context, emit func(Result), fail func(Failure)) error {
	bundles.Add(1)
	return f.flush(ctx, emit, fail)
}

func (f *extractFn) flush(ctx context.Context, emit func(Result), fail func(Failure)) error {
	names, cats, imgs := f.names, f.cats, f.imgs
	f.names, f.cats, f.imgs = f.names[:0], f.cats[:0], f.imgs[:0]
	defer clear(imgs) // drop the decoded images
	if len(imgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	forwardPasses.Add(1)
	for {
		m := largestBatch.Load()
		if int64(len(imgs)) <= m || largestBatch.CompareAndSwap(m, int64(len(imgs))) {
			break
		}
	}
	feats, err := f.model.featuresBatch(ctx, imgs)
	if err != nil {
		// Find the culprit: redo the batch one image at a time.
		feats = make([][]float32, len(imgs))
		for i, img := range imgs {
			feats[i], err = f.model.ext.Features(img)
			if err != nil {
				fail(Failure{Image: names[i], Stage: "features", Error: err.Error()})
			}
		}
	}
	// Images whose forward pass failed have no features; embed the others
	// in one batch.
	var okIdx []int
	var ok [][]float32
	for i, x := range feats {
		if x != nil {
			okIdx = append(okIdx, i)
			ok = append(ok, x)
		}
	}
	var embs [][]float32
	if f.model.head != nil && len(ok) > 0 {
		embs = f.model.embedBatch(ok)
	}
	for i, x := range ok {
		r := Result{Image: names[okIdx[i]], Category: cats[okIdx[i]], Features: x}
		if embs != nil {
			r.Embedding = embs[i]
		}
		emit(r)
	}
	return nil
}

// load reads and decodes one image from a local file, a Beam filesystem or
// an http(s) URL. On failure it names the stage: "read" or "decode".
func (f *extractFn) load(ctx context.Context, name string) (image.Image, string, error) {
	var (
		r   io.ReadCloser
		err error
	)
	switch {
	case isURL(name):
		r, err = f.get(ctx, name)
	case strings.Contains(name, "://"):
		var fs filesystem.Interface
		fs, err = filesystem.New(ctx, name)
		if err == nil {
			defer fs.Close()
			r, err = fs.OpenRead(ctx, name)
		}
	default:
		r, err = os.Open(name)
	}
	if err != nil {
		return nil, "read", err
	}
	defer r.Close()
	img, err := style.DecodeImage(r, name)
	if err != nil {
		var fe *style.FormatError
		if errors.As(err, &fe) || errors.Is(err, style.ErrImageTooLarge) {
			return nil, "decode", err
		}
		return nil, "read", err
	}
	return img, "", nil
}

// get fetches an image over HTTP, retrying transient failures (network
// errors, 429 and 5xx) twice with a short backoff.
func (f *extractFn) get(ctx context.Context, url string) (io.ReadCloser, error) {
	var lastErr error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := f.client.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		if resp.StatusCode == http.StatusOK {
			return resp.Body, nil
		}
		resp.Body.Close()
		lastErr = fmt.Errorf("GET %s: %s", url, resp.Status)
		if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode < 500 {
			break
		}
	}
	return nil, lastErr
}
