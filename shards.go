package style

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stylespace/style/internal/engine"
)

// A sharded output is a folder of self-contained parts (each a feature
// store folder and/or a catalogue file) listed by a manifest, written by
// programs that split one extraction over many machines (examples/beam).
// OpenFeatureStore and LoadCatalog open it as one store or one catalogue;
// the manifest's format is documented at OpenFeatureStore.
const (
	shardManifestFile    = "manifest.json"
	shardManifestFormat  = "style sharded output"
	shardManifestVersion = 1
)

type shardManifest struct {
	Format   string          `json:"format"`
	Version  int             `json:"version"`
	Backbone Backbone        `json:"backbone"`
	Shards   []manifestShard `json:"shards"`
}

type manifestShard struct {
	Features *manifestStore `json:"features"`
	Catalog  *manifestFile  `json:"catalog"`
}

// manifestStore is a feature store folder of a shard; SHA256 maps the
// names of its two files to their checksums.
type manifestStore struct {
	Path   string            `json:"path"`
	Count  int               `json:"count"`
	SHA256 map[string]string `json:"sha256"`
}

// manifestFile is a catalogue file of a shard.
type manifestFile struct {
	Path   string `json:"path"`
	Count  int    `json:"count"`
	SHA256 string `json:"sha256"`
}

// shardedOutput is a parsed manifest: where it is, and what it lists.
type shardedOutput struct {
	path string // the manifest file
	dir  string // its folder, which the paths are relative to
	m    shardManifest
}

// parseShardManifest parses and checks the manifest data read from path.
func parseShardManifest(data []byte, path string) (*shardedOutput, error) {
	bad := func(format string, args ...any) error {
		return &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf(format, args...)}
	}
	o := &shardedOutput{path: path, dir: filepath.Dir(path)}
	if err := json.Unmarshal(data, &o.m); err != nil {
		return nil, &FormatError{Path: path, Offset: -1, Msg: "malformed manifest", Err: err}
	}
	switch {
	case o.m.Format != shardManifestFormat:
		return nil, bad("not a sharded output manifest (format %q)", o.m.Format)
	case o.m.Version != shardManifestVersion:
		return nil, bad("unsupported manifest version %d", o.m.Version)
	case len(o.m.Shards) == 0:
		return nil, bad("the manifest lists no shards")
	}
	seen := map[string]int{}
	checkPath := func(k int, what, p string) error {
		if p == "" || strings.Contains(p, `\`) || !filepath.IsLocal(filepath.FromSlash(p)) {
			return bad("shard %d: %s path %q is not inside the manifest's folder", k, what, p)
		}
		clean := filepath.Clean(filepath.FromSlash(p))
		if j, dup := seen[clean]; dup {
			return bad("shard %d: %s path %q is also used by shard %d", k, what, p, j)
		}
		seen[clean] = k
		return nil
	}
	checkSum := func(k int, what, sum string) error {
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
			return bad("shard %d: %s: SHA-256 %q is not 64 hex digits", k, what, sum)
		}
		return nil
	}
	for k, sh := range o.m.Shards {
		if sh.Features == nil && sh.Catalog == nil {
			return nil, bad("shard %d has neither a feature store nor a catalogue", k)
		}
		if f := sh.Features; f != nil {
			if err := checkPath(k, "feature store", f.Path); err != nil {
				return nil, err
			}
			if f.Count < 0 {
				return nil, bad("shard %d: feature store %s: negative count %d", k, f.Path, f.Count)
			}
			if len(f.SHA256) != 2 {
				return nil, bad("shard %d: feature store %s: the manifest must give the SHA-256 of %s and %s, and only those", k, f.Path, storeDataFile, storeIndexFile)
			}
			for _, name := range []string{storeDataFile, storeIndexFile} {
				sum, ok := f.SHA256[name]
				if !ok {
					return nil, bad("shard %d: feature store %s: no SHA-256 for %s", k, f.Path, name)
				}
				if err := checkSum(k, f.Path+"/"+name, sum); err != nil {
					return nil, err
				}
			}
		}
		if c := sh.Catalog; c != nil {
			if err := checkPath(k, "catalogue", c.Path); err != nil {
				return nil, err
			}
			if c.Count < 0 {
				return nil, bad("shard %d: catalogue %s: negative count %d", k, c.Path, c.Count)
			}
			if err := checkSum(k, c.Path, c.SHA256); err != nil {
				return nil, err
			}
		}
	}
	return o, nil
}

// readShardManifest reads and parses the manifest file at path.
func readShardManifest(path string) (*shardedOutput, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("style: sharded output: %w", err)
	}
	return parseShardManifest(data, path)
}

// shardManifestOf returns the manifest to open for OpenFeatureStore(dir):
// dir itself if it is a file, dir's manifest.json if dir is a folder that
// holds one and no feature store, "" otherwise (a feature store folder,
// opened as before).
func shardManifestOf(dir string) string {
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		return ""
	case fi.Mode().IsRegular():
		return dir
	case !fi.IsDir():
		return ""
	}
	for _, name := range []string{storeDataFile, storeIndexFile} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			return ""
		}
	}
	m := filepath.Join(dir, shardManifestFile)
	if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
		return m
	}
	return ""
}

// catalogManifestOf returns the manifest to open for LoadCatalog(path):
// path's manifest.json if path is a folder, path itself if it is a file
// that starts (after white space) with "{", "" otherwise.
func catalogManifestOf(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	if fi.IsDir() {
		return filepath.Join(path, shardManifestFile)
	}
	if !fi.Mode().IsRegular() {
		return ""
	}
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var b [64]byte
	n, _ := io.ReadFull(f, b[:])
	if t := bytes.TrimLeft(b[:n], " \t\r\n"); len(t) > 0 && t[0] == '{' {
		return path
	}
	return ""
}

// errorf returns a *FormatError naming the manifest and shard k.
func (o *shardedOutput) errorf(k int, err error, format string, args ...any) error {
	return &FormatError{Path: o.path, Offset: -1, Msg: fmt.Sprintf("shard %d: ", k) + fmt.Sprintf(format, args...), Err: err}
}

// file returns the local path of a manifest path.
func (o *shardedOutput) file(p string) string {
	return filepath.Join(o.dir, filepath.FromSlash(p))
}

// verify checks the SHA-256 of the files the manifest lists for the parts
// wanted (feature stores or catalogues), on all CPUs, and returns the error
// of the first shard (in manifest order) that does not match.
func (o *shardedOutput) verify(stores bool) error {
	type check struct {
		shard      int
		path, want string
	}
	var checks []check
	for k, sh := range o.m.Shards {
		switch {
		case stores && sh.Features == nil:
			return o.errorf(k, nil, "no feature store (the output holds only catalogues)")
		case stores:
			for _, name := range []string{storeDataFile, storeIndexFile} {
				checks = append(checks, check{k, sh.Features.Path + "/" + name, sh.Features.SHA256[name]})
			}
		case sh.Catalog == nil:
			return o.errorf(k, nil, "no catalogue (the output holds only feature stores)")
		default:
			checks = append(checks, check{k, sh.Catalog.Path, sh.Catalog.SHA256})
		}
	}
	errs := make([]error, len(checks))
	engine.For(engine.Workers(0), len(checks), func(_, i int) {
		c := checks[i]
		got, err := fileSHA256(o.file(c.path))
		switch {
		case err != nil:
			errs[i] = o.errorf(c.shard, err, "%s", c.path)
		case !strings.EqualFold(got, c.want):
			errs[i] = o.errorf(c.shard, nil, "%s: checksum mismatch: SHA-256 %s, the manifest records %s", c.path, got, c.want)
		}
	})
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// openShardedStore opens the feature stores of the sharded output of the
// manifest at path as one read-only store (see OpenFeatureStore).
func openShardedStore(path string, o StoreOptions) (_ *FeatureStore, err error) {
	out, err := readShardManifest(path)
	if err != nil {
		return nil, err
	}
	if err := out.verify(true); err != nil {
		return nil, err
	}
	s := &FeatureStore{dir: path, readOnly: true, index: make(map[string]int)}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	for k, sh := range out.m.Shards {
		dir := out.file(sh.Features.Path)
		part, err := openStoreFolder(dir, StoreOptions{ReadOnly: true, CheckpointEvery: 256})
		if err != nil {
			return nil, out.errorf(k, err, "feature store %s", sh.Features.Path)
		}
		s.shards = append(s.shards, part)
		switch {
		case part.Len() != sh.Features.Count:
			return nil, out.errorf(k, nil, "feature store %s holds %d vectors, the manifest records %d", sh.Features.Path, part.Len(), sh.Features.Count)
		case out.m.Backbone != (Backbone{}) && part.Backbone() != out.m.Backbone:
			return nil, out.errorf(k, nil, "feature store %s holds features of backbone %+v, the manifest's is %+v", sh.Features.Path, part.Backbone(), out.m.Backbone)
		case k > 0 && part.Backbone() != s.backbone:
			return nil, out.errorf(k, nil, "feature store %s holds features of backbone %+v, shard 0's are of %+v", sh.Features.Path, part.Backbone(), s.backbone)
		case k > 0 && part.Dim() != s.dim:
			return nil, out.errorf(k, nil, "feature store %s holds vectors of %d floats, shard 0's hold %d", sh.Features.Path, part.Dim(), s.dim)
		}
		s.dim, s.backbone = part.Dim(), part.Backbone()
		s.starts = append(s.starts, len(s.names))
		for i, name := range part.names {
			if at, dup := s.index[name]; dup {
				j := shardAt(s.starts, at)
				return nil, out.errorf(k, nil, "%q is in feature store %s and in shard %d's %s", name, sh.Features.Path, j, out.m.Shards[j].Features.Path)
			}
			s.index[name] = len(s.names)
			s.names = append(s.names, name)
			s.maxes = append(s.maxes, part.maxes[i])
		}
	}
	if o.Dim != 0 && o.Dim != s.dim {
		return nil, fmt.Errorf("style: sharded output %s holds vectors of %d floats, not %d", path, s.dim, o.Dim)
	}
	if o.Backbone != (Backbone{}) && o.Backbone != s.backbone {
		return nil, fmt.Errorf("style: sharded output %s holds features of backbone %+v, not %+v", path, s.backbone, o.Backbone)
	}
	s.recSize = storeRecordSize(s.dim)
	s.count.Store(int64(len(s.names)))
	return s, nil
}

// shardOf returns the shard holding vector i of a sharded store and the
// vector's index in it.
func (s *FeatureStore) shardOf(i int) (*FeatureStore, int) {
	k := shardAt(s.starts, i)
	return s.shards[k], i - s.starts[k]
}

// shardAt returns the shard holding entry i of a merged output, given the
// index of the first entry of each shard (non-decreasing: a shard may be
// empty).
func shardAt(starts []int, i int) int {
	return sort.SearchInts(starts, i+1) - 1
}

// loadShardedCatalog loads the catalogues of the sharded output of the
// manifest at path as one catalogue (see LoadCatalog).
func loadShardedCatalog(path string) (*Catalog, error) {
	out, err := readShardManifest(path)
	if err != nil {
		return nil, err
	}
	if err := out.verify(false); err != nil {
		return nil, err
	}
	c := &Catalog{}
	var starts []int // index of the first item of each shard
	for k, sh := range out.m.Shards {
		part, err := loadCatalogFile(out.file(sh.Catalog.Path))
		if err != nil {
			return nil, out.errorf(k, err, "catalogue %s", sh.Catalog.Path)
		}
		switch {
		case part.Len() != sh.Catalog.Count:
			return nil, out.errorf(k, nil, "catalogue %s holds %d items, the manifest records %d", sh.Catalog.Path, part.Len(), sh.Catalog.Count)
		case k > 0 && !maps.Equal(part.Meta, c.Meta):
			return nil, out.errorf(k, nil, "catalogue %s has metadata %v, shard 0's has %v", sh.Catalog.Path, part.Meta, c.Meta)
		case part.Len() > 0 && c.Len() > 0 && part.Dim() != c.Dim():
			return nil, out.errorf(k, nil, "catalogue %s holds embeddings of %d values, the shards before hold %d", sh.Catalog.Path, part.Dim(), c.Dim())
		}
		if k == 0 {
			c.Meta = part.Meta
		}
		starts = append(starts, c.Len())
		for i, id := range part.ids {
			if at, dup := c.byID[id]; dup {
				j := shardAt(starts, at)
				return nil, out.errorf(k, nil, "%q is in catalogue %s and in shard %d's %s", id, sh.Catalog.Path, j, out.m.Shards[j].Catalog.Path)
			}
			it := Item{ID: id, Category: part.cats[part.cat[i]], Embedding: part.row(i)}
			if err := c.put(it, part.keys[i], "LoadCatalog"); err != nil {
				return nil, out.errorf(k, err, "catalogue %s", sh.Catalog.Path)
			}
		}
	}
	return c, nil
}
