package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	"github.com/stylespace/style"
)

// The output folder of a run with N shards:
//
//	manifest.json                          the manifest (style.OpenFeatureStore, style.LoadCatalog), written last
//	failures.jsonl                         all dead letters, sorted by image
//	shards/0000K-of-0000N/features/        shard K's feature store
//	shards/0000K-of-0000N/catalog.stylecat shard K's catalogue, with a head
//	shards/0000K-of-0000N/failures.jsonl   shard K's dead letters
//	shards/0000K-of-0000N/summary.json     shard K's summary, written last in its folder
//
// An image belongs to shard fnv1a64(image) mod N, the image as listed
// (without its category).
const (
	manifestName   = "manifest.json"
	shardsDir      = "shards"
	summaryFile    = "summary.json"
	featuresDir    = "features"         // a shard's style.FeatureStore
	catalogFile    = "catalog.stylecat" // a shard's style.Catalog of the embeddings, with -head
	defaultShards  = 16
	manifestFormat = "style sharded output" // the format style.OpenFeatureStore documents
	summaryFormat  = "style beam shard summary"
	formatVersion  = 1
)

// shardOf returns the shard of image among n: FNV-1a (64 bits) of the
// image modulo n, the same on every worker and in every run.
func shardOf(image string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(image))
	return int(h.Sum64() % uint64(n))
}

// shardDir is the folder of shard k of n, relative to the output, with
// forward slashes (as the manifest records it).
func shardDir(k, n int) string {
	return fmt.Sprintf("%s/%05d-of-%05d", shardsDir, k, n)
}

// The manifest, as style.OpenFeatureStore documents it; failures is ours
// (the library ignores fields it does not know).
type manifest struct {
	Format   string          `json:"format"`
	Version  int             `json:"version"`
	Backbone style.Backbone  `json:"backbone"`
	Shards   []manifestShard `json:"shards"`
}

type manifestShard struct {
	Features *manifestStore `json:"features,omitempty"`
	Catalog  *manifestFile  `json:"catalog,omitempty"`
	Failures *manifestFile  `json:"failures,omitempty"`
}

type manifestStore struct {
	Path   string            `json:"path"`
	Count  int               `json:"count"`
	SHA256 map[string]string `json:"sha256"`
}

type manifestFile struct {
	Path   string `json:"path"`
	Count  int    `json:"count"`
	SHA256 string `json:"sha256"`
}

// storeFiles are the files of a shard's closed feature store (its lock
// removed), sorted.
var storeFiles = []string{"features.f16", "index.json"}

// listsOwnFiles tells whether sh lists exactly the files writeShardFn
// writes in the shard folder rel, under their own names: the dead
// letters, the feature store's files with features, the catalogue with
// catalog. A summary listing anything else (a path outside the folder,
// which the library would refuse in the manifest) is not kept.
func (sh *manifestShard) listsOwnFiles(rel string, features, catalog bool) bool {
	switch {
	case sh.Failures == nil || sh.Failures.Path != rel+"/"+failuresFile:
		return false
	case (sh.Catalog != nil) != catalog || catalog && sh.Catalog.Path != rel+"/"+catalogFile:
		return false
	case (sh.Features != nil) != features:
		return false
	case features && (sh.Features.Path != rel+"/"+featuresDir || !slices.Equal(slices.Sorted(maps.Keys(sh.Features.SHA256)), storeFiles)):
		return false
	}
	return true
}

// files lists the files of the shard, relative to the output, with their
// SHA-256.
func (sh *manifestShard) files() map[string]string {
	fs := map[string]string{}
	if f := sh.Features; f != nil {
		for name, sum := range f.SHA256 {
			fs[f.Path+"/"+name] = sum
		}
	}
	for _, f := range []*manifestFile{sh.Catalog, sh.Failures} {
		if f != nil {
			fs[f.Path] = f.SHA256
		}
	}
	return fs
}

// shardSummary is a shard's summary.json, written last in its folder:
// the shard's entry of the manifest, and what a rerun checks to keep the
// shard: the same shard count, model and outputs, the same entries (the
// distinct list entries of its images), and every file's SHA-256.
type shardSummary struct {
	Format        string         `json:"format"`
	Version       int            `json:"version"`
	Shard         int            `json:"shard"`
	Shards        int            `json:"shards"`
	Model         string         `json:"model"` // see modelKey
	Backbone      style.Backbone `json:"backbone"`
	Entries       int            `json:"entries"`
	EntriesSHA256 string         `json:"entries_sha256"`
	manifestShard
}

// ShardPlan tells the writer of a shard to (re)write it, and the entries
// it must cover.
type ShardPlan struct {
	Shard         int
	Entries       int
	EntriesSHA256 string
}

// entriesDigest returns the distinct entries, sorted, and the hex SHA-256
// of them, one per line.
func entriesDigest(entries []string) (distinct []string, sum string) {
	slices.Sort(entries)
	entries = slices.Compact(entries)
	h := sha256.New()
	for _, e := range entries {
		io.WriteString(h, e)
		h.Write([]byte{'\n'})
	}
	return entries, hex.EncodeToString(h.Sum(nil))
}

// modelKey identifies the model and the outputs a shard was written for:
// the backbone (with the weight file's SHA-256 or the generator's seed),
// the head file's SHA-256 and which outputs are written.
func modelKey(m *model, features bool) string {
	return fmt.Sprintf("backbone=%+v head_sha256=%s feature_store=%v", m.ext.Backbone(), m.headSHA256, features)
}

// assignShardFn keys each entry by the shard of its image.
type assignShardFn struct{ Shards int }

func (f *assignShardFn) ProcessElement(entry string) (int, string) {
	img, _ := splitEntry(entry)
	return shardOf(img, f.Shards), entry
}

// shardMarkersFn emits an empty entry for every shard, so that every
// shard is planned (and written, and listed) even with no image.
type shardMarkersFn struct{ Shards int }

func (f *shardMarkersFn) ProcessElement(_ []byte, emit func(int, string)) {
	for k := range f.Shards {
		emit(k, "")
	}
}

// planShardFn decides, for each shard, whether the shard already in the
// output can be kept: its summary must describe this run's shard count,
// model and entries, and every file it lists must have its SHA-256. A
// kept shard's summary goes to the manifest and its images are not
// computed again; the entries of any other shard go to the extraction,
// and a plan to its writer.
type planShardFn struct {
	Output   string
	Shards   int
	Model    ModelSpec
	Features bool
}

func (f *planShardFn) ProcessElement(ctx context.Context, shard int, iter func(*string) bool, todo func(string), plan func(int, ShardPlan), kept func(string)) error {
	var entries []string
	var e string
	for iter(&e) {
		if e != "" {
			entries = append(entries, e)
		}
	}
	entries, sum := entriesDigest(entries)
	n := len(entries)
	m, err := sharedModel(ctx, f.Model)
	if err != nil {
		return err
	}
	s, why := checkShard(ctx, f.Output, shard, f.Shards, modelKey(m, f.Features), f.Features, f.Model.Head != "", n, sum)
	if why == "" {
		data, err := json.Marshal(s)
		if err != nil {
			return err
		}
		kept(string(data))
		return nil
	}
	log.Infof(ctx, "shard %d of %d: %s: computing its %d images", shard, f.Shards, why, n)
	plan(shard, ShardPlan{Shard: shard, Entries: n, EntriesSHA256: sum})
	for _, e := range entries {
		todo(e)
	}
	return nil
}

// checkShard reads and checks the summary of shard k of n in output,
// which must list a feature store and a catalogue as this run writes them,
// and returns it, or why the shard must be written.
func checkShard(ctx context.Context, output string, k, n int, model string, features, catalog bool, entries int, entriesSum string) (*shardSummary, string) {
	path := joinPath(output, shardDir(k, n)+"/"+summaryFile)
	data, err := readFile(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "no summary"
	}
	if err != nil {
		return nil, err.Error()
	}
	var s shardSummary
	switch err := json.Unmarshal(data, &s); {
	case err != nil:
		return nil, fmt.Sprintf("%s: %v", path, err)
	case s.Format != summaryFormat || s.Version != formatVersion:
		return nil, fmt.Sprintf("%s: format %q version %d", path, s.Format, s.Version)
	case s.Shard != k || s.Shards != n:
		return nil, fmt.Sprintf("%s: written as shard %d of %d", path, s.Shard, s.Shards)
	case s.Model != model:
		return nil, "written with another model or other outputs"
	case !s.listsOwnFiles(shardDir(k, n), features, catalog):
		return nil, fmt.Sprintf("%s does not list the files this run writes", path)
	case s.Entries != entries || s.EntriesSHA256 != entriesSum:
		return nil, fmt.Sprintf("written for other images (%d entries then, %d now)", s.Entries, entries)
	}
	files := s.files()
	for _, name := range slices.Sorted(maps.Keys(files)) {
		got, err := sha256Of(ctx, joinPath(output, name))
		if err != nil {
			return nil, err.Error()
		}
		if got != files[name] {
			return nil, fmt.Sprintf("%s: SHA-256 %s, the summary records %s", name, got, files[name])
		}
	}
	return &s, ""
}

// keyResultFn and keyFailureFn key results and failures by shard.
type keyResultFn struct{ Shards int }

func (f *keyResultFn) ProcessElement(r Result) (int, Result) { return shardOf(r.Image, f.Shards), r }

type keyFailureFn struct{ Shards int }

func (f *keyFailureFn) ProcessElement(x Failure) (int, Failure) { return shardOf(x.Image, f.Shards), x }

// writeShardFn writes a planned shard: its feature store, catalogue and
// dead letters, then its summary, in a fresh folder that replaces the
// shard's old one. It emits the summary.
type writeShardFn struct {
	Output   string
	Shards   int
	Model    ModelSpec
	Features bool
}

func (f *writeShardFn) ProcessElement(ctx context.Context, shard int, plans func(*ShardPlan) bool, results func(*Result) bool, failures func(*Failure) bool, emit func(string)) error {
	var p ShardPlan
	if !plans(&p) {
		return nil // a kept shard: nothing was computed for it
	}
	m, err := sharedModel(ctx, f.Model)
	if err != nil {
		return err
	}
	rel := shardDir(shard, f.Shards)
	local, publish, cleanup, err := shardFolder(ctx, f.Output, rel)
	if err != nil {
		return err
	}
	defer cleanup()
	s := &shardSummary{
		Format: summaryFormat, Version: formatVersion, Shard: shard, Shards: f.Shards,
		Model: modelKey(m, f.Features), Backbone: m.ext.Backbone(),
		Entries: p.Entries, EntriesSHA256: p.EntriesSHA256,
	}
	sum := func(name string) (string, error) { return sha256Of(ctx, filepath.Join(local, name)) }

	// The features go to the store as they arrive (the store is keyed by
	// name; its record order is not meaningful), so that they are never
	// all in memory. The catalogue is small (a few hundred bytes per
	// item): it is sorted by image so that it does not depend on how the
	// work was split.
	var store *style.FeatureStore
	if f.Features {
		store, err = style.OpenFeatureStore(filepath.Join(local, featuresDir), &style.StoreOptions{Dim: m.ext.FeatureLen(), Backbone: m.ext.Backbone()})
		if err != nil {
			return err
		}
		defer store.Close()
	}
	var (
		items []Result
		done  int // entries with a result
		r     Result
	)
	for results(&r) {
		done++
		if store != nil {
			if _, err := store.Put(r.Image, r.Features); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("shard %d: feature store: %w", shard, err)
			} // ErrExist: an image listed twice with different categories, kept once
		}
		if r.Embedding != nil {
			items = append(items, Result{Image: r.Image, Category: r.Category, Embedding: r.Embedding})
		}
		r = Result{}
	}
	var fails []Failure
	var x Failure
	for failures(&x) {
		fails = append(fails, x)
	}
	// Every entry gives a result or a failure: fewer means the runner lost
	// some, and the shard would not cover its images.
	if done+len(fails) != p.Entries {
		return fmt.Errorf("shard %d: %d results and %d failures for %d entries", shard, done, len(fails), p.Entries)
	}
	if store != nil {
		if err := store.Close(); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(local, featuresDir, "lock")); err != nil {
			return err
		}
		st := &manifestStore{Path: rel + "/" + featuresDir, Count: store.Len(), SHA256: map[string]string{}}
		for _, name := range storeFiles {
			if st.SHA256[name], err = sum(filepath.Join(featuresDir, name)); err != nil {
				return err
			}
		}
		s.Features = st
	}
	if f.Model.Head != "" {
		items = sortResults(items)
		if err := saveCatalog(filepath.Join(local, catalogFile), f.Model, m, items); err != nil {
			return fmt.Errorf("shard %d: %w", shard, err)
		}
		s.Catalog = &manifestFile{Path: rel + "/" + catalogFile, Count: len(items)}
		if s.Catalog.SHA256, err = sum(catalogFile); err != nil {
			return err
		}
	}
	sortFailures(fails)
	if err := writeLocalAtomic(filepath.Join(local, failuresFile), func(w io.Writer) error { return encodeFailures(w, fails) }); err != nil {
		return err
	}
	s.Failures = &manifestFile{Path: rel + "/" + failuresFile, Count: len(fails)}
	if s.Failures.SHA256, err = sum(failuresFile); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := writeLocalAtomic(filepath.Join(local, summaryFile), func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return err
	}
	if err := publish(); err != nil {
		return fmt.Errorf("shard %d: %w", shard, err)
	}
	emit(string(data))
	return nil
}

// shardFolder returns a fresh local folder to write the shard rel of
// output in, the function that puts it in place of the shard's old folder
// once complete (the summary last), and the one that removes what is left
// of it.
func shardFolder(ctx context.Context, output, rel string) (local string, publish, cleanup func() error, err error) {
	if !strings.Contains(output, "://") {
		final := filepath.Join(output, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
			return "", nil, nil, err
		}
		tmp, err := os.MkdirTemp(filepath.Dir(final), "."+filepath.Base(final)+".tmp*")
		if err != nil {
			return "", nil, nil, err
		}
		publish = func() error {
			if err := os.RemoveAll(final); err != nil {
				return err
			}
			return os.Rename(tmp, final)
		}
		return tmp, publish, func() error { return os.RemoveAll(tmp) }, nil
	}
	tmp, err := os.MkdirTemp("", "style-beam-shard-*")
	if err != nil {
		return "", nil, nil, err
	}
	publish = func() error {
		return publishDir(ctx, tmp, joinPath(output, rel), summaryFile)
	}
	return tmp, publish, func() error { return os.RemoveAll(tmp) }, nil
}

// writeManifestFn writes, once every shard is written or kept, the
// merged dead letters and then the manifest.
type writeManifestFn struct {
	Output string
	Shards int
}

func (f *writeManifestFn) ProcessElement(ctx context.Context, _ []byte, iter func(*string) bool) error {
	sums := make([]*shardSummary, f.Shards)
	var data string
	for iter(&data) {
		var s shardSummary
		if err := json.Unmarshal([]byte(data), &s); err != nil {
			return fmt.Errorf("shard summary: %w", err)
		}
		if s.Shard < 0 || s.Shard >= f.Shards || sums[s.Shard] != nil {
			return fmt.Errorf("shard summary for shard %d of %d, unexpected", s.Shard, f.Shards)
		}
		sums[s.Shard] = &s
	}
	m := manifest{Format: manifestFormat, Version: formatVersion}
	var fails []Failure
	for k, s := range sums {
		if s == nil {
			return fmt.Errorf("shard %d of %d was neither written nor kept", k, f.Shards)
		}
		if k > 0 && s.Backbone != m.Backbone {
			return fmt.Errorf("shard %d has backbone %+v, shard 0 %+v", k, s.Backbone, m.Backbone)
		}
		m.Backbone = s.Backbone
		m.Shards = append(m.Shards, s.manifestShard)
		path := joinPath(f.Output, s.Failures.Path)
		data, err := readFile(ctx, path)
		if err != nil {
			return err
		}
		fs, err := decodeFailures(data, path)
		if err != nil {
			return err
		}
		fails = append(fails, fs...)
	}
	sortFailures(fails)
	if err := writeOutput(ctx, joinPath(f.Output, failuresFile), func(w io.Writer) error { return encodeFailures(w, fails) }); err != nil {
		return err
	}
	return writeOutput(ctx, joinPath(f.Output, manifestName), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(&m)
	})
}

// openRead opens a local file or one on a Beam filesystem.
func openRead(ctx context.Context, path string) (io.ReadCloser, error) {
	if !strings.Contains(path, "://") {
		return os.Open(path)
	}
	fsys, err := filesystem.New(ctx, path)
	if err != nil {
		return nil, err
	}
	r, err := fsys.OpenRead(ctx, path)
	if err != nil {
		fsys.Close()
		return nil, err
	}
	return readCloser{r, fsys}, nil
}

type readCloser struct {
	io.ReadCloser
	fsys filesystem.Interface
}

func (r readCloser) Close() error {
	err := r.ReadCloser.Close()
	r.fsys.Close()
	return err
}

func readFile(ctx context.Context, path string) ([]byte, error) {
	r, err := openRead(ctx, path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// sha256Of returns the hex SHA-256 of a local file or one on a Beam
// filesystem.
func sha256Of(ctx context.Context, path string) (string, error) {
	r, err := openRead(ctx, path)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
