package style

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testShardBackbone = Backbone{Arch: VGG16, Preprocess: PreprocessTorch, Seed: 5, Divisor: 8}

// writeTestShard writes a shard by hand under dir/rel: a feature store of
// the names (vectors of dim floats derived from each name) with backbone
// bb, and a catalogue of the same names with meta, and returns its
// manifest entry.
func writeTestShard(t *testing.T, dir, rel string, names []string, dim int, bb Backbone, meta map[string]string) manifestShard {
	t.Helper()
	storeRel, catRel := rel+"/features", rel+"/catalog.stylecat"
	s, err := OpenFeatureStore(filepath.Join(dir, filepath.FromSlash(storeRel)), &StoreOptions{Dim: dim, Backbone: bb})
	require.NoError(t, err)
	c := &Catalog{Meta: meta}
	for _, n := range names {
		v := testShardVector(n, dim)
		_, err := s.Put(n, v)
		require.NoError(t, err)
		require.NoError(t, c.Add(Item{ID: n, Category: "cat " + n[:1], Embedding: v[:4]}))
	}
	require.NoError(t, s.Close())
	require.NoError(t, os.Remove(filepath.Join(dir, filepath.FromSlash(storeRel), storeLockFile)))
	require.NoError(t, c.Save(filepath.Join(dir, filepath.FromSlash(catRel))))
	sum := func(rel string) string {
		h, err := fileSHA256(filepath.Join(dir, filepath.FromSlash(rel)))
		require.NoError(t, err)
		return h
	}
	return manifestShard{
		Features: &manifestStore{Path: storeRel, Count: len(names), SHA256: map[string]string{
			storeDataFile:  sum(storeRel + "/" + storeDataFile),
			storeIndexFile: sum(storeRel + "/" + storeIndexFile),
		}},
		Catalog: &manifestFile{Path: catRel, Count: len(names), SHA256: sum(catRel)},
	}
}

// testShardVector is the vector stored for name: values exactly
// representable in float16, different for every name.
func testShardVector(name string, dim int) []float32 {
	v := make([]float32, dim)
	h := 0
	for _, b := range []byte(name) {
		h = h*31 + int(b)
	}
	for i := range v {
		v[i] = float32((h+7*i)%97) / 8
	}
	return v
}

func writeTestManifest(t *testing.T, dir string, m shardManifest) string {
	t.Helper()
	data, err := json.MarshalIndent(m, "", "  ")
	require.NoError(t, err)
	path := filepath.Join(dir, shardManifestFile)
	require.NoError(t, os.WriteFile(path, data, 0o644))
	return path
}

var testShardNames = [][]string{
	{"a1.jpg", "a2.jpg", "a3.jpg"},
	{"b1.jpg"},
	{}, // an empty shard: an empty store and an empty catalogue
	{"d1.jpg", "d2.jpg"},
}

// writeTestOutput writes a sharded output of testShardNames in dir and
// returns its manifest.
func writeTestOutput(t *testing.T, dir string) shardManifest {
	t.Helper()
	m := shardManifest{Format: shardManifestFormat, Version: shardManifestVersion, Backbone: testShardBackbone}
	for k, names := range testShardNames {
		m.Shards = append(m.Shards, writeTestShard(t, dir, fmt.Sprintf("shards/%d", k), names, 12, testShardBackbone, map[string]string{"head": "h"}))
	}
	writeTestManifest(t, dir, m)
	return m
}

// TestShardedOutputOpensAsOne opens a hand-made sharded output through its
// folder and through its manifest: the store and the catalogue are the
// union of the shards, in manifest order, each vector bit for bit the
// shard's own.
func TestShardedOutputOpensAsOne(t *testing.T) {
	dir := t.TempDir()
	writeTestOutput(t, dir)
	var all []string
	for _, names := range testShardNames {
		all = append(all, names...)
	}
	for _, path := range []string{dir, filepath.Join(dir, shardManifestFile)} {
		s, err := OpenFeatureStore(path, nil)
		require.NoError(t, err, path)
		assert.Equal(t, len(all), s.Len(), path)
		assert.Equal(t, 12, s.Dim())
		assert.Equal(t, testShardBackbone, s.Backbone())
		got := make([]float32, s.Dim())
		for i, name := range all {
			assert.Equal(t, name, s.Name(i), "manifest order")
			j, ok := s.Index(name)
			require.True(t, ok, name)
			assert.Equal(t, i, j)
			want := testShardVector(name, s.Dim())
			for x, v := range s.FeatureTo(got, i) {
				assert.Equal(t, math.Float32bits(want[x]), math.Float32bits(v), "%s[%d]", name, x)
			}
		}
		_, ok := s.Index("missing.jpg")
		assert.False(t, ok)
		lp, dropped := s.LabeledPairs([]Pair{{A: "b1.jpg", B: "d2.jpg", Label: 1}, {A: "a1.jpg", B: "zz.jpg"}})
		assert.Equal(t, []LabeledPair{{A: 3, B: 5, Label: 1}}, lp)
		assert.Len(t, dropped, 1)
		// FeatureScale reads the maxima of every shard and checks every
		// record's checksum.
		scale, err := FeatureScale(context.Background(), s, nil)
		require.NoError(t, err)
		want := 0.0
		for _, n := range all {
			for _, v := range testShardVector(n, 12) {
				want = max(want, float64(v))
			}
		}
		assert.Equal(t, want, scale)
		// The shards' stores remember the records checked, so that the
		// next reader does not read them again.
		for i := range s.Len() {
			assert.True(t, s.isVerified(i), "record %d checked", i)
		}
		_, err = s.Put("new.jpg", make([]float32, 12))
		assert.ErrorContains(t, err, "read-only")
		assert.ErrorContains(t, err, "sharded output")
		_, err = OpenFeatureStore(path, &StoreOptions{Dim: 13})
		assert.ErrorContains(t, err, "not 13", "a dimension that does not match")
		_, err = OpenFeatureStore(path, &StoreOptions{Backbone: Backbone{Arch: ResNet50}})
		assert.ErrorContains(t, err, "backbone", "a backbone that does not match")
		require.NoError(t, s.Close())

		c, err := LoadCatalog(path)
		require.NoError(t, err, path)
		require.Equal(t, len(all), c.Len())
		assert.Equal(t, 4, c.Dim())
		assert.Equal(t, map[string]string{"head": "h"}, c.Meta)
		for i, name := range all {
			it := c.Item(i)
			assert.Equal(t, name, it.ID, "manifest order")
			assert.Equal(t, "cat "+name[:1], it.Category)
			assert.Equal(t, testShardVector(name, 12)[:4], it.Embedding)
		}
		m, err := c.RecommendItem("a1.jpg", 2, nil)
		require.NoError(t, err)
		assert.Len(t, m, 2)
	}
	// A folder holding a feature store is opened as that store, as before,
	// even with a manifest next to it.
	plain := filepath.Join(dir, "shards", "0", "features")
	require.NoError(t, os.WriteFile(filepath.Join(plain, shardManifestFile), []byte("{}"), 0o644))
	s, err := OpenFeatureStore(plain, &StoreOptions{ReadOnly: true})
	require.NoError(t, err)
	assert.Equal(t, len(testShardNames[0]), s.Len())
	require.NoError(t, s.Close())
}

// TestShardedOutputErrors damages a sharded output in every way the
// manifest can be wrong: each gives a *FormatError naming the manifest and
// the shard, never a panic.
func TestShardedOutputErrors(t *testing.T) {
	type damage func(t *testing.T, dir string, m *shardManifest)
	flip := func(rel string) damage { // corrupt one byte of a file
		return func(t *testing.T, dir string, m *shardManifest) {
			p := filepath.Join(dir, filepath.FromSlash(rel))
			data, err := os.ReadFile(p)
			require.NoError(t, err)
			data[len(data)/2] ^= 1
			require.NoError(t, os.WriteFile(p, data, 0o644))
		}
	}
	for _, tc := range []struct {
		name    string
		damage  damage
		raw     string // manifest content instead of m, if not ""
		store   bool   // the error concerns the store (else both)
		catalog bool   // the error concerns the catalogue only
		want    []string
		is      error
	}{
		{name: "malformed JSON", raw: `{"format": "style sharded output", "version": 1, "shards": [`, want: []string{"malformed manifest"}},
		{name: "not a manifest", raw: `{"format": "something else", "version": 1}`, want: []string{"not a sharded output manifest"}},
		{name: "unknown version", raw: `{"format": "style sharded output", "version": 9}`, want: []string{"version 9"}},
		{name: "no shards", raw: `{"format": "style sharded output", "version": 1, "shards": []}`, want: []string{"no shards"}},
		{name: "empty shard", raw: `{"format": "style sharded output", "version": 1, "shards": [{}]}`, want: []string{"shard 0 has neither"}},
		{name: "path with ..", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[1].Features.Path, m.Shards[1].Catalog.Path = "../outside/features", "shards/1/../../x.stylecat"
		}, want: []string{"shard 1", "not inside"}},
		{name: "absolute path", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[2].Features.Path = filepath.Join(dir, "shards/2/features")
			m.Shards[2].Catalog.Path = "/" + m.Shards[2].Catalog.Path
		}, want: []string{"shard 2", "not inside"}},
		{name: "the output folder as a shard", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[1].Features.Path, m.Shards[1].Catalog.Path = ".", "shards"
		}, want: []string{"shard 1"}},
		{name: "path used twice", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[3].Features.Path, m.Shards[3].Catalog.Path = m.Shards[0].Features.Path, m.Shards[0].Catalog.Path
		}, want: []string{"shard 3", "also used by shard 0"}},
		{name: "bad checksum text", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[1].Features.SHA256[storeDataFile] = "xyz"
			m.Shards[1].Catalog.SHA256 = "abc"
		}, want: []string{"shard 1", "not 64 hex digits"}},
		{name: "checksum of a store file missing", damage: func(t *testing.T, dir string, m *shardManifest) {
			delete(m.Shards[1].Features.SHA256, storeIndexFile)
		}, want: []string{"shard 1", "SHA-256 of features.f16 and index.json"}},
		{name: "negative count", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[3].Features.Count, m.Shards[3].Catalog.Count = -1, -1
		}, want: []string{"shard 3", "negative count"}},
		{name: "missing shard", damage: func(t *testing.T, dir string, m *shardManifest) {
			require.NoError(t, os.RemoveAll(filepath.Join(dir, "shards", "1")))
		}, want: []string{"shard 1"}, is: fs.ErrNotExist},
		{name: "store checksum mismatch", damage: flip("shards/3/features/features.f16"), store: true, want: []string{"shard 3", "features.f16: checksum mismatch"}},
		{name: "index checksum mismatch", damage: flip("shards/0/features/index.json"), store: true, want: []string{"shard 0", "index.json: checksum mismatch"}},
		{name: "catalogue checksum mismatch", damage: flip("shards/1/catalog.stylecat"), catalog: true, want: []string{"shard 1", "catalog.stylecat: checksum mismatch"}},
		{name: "count mismatch", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[3].Features.Count, m.Shards[3].Catalog.Count = 3, 1
		}, want: []string{"shard 3", "the manifest records"}},
		{name: "backbone of another network", damage: func(t *testing.T, dir string, m *shardManifest) {
			other := testShardBackbone
			other.Seed = 6
			m.Shards[1] = writeTestShard(t, dir, "shards/1b", []string{"b9.jpg"}, 12, other, map[string]string{"head": "h"})
		}, store: true, want: []string{"shard 1", "shards/1b/features", "backbone"}},
		{name: "backbone of the manifest", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Backbone.Divisor = 1
		}, store: true, want: []string{"shard 0", "the manifest's is"}},
		{name: "dimension", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[3] = writeTestShard(t, dir, "shards/3b", []string{"d9.jpg"}, 16, testShardBackbone, map[string]string{"head": "h"})
		}, store: true, want: []string{"shard 3", "shards/3b/features", "16 floats"}},
		{name: "name in two shards", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[3] = writeTestShard(t, dir, "shards/3b", []string{"d9.jpg", "a2.jpg"}, 12, testShardBackbone, map[string]string{"head": "h"})
		}, want: []string{"shard 3", `"a2.jpg"`, "shards/3b/", "shards/0/"}},
		{name: "name in two shards, an empty one between", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[3] = writeTestShard(t, dir, "shards/3b", []string{"d9.jpg", "b1.jpg"}, 12, testShardBackbone, map[string]string{"head": "h"})
		}, want: []string{"shard 3", `"b1.jpg"`, "shards/3b/", "shard 1's shards/1/"}},
		{name: "catalogue metadata", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[3] = writeTestShard(t, dir, "shards/3b", []string{"d9.jpg"}, 12, testShardBackbone, map[string]string{"head": "other"})
		}, catalog: true, want: []string{"shard 3", "metadata"}},
		{name: "no store", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[2].Features = nil
		}, store: true, want: []string{"shard 2", "no feature store"}},
		{name: "no catalogue", damage: func(t *testing.T, dir string, m *shardManifest) {
			m.Shards[2].Catalog = nil
		}, catalog: true, want: []string{"shard 2", "no catalogue"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := writeTestOutput(t, dir)
			if tc.damage != nil {
				tc.damage(t, dir, &m)
			}
			manifest := writeTestManifest(t, dir, m)
			if tc.raw != "" {
				require.NoError(t, os.WriteFile(manifest, []byte(tc.raw), 0o644))
			}
			check := func(what string, err error) {
				t.Helper()
				require.Error(t, err, what)
				t.Logf("%s: %v", what, err)
				var fe *FormatError
				assert.True(t, errors.As(err, &fe), "%s: %v is not a *FormatError", what, err)
				assert.ErrorContains(t, err, manifest, what)
				for _, w := range tc.want {
					assert.ErrorContains(t, err, w, what)
				}
				if tc.is != nil {
					assert.ErrorIs(t, err, tc.is, what)
				}
			}
			s, err := OpenFeatureStore(dir, nil)
			if tc.catalog {
				require.NoError(t, err, "the stores are fine")
				require.NoError(t, s.Close())
			} else {
				check("OpenFeatureStore", err)
			}
			_, err = LoadCatalog(manifest)
			if tc.store {
				assert.NoError(t, err, "the catalogues are fine")
			} else {
				check("LoadCatalog", err)
			}
		})
	}
}

// FuzzShardManifest feeds arbitrary bytes to the manifest parser: it must
// never panic, and a manifest it accepts has only paths inside its folder,
// distinct, with well-formed checksums.
func FuzzShardManifest(f *testing.F) {
	dir := f.TempDir()
	f.Add([]byte(`{"format": "style sharded output", "version": 1, "shards": [{"features": {"path": "a", "count": 1, "sha256": {"features.f16": "` +
		strings.Repeat("0", 64) + `", "index.json": "` + strings.Repeat("1", 64) + `"}}, "catalog": {"path": "b/c.stylecat", "count": 2, "sha256": "` +
		strings.Repeat("a", 64) + `"}}]}`))
	f.Add([]byte(`{"format": "style sharded output", "version": 1, "shards": [{"catalog": {"path": "../x", "sha256": ""}}]}`))
	f.Add([]byte(`{"shards": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := parseShardManifest(data, filepath.Join(dir, shardManifestFile))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, sh := range o.m.Shards {
			var paths []string
			if sh.Features != nil {
				paths = append(paths, sh.Features.Path)
			}
			if sh.Catalog != nil {
				paths = append(paths, sh.Catalog.Path)
			}
			if len(paths) == 0 {
				t.Fatal("accepted a shard with no part")
			}
			for _, p := range paths {
				full := o.file(p)
				rel, err := filepath.Rel(dir, full)
				if err != nil || !filepath.IsLocal(rel) || seen[full] {
					t.Fatalf("accepted path %q (%s)", p, full)
				}
				seen[full] = true
			}
		}
	})
}
