package style

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testVector returns a deterministic feature vector for name.
func testVector(name string, dim int) []float32 {
	v := make([]float32, dim)
	var h uint64 = 1469598103934665603
	for _, c := range []byte(name) {
		h = (h ^ uint64(c)) * 1099511628211
	}
	rng := rand.New(rand.NewPCG(h, 7))
	for i := range v {
		v[i] = float32(rng.Float64() * 900)
	}
	return v
}

func checkStoreEntries(t *testing.T, s *FeatureStore, names []string) {
	t.Helper()
	dst := make([]float32, s.Dim())
	for _, n := range names {
		i, ok := s.Index(n)
		require.True(t, ok, "%s not in store", n)
		require.Equal(t, n, s.Name(i), "Name(%d)", i)
		require.Equal(t, rounded16(testVector(n, s.Dim())), s.FeatureTo(dst, i), "features of %s", n)
	}
}

var storeTestBackbone = Backbone{Arch: "fake", Preprocess: PreprocessCaffe, SHA256: "00ff"}

func TestFeatureStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	const dim = 37 // odd, so records need padding
	s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone, CheckpointEvery: 4})
	require.NoError(t, err)
	var names []string
	var max float32
	for i := range 10 {
		n := fmt.Sprintf("img%02d.jpg", i)
		names = append(names, n)
		idx, err := s.Put(n, testVector(n, dim))
		require.NoError(t, err, "Put %s", n)
		require.Equal(t, i, idx, "Put %s", n)
		for _, v := range rounded16(testVector(n, dim)) {
			max = float32(math.Max(float64(max), float64(v)))
		}
		checkStoreEntries(t, s, names) // readable at once, mapped or not
	}
	require.Equal(t, 10, s.Len())
	require.Equal(t, max, s.maxAll())
	var sub float32
	for _, v := range rounded16(testVector(names[3], dim)) {
		sub = float32(math.Max(float64(sub), float64(v)))
	}
	require.Equal(t, sub, s.maxOf([]int{3}), "maxOf")

	// Bad puts.
	_, err = s.Put(names[0], testVector("x", dim))
	assert.ErrorIs(t, err, fs.ErrExist, "duplicate")
	bad := testVector("y", dim)
	bad[5] = float32(math.NaN())
	_, err = s.Put("nan", bad)
	assert.ErrorContains(t, err, "feature 5", "NaN")
	bad[5] = 70000
	_, err = s.Put("big", bad)
	assert.Error(t, err, "70000 accepted")
	_, err = s.Put(strings.Repeat("n", maxStoreNameLen+1), testVector("z", dim))
	assert.Error(t, err, "long name accepted")
	long := strings.Repeat("n", maxStoreNameLen)
	_, err = s.Put(long, testVector(long, dim))
	assert.NoError(t, err, "name of the maximum length")
	names = append(names, long)
	for _, v := range rounded16(testVector(long, dim)) {
		max = float32(math.Max(float64(max), float64(v)))
	}
	assert.PanicsWithValue(t, fmt.Sprintf("style: FeatureStore.Put: %d features, want %d", dim-1, dim),
		func() { s.Put("short", make([]float32, dim-1)) }, "wrong length")
	// A second writer is refused while the first holds the store.
	if s2, err := OpenFeatureStore(dir, nil); err == nil {
		s2.Close()
		t.Error("second writer accepted")
	}
	require.NoError(t, s.checkRecords(context.Background(), nil))
	require.NoError(t, s.Close())

	// Reopen read-only: everything is there, with the backbone.
	r, err := OpenFeatureStore(dir, &StoreOptions{ReadOnly: true})
	require.NoError(t, err)
	require.Equal(t, 11, r.Len())
	require.Equal(t, dim, r.Dim())
	require.Equal(t, storeTestBackbone, r.Backbone())
	require.Equal(t, max, r.maxAll())
	checkStoreEntries(t, r, names)
	if m := r.mapped.Load(); runtime.GOOS == "linux" && (m == nil || m.n != 11) {
		t.Errorf("read-only store not memory-mapped on Linux: %+v", m)
	}
	_, err = r.Put("new", testVector("new", dim))
	assert.ErrorContains(t, err, "read-only", "read-only Put")
	r.Close()

	// Mismatched dimension or backbone.
	_, err = OpenFeatureStore(dir, &StoreOptions{Dim: dim + 1})
	assert.Error(t, err, "wrong dimension accepted")
	_, err = OpenFeatureStore(dir, &StoreOptions{Backbone: Backbone{Arch: "other"}})
	assert.Error(t, err, "wrong backbone accepted")
	_, err = OpenFeatureStore(filepath.Join(t.TempDir(), "new"), nil)
	assert.Error(t, err, "created a store without a dimension")
}

// writeAbandoned stores names with no checkpoint after the store is created
// and drops the store as a crash would: without syncing or writing the
// index.
func writeAbandoned(t *testing.T, dir string, dim int, names []string) {
	t.Helper()
	s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone, CheckpointEvery: 1000})
	require.NoError(t, err)
	for _, n := range names {
		_, err := s.Put(n, testVector(n, dim))
		require.NoError(t, err)
	}
	s.release()
}

// damageFile xors the byte at off of the file path with 0x55.
func damageFile(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	b[0] ^= 0x55
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}

func TestFeatureStoreTornTail(t *testing.T) {
	const dim = 64
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	rec := storeRecordSize(dim)

	t.Run("truncated", func(t *testing.T) {
		dir := t.TempDir()
		writeAbandoned(t, dir, dim, names)
		// Cut the file in the middle of record 5.
		data := filepath.Join(dir, storeDataFile)
		require.NoError(t, os.Truncate(data, 5*rec+rec/2))
		s, err := OpenFeatureStore(dir, nil)
		require.NoError(t, err)
		require.Equal(t, 5, s.Len(), "records recovered")
		checkStoreEntries(t, s, names[:5])
		fi, err := os.Stat(data)
		require.NoError(t, err)
		require.Equal(t, 5*rec, fi.Size(), "data file size")
		// New records go after the recovered ones.
		i, err := s.Put("f", testVector("f", dim))
		require.NoError(t, err, "Put after recovery")
		require.Equal(t, 5, i, "Put after recovery")
		s.Close()
		s, err = OpenFeatureStore(dir, &StoreOptions{ReadOnly: true})
		require.NoError(t, err)
		defer s.Close()
		checkStoreEntries(t, s, names[:6])
	})

	t.Run("corrupt record", func(t *testing.T) {
		dir := t.TempDir()
		writeAbandoned(t, dir, dim, names)
		// Flip a feature byte of record 3: it and everything after are
		// dropped, as a torn write would be.
		damageFile(t, filepath.Join(dir, storeDataFile), 3*rec+storeHeaderSize+10)
		s, err := OpenFeatureStore(dir, nil)
		require.NoError(t, err)
		defer s.Close()
		require.Equal(t, 3, s.Len(), "records recovered")
		checkStoreEntries(t, s, names[:3])
	})

	t.Run("lost index", func(t *testing.T) {
		dir := t.TempDir()
		writeAbandoned(t, dir, dim, names)
		require.NoError(t, os.Remove(filepath.Join(dir, storeIndexFile)))
		_, err := OpenFeatureStore(dir, nil)
		require.ErrorContains(t, err, "lost its index", "no index, no dimension")
		s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone})
		require.NoError(t, err)
		defer s.Close()
		require.Equal(t, len(names), s.Len(), "records rebuilt")
		checkStoreEntries(t, s, names)
	})

	t.Run("damaged files", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone})
		require.NoError(t, err)
		for _, n := range names {
			_, err := s.Put(n, testVector(n, dim))
			require.NoError(t, err)
		}
		require.NoError(t, s.Close())
		// The data file lost records the index lists.
		data := filepath.Join(dir, storeDataFile)
		require.NoError(t, os.Truncate(data, 7*rec))
		_, err = OpenFeatureStore(dir, nil)
		var fe *FormatError
		require.ErrorAs(t, err, &fe, "short data file")
		require.ErrorContains(t, err, "index lists 8 records", "short data file")
		// A malformed index.
		idx := filepath.Join(dir, storeIndexFile)
		require.NoError(t, os.WriteFile(idx, []byte(`{"format":"style feature store","version":1,"dim":64,"record_bytes":1,"count":0}`), 0o644))
		_, err = OpenFeatureStore(dir, nil)
		require.ErrorAs(t, err, &fe, "bad record size")
		require.Equal(t, idx, fe.Path, "bad record size")
		require.NoError(t, os.WriteFile(idx, []byte(`{"format":`), 0o644))
		_, err = OpenFeatureStore(dir, nil)
		require.ErrorIs(t, err, ErrFormat, "truncated index")
	})
}

// TestFeatureStoreDamagedRecords damages one value in every fifth record of
// a store, behind the index's back, and checks that no reader uses them:
// FeatureTo gives NaN for them (and the right values for the others), and
// every function that reads a FeatureSource for a result returns an error
// naming the first damaged record.
func TestFeatureStoreDamagedRecords(t *testing.T) {
	const dim, n = 24, 40
	dir := t.TempDir()
	s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone})
	require.NoError(t, err)
	var names []string
	for i := range n {
		name := fmt.Sprintf("img%02d.jpg", i)
		names = append(names, name)
		_, err := s.Put(name, testVector(name, dim))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	rec := storeRecordSize(dim)
	data := filepath.Join(dir, storeDataFile)
	for i := 3; i < n; i += 5 {
		damageFile(t, data, int64(i)*rec+storeHeaderSize+2*7) // value 7
	}
	// A sound record holding another name than the index says is damaged
	// too.
	f, err := os.OpenFile(data, os.O_RDWR, 0)
	require.NoError(t, err)
	buf := make([]byte, rec)
	_, err = f.ReadAt(buf, rec)
	require.NoError(t, err)
	buf[16+3] = '4' // img01.jpg -> img41.jpg
	binary.LittleEndian.PutUint32(buf[4:], crc32.Checksum(buf[8:], storeCRCTable))
	_, err = f.WriteAt(buf, rec)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	for _, mapped := range []bool{true, false} {
		t.Run(fmt.Sprintf("mapped=%v", mapped), func(t *testing.T) {
			s, err := OpenFeatureStore(dir, &StoreOptions{ReadOnly: true})
			require.NoError(t, err)
			defer s.Close()
			if !mapped {
				s.mapped.Store(nil) // read every record with ReadAt
			}
			ctx := context.Background()
			dst := make([]float32, dim)
			for i := range n {
				got := s.FeatureTo(dst, i)
				if i == 1 || i%5 == 3 {
					for k, v := range got {
						require.True(t, math.IsNaN(float64(v)), "damaged record %d: value %d = %v, want NaN", i, k, v)
					}
				} else {
					require.Equal(t, rounded16(testVector(names[i], dim)), got, "record %d", i)
				}
			}

			// The first damaged record, by index, is named with its
			// offset, and the others are counted.
			err = s.checkRecords(ctx, nil)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, data, fe.Path)
			assert.Equal(t, 1*rec, fe.Offset)
			assert.Contains(t, err.Error(), `record 1 ("img01.jpg") is damaged: holds "img41.jpg" (and 8 more damaged records)`)
			// Good records are checked once; only the damaged ones remain.
			require.NoError(t, s.checkRecords(ctx, []int{0, 2, 4, 9, 0}))
			err = s.checkRecords(ctx, []int{4, 13, 8})
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, 8*rec, fe.Offset)
			assert.Contains(t, err.Error(), `record 8 ("img08.jpg") is damaged: checksum mismatch (and 1 more damaged record)`)

			// The readers of the package refuse to use them.
			good := []LabeledPair{{A: 0, B: 2, Label: 1}, {A: 4, B: 5}, {A: 6, B: 7, Label: 1}, {A: 9, B: 10}}
			damaged := append(good[:2:2], LabeledPair{A: 11, B: 13, Label: 1}, LabeledPair{A: 12, B: 14})
			head, err := NewSiameseHead(&HeadConfig{In: dim, Out: 4, Seed: 1, Scale: 900, Backbone: storeTestBackbone})
			require.NoError(t, err)
			_, err = head.PairDistances(ctx, s, good)
			require.NoError(t, err, "PairDistances on sound records")
			_, err = head.PairDistances(ctx, s, damaged)
			assert.ErrorIs(t, err, ErrFormat, "PairDistances")
			assert.ErrorContains(t, err, `record 13 ("img13.jpg")`, "PairDistances")
			_, err = (&Trainer{Epochs: 1}).Fit(ctx, head, s, good, damaged)
			assert.ErrorContains(t, err, `record 13 ("img13.jpg")`, "Trainer.Fit, damaged validation pair")
			_, err = (&Trainer{Epochs: 1}).Fit(ctx, head, s, good, good)
			assert.NoError(t, err, "Trainer.Fit on sound records")
			_, err = FeatureScale(ctx, s, damaged)
			assert.ErrorContains(t, err, `record 13 ("img13.jpg")`, "FeatureScale")
			_, err = FeatureScale(ctx, s, nil)
			assert.ErrorContains(t, err, `record 1 ("img01.jpg")`, "FeatureScale over all records")
			_, err = TSNE{Perplexity: 5}.Fit(ctx, s)
			assert.ErrorContains(t, err, `record 1 ("img01.jpg")`, "TSNE.Fit")

			cctx, cancel := context.WithCancel(ctx)
			cancel()
			assert.ErrorIs(t, s.checkRecords(cctx, nil), context.Canceled)
		})
	}
}

const benchDim = 25088 // VGG16 pool5: 512 x 7 x 7

func BenchmarkFeatureStorePut(b *testing.B) {
	s, err := OpenFeatureStore(b.TempDir(), &StoreOptions{Dim: benchDim, Backbone: storeTestBackbone})
	require.NoError(b, err)
	defer s.Close()
	v := testVector("bench", benchDim)
	b.SetBytes(4 * benchDim) // float32 features in
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Put(fmt.Sprintf("img%08d.jpg", i), v); err != nil {
			b.Fatal(err)
		}
	}
	require.NoError(b, s.sync()) // durability is part of the cost
}

// BenchmarkFeatureStoreFeatureTo reads VGG16-sized records: "mmap" and
// "ReadAt" after each record was checked once (the steady state of
// training), "first" with the check of every read (the first epoch).
func BenchmarkFeatureStoreFeatureTo(b *testing.B) {
	s, err := OpenFeatureStore(b.TempDir(), &StoreOptions{Dim: benchDim, Backbone: storeTestBackbone})
	require.NoError(b, err)
	defer s.Close()
	const n = 64
	for i := range n {
		n := fmt.Sprint(i)
		if _, err := s.Put(n, testVector(n, benchDim)); err != nil {
			b.Fatal(err)
		}
	}
	require.NoError(b, s.sync()) // maps the records where supported
	dst := make([]float32, benchDim)
	run := func(forget bool) func(b *testing.B) {
		return func(b *testing.B) {
			b.SetBytes(4 * benchDim) // float32 features out
			b.ReportAllocs()
			cpu := processCPUSeconds()
			for i := 0; b.Loop(); i++ {
				if b := s.verified.Load(); forget && b != nil {
					for k := range b.w {
						b.w[k].Store(0)
					}
				}
				s.FeatureTo(dst, i*7%n)
			}
			// CPU time is far less sensitive than wall time to the load
			// of a shared machine.
			b.ReportMetric((processCPUSeconds()-cpu)*1e9/float64(b.N), "cpu-ns/op")
		}
	}
	if s.mapped.Load() != nil {
		b.Run("mmap", run(false))
		b.Run("mmap/first", run(true))
	}
	s.mapped.Store(nil)
	b.Run("ReadAt", run(false))
	b.Run("ReadAt/first", run(true))
}
