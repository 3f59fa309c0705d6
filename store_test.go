package style

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestFloat16Exhaustive(t *testing.T) {
	// Every half value converts to float32 and back to itself (NaNs are
	// rejected instead).
	for h := 0; h < 1<<16; h++ {
		f := halfToFloat32(uint16(h))
		back, ok := float32ToHalf(f)
		isNaN := h&0x7c00 == 0x7c00 && h&0x3ff != 0
		isInf := h&0x7fff == 0x7c00
		switch {
		case isNaN || isInf:
			if ok || (isNaN && !math.IsNaN(float64(f))) || (isInf && !math.IsInf(float64(f), 0)) {
				t.Fatalf("%#04x: %v accepted", h, f)
			}
		case !ok || back != uint16(h):
			t.Fatalf("%#04x -> %v -> %#04x (ok %v)", h, f, back, ok)
		}
	}
	for _, c := range []struct {
		f  float32
		ok bool
		h  uint16
	}{
		{65504, true, 0x7bff},
		{65519.996, true, 0x7bff}, // below the midpoint to infinity
		{65520, false, 0},         // the midpoint rounds to infinity
		{-1e6, false, 0},
		{float32(math.NaN()), false, 0},
		{1, true, 0x3c00},
		{1 + 1.0/2048, true, 0x3c00}, // tie: to even
		{1 + 3.0/2048, true, 0x3c02}, // tie: to even (up)
		{0x1p-24, true, 0x0001},      // smallest subnormal
		{0x1p-25, true, 0x0000},      // tie with zero: to even
		{0x1.8p-25, true, 0x0001},    // above the tie
		{0x1p-26, true, 0x0000},
		{-0x1p-14, true, 0x8400},             // smallest normal, negative
		{0x1.ffcp-15, true, 0x0400},          // largest subnormal rounds up to the smallest normal
		{0x1.ff8p-15, true, 0x03ff},          // largest subnormal exactly
		{0x1.ffep-1 + 0x1p-13, true, 0x3c00}, // carries into the exponent
	} {
		h, ok := float32ToHalf(c.f)
		if ok != c.ok || (ok && h != c.h) {
			t.Errorf("float32ToHalf(%v) = %#04x, %v; want %#04x, %v", c.f, h, ok, c.h, c.ok)
		}
	}
}

func TestFloat16Rounding(t *testing.T) {
	// Random float32 values over the whole half range: the result is the
	// nearest half (neither neighbour is closer), and the error is within
	// the documented bounds: 2^-11 relative for normal halves (|x| >=
	// 2^-14), 2^-25 absolute below.
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 200000; i++ {
		x := float32(math.Ldexp(rng.Float64()+0.5, rng.IntN(44)-30))
		if rng.IntN(2) == 0 {
			x = -x
		}
		if math.Abs(float64(x)) >= 65520 {
			continue
		}
		h, ok := float32ToHalf(x)
		if !ok {
			t.Fatalf("%v rejected", x)
		}
		got := float64(halfToFloat32(h))
		err := math.Abs(got - float64(x))
		for _, nb := range []uint16{h - 1, h + 1} {
			if nb&0x7c00 == 0x7c00 || (h&0x7fff == 0 && nb == h-1) {
				continue
			}
			if d := math.Abs(float64(halfToFloat32(nb)) - float64(x)); d < err {
				t.Fatalf("%v -> %v, but neighbour %v is closer", x, got, halfToFloat32(nb))
			}
		}
		if math.Abs(float64(x)) >= 0x1p-14 {
			if rel := err / math.Abs(float64(x)); rel > 0x1p-11 {
				t.Fatalf("%v -> %v: relative error %g > 2^-11", x, got, rel)
			}
		} else if err > 0x1p-25 {
			t.Fatalf("%v -> %v: absolute error %g > 2^-25", x, got, err)
		}
	}
}

// TestFloat16HeadPrecision shows that storing features as float16 does not
// matter to a style head: VGG16-like features (non-negative, sparse, up to
// about 850) are MinMax-scaled, run through a random Dense(512 -> 128, ReLU)
// layer, and the distances between pairs of embeddings computed from
// float32 and from float16 features are compared.
func TestFloat16HeadPrecision(t *testing.T) {
	const dim, out, n = 512, 128, 40
	rng := rand.New(rand.NewPCG(2, 3))
	feats := make([][]float32, n)
	rounded := make([][]float32, n)
	var max float32
	for i := range feats {
		feats[i] = make([]float32, dim)
		for k := range feats[i] {
			if rng.Float64() < 0.6 {
				continue // ReLU zeros
			}
			feats[i][k] = float32(rng.ExpFloat64() * 40)
			max = float32(math.Max(float64(max), float64(feats[i][k])))
		}
		buf := make([]byte, 2*dim)
		if _, bad := float32ToHalves(buf, feats[i]); bad >= 0 {
			t.Fatal("unrepresentable feature")
		}
		rounded[i] = make([]float32, dim)
		halvesToFloat32(rounded[i], buf)
	}
	// Glorot-uniform weights.
	w := make([]float64, dim*out)
	lim := math.Sqrt(6.0 / (dim + out))
	for i := range w {
		w[i] = (2*rng.Float64() - 1) * lim
	}
	embed := func(f []float32, scale float32) []float64 {
		e := make([]float64, out)
		for j := range e {
			var s float64
			for k, v := range f {
				s += float64(v/scale) * w[k*out+j]
			}
			e[j] = math.Max(s, 0)
		}
		return e
	}
	maxIn, maxRel := 0.0, 0.0
	var embs32, embs16 [][]float64
	for i := range feats {
		for k := range feats[i] {
			maxIn = math.Max(maxIn, math.Abs(float64(feats[i][k]/max-rounded[i][k]/max)))
		}
		embs32 = append(embs32, embed(feats[i], max))
		embs16 = append(embs16, embed(rounded[i], max))
	}
	dist := func(a, b []float64) float64 {
		var s float64
		for k := range a {
			s += (a[k] - b[k]) * (a[k] - b[k])
		}
		return math.Sqrt(s)
	}
	for i := 0; i+1 < n; i += 2 {
		d32 := dist(embs32[i], embs32[i+1])
		d16 := dist(embs16[i], embs16[i+1])
		maxRel = math.Max(maxRel, math.Abs(d32-d16)/d32)
	}
	// Scaled inputs move by at most 2^-11 (each value is at most 1), and
	// distances by far less than the 1e-3 that would change a verdict
	// near a cutoff; the observed values are logged.
	t.Logf("max input change after MinMax scaling %.2g, max relative distance change %.2g", maxIn, maxRel)
	if maxIn > 0x1p-11 {
		t.Fatalf("scaled input changed by %g > 2^-11", maxIn)
	}
	if maxRel > 1e-3 {
		t.Fatalf("relative distance change %g > 1e-3", maxRel)
	}
}

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

func rounded16(v []float32) []float32 {
	buf := make([]byte, 2*len(v))
	float32ToHalves(buf, v)
	out := make([]float32, len(v))
	halvesToFloat32(out, buf)
	return out
}

func checkStoreEntries(t *testing.T, s *FeatureStore, names []string) {
	t.Helper()
	dst := make([]float32, s.Dim())
	for _, n := range names {
		i, ok := s.Index(n)
		if !ok {
			t.Fatalf("%s not in store", n)
		}
		if s.Name(i) != n {
			t.Fatalf("Name(%d) = %s, want %s", i, s.Name(i), n)
		}
		want := rounded16(testVector(n, s.Dim()))
		s.FeatureTo(dst, i)
		for k := range dst {
			if dst[k] != want[k] {
				t.Fatalf("%s[%d] = %v, want %v", n, k, dst[k], want[k])
			}
		}
	}
}

var storeTestBackbone = Backbone{Arch: "fake", Preprocess: PreprocessCaffe, SHA256: "00ff"}

func TestFeatureStoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	const dim = 37 // odd, so records need padding
	s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone, CheckpointEvery: 4})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var max float32
	for i := range 10 {
		n := fmt.Sprintf("img%02d.jpg", i)
		names = append(names, n)
		idx, err := s.Put(n, testVector(n, dim))
		if err != nil || idx != i {
			t.Fatalf("Put %s: %d, %v", n, idx, err)
		}
		for _, v := range rounded16(testVector(n, dim)) {
			max = float32(math.Max(float64(max), float64(v)))
		}
		checkStoreEntries(t, s, names) // readable at once, mapped or not
	}
	if s.Len() != 10 || s.maxAll() != max {
		t.Fatalf("Len %d Max %v, want 10 and %v", s.Len(), s.maxAll(), max)
	}
	var sub float32
	for _, v := range rounded16(testVector(names[3], dim)) {
		sub = float32(math.Max(float64(sub), float64(v)))
	}
	if got := s.maxOf([]int{3}); got != sub {
		t.Fatalf("maxOf = %v, want %v", got, sub)
	}

	// Bad puts.
	if _, err := s.Put(names[0], testVector("x", dim)); !errors.Is(err, fs.ErrExist) {
		t.Errorf("duplicate: got %v", err)
	}
	bad := testVector("y", dim)
	bad[5] = float32(math.NaN())
	if _, err := s.Put("nan", bad); err == nil || !strings.Contains(err.Error(), "feature 5") {
		t.Errorf("NaN: got %v", err)
	}
	bad[5] = 70000
	if _, err := s.Put("big", bad); err == nil {
		t.Error("70000 accepted")
	}
	if _, err := s.Put(strings.Repeat("n", MaxStoreNameLen+1), testVector("z", dim)); err == nil {
		t.Error("long name accepted")
	}
	long := strings.Repeat("n", MaxStoreNameLen)
	if _, err := s.Put(long, testVector(long, dim)); err != nil {
		t.Errorf("name of the maximum length: %v", err)
	}
	names = append(names, long)
	for _, v := range rounded16(testVector(long, dim)) {
		max = float32(math.Max(float64(max), float64(v)))
	}
	func() {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "style: FeatureStore.Put") {
				t.Errorf("wrong length: recovered %v", r)
			}
		}()
		s.Put("short", make([]float32, dim-1))
	}()
	// A second writer is refused while the first holds the store.
	if s2, err := OpenFeatureStore(dir, nil); err == nil {
		s2.Close()
		t.Error("second writer accepted")
	}
	if err := s.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen read-only: everything is there, with the backbone.
	r, err := OpenFeatureStore(dir, &StoreOptions{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 11 || r.Dim() != dim || r.Backbone() != storeTestBackbone || r.maxAll() != max {
		t.Fatalf("reopened: Len %d Dim %d Backbone %+v Max %v", r.Len(), r.Dim(), r.Backbone(), r.maxAll())
	}
	checkStoreEntries(t, r, names)
	if m := r.mapped.Load(); runtime.GOOS == "linux" && (m == nil || m.n != 11) {
		t.Errorf("read-only store not memory-mapped on Linux: %+v", m)
	}
	if _, err := r.Put("new", testVector("new", dim)); !errors.Is(err, ErrStoreReadOnly) {
		t.Errorf("read-only Put: %v", err)
	}
	r.Close()

	// Mismatched dimension or backbone.
	if _, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim + 1}); err == nil {
		t.Error("wrong dimension accepted")
	}
	if _, err := OpenFeatureStore(dir, &StoreOptions{Backbone: Backbone{Arch: "other"}}); err == nil {
		t.Error("wrong backbone accepted")
	}
	if _, err := OpenFeatureStore(filepath.Join(t.TempDir(), "new"), nil); err == nil {
		t.Error("created a store without a dimension")
	}
}

// writeAbandoned stores names with no checkpoint after the store is created
// and drops the store as a crash would: without syncing or writing the
// index.
func writeAbandoned(t *testing.T, dir string, dim int, names []string) {
	t.Helper()
	s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone, CheckpointEvery: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if _, err := s.Put(n, testVector(n, dim)); err != nil {
			t.Fatal(err)
		}
	}
	s.release()
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
		if err := os.Truncate(data, 5*rec+rec/2); err != nil {
			t.Fatal(err)
		}
		s, err := OpenFeatureStore(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Len() != 5 {
			t.Fatalf("recovered %d records, want 5", s.Len())
		}
		checkStoreEntries(t, s, names[:5])
		if fi, _ := os.Stat(data); fi.Size() != 5*rec {
			t.Fatalf("data file has %d bytes, want %d", fi.Size(), 5*rec)
		}
		// New records go after the recovered ones.
		if i, err := s.Put("f", testVector("f", dim)); err != nil || i != 5 {
			t.Fatalf("Put after recovery: %d, %v", i, err)
		}
		s.Close()
		s, err = OpenFeatureStore(dir, &StoreOptions{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		checkStoreEntries(t, s, names[:6])
	})

	t.Run("corrupt record", func(t *testing.T) {
		dir := t.TempDir()
		writeAbandoned(t, dir, dim, names)
		// Flip a feature byte of record 3: it and everything after are
		// dropped, as a torn write would be.
		f, err := os.OpenFile(filepath.Join(dir, storeDataFile), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte{0x55}, 3*rec+storeHeaderSize+10)
		f.Close()
		s, err := OpenFeatureStore(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Len() != 3 {
			t.Fatalf("recovered %d records, want 3", s.Len())
		}
		checkStoreEntries(t, s, names[:3])
	})

	t.Run("lost index", func(t *testing.T) {
		dir := t.TempDir()
		writeAbandoned(t, dir, dim, names)
		os.Remove(filepath.Join(dir, storeIndexFile))
		if _, err := OpenFeatureStore(dir, nil); err == nil || !strings.Contains(err.Error(), "lost its index") {
			t.Fatalf("no index, no dimension: got %v", err)
		}
		s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if s.Len() != len(names) {
			t.Fatalf("rebuilt %d records, want %d", s.Len(), len(names))
		}
		checkStoreEntries(t, s, names)
	})

	t.Run("damaged files", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			s.Put(n, testVector(n, dim))
		}
		s.Close()
		// The data file lost records the index lists.
		data := filepath.Join(dir, storeDataFile)
		os.Truncate(data, 7*rec)
		_, err = OpenFeatureStore(dir, nil)
		var fe *FormatError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "index lists 8 records") {
			t.Fatalf("short data file: got %v", err)
		}
		// A malformed index.
		idx := filepath.Join(dir, storeIndexFile)
		os.WriteFile(idx, []byte(`{"format":"style feature store","version":1,"dim":64,"record_bytes":1,"count":0}`), 0o644)
		if _, err := OpenFeatureStore(dir, nil); !errors.As(err, &fe) || fe.Path != idx {
			t.Fatalf("bad record size: got %v", err)
		}
		os.WriteFile(idx, []byte(`{"format":`), 0o644)
		if _, err := OpenFeatureStore(dir, nil); !errors.Is(err, ErrFormat) {
			t.Fatalf("truncated index: got %v", err)
		}
	})

	t.Run("verify", func(t *testing.T) {
		dir := t.TempDir()
		s, err := OpenFeatureStore(dir, &StoreOptions{Dim: dim, Backbone: storeTestBackbone})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for _, n := range names {
			s.Put(n, testVector(n, dim))
		}
		s.Sync()
		f, _ := os.OpenFile(filepath.Join(dir, storeDataFile), os.O_RDWR, 0)
		f.WriteAt([]byte{0x55}, 6*rec+storeHeaderSize)
		f.Close()
		var fe *FormatError
		if err := s.Verify(context.Background()); !errors.As(err, &fe) || fe.Offset != 6*rec {
			t.Fatalf("Verify: got %v, want a FormatError at offset %d", err, 6*rec)
		}
	})
}

const benchDim = 25088 // VGG16 pool5: 512 x 7 x 7

func BenchmarkFeatureStorePut(b *testing.B) {
	s, err := OpenFeatureStore(b.TempDir(), &StoreOptions{Dim: benchDim, Backbone: storeTestBackbone})
	if err != nil {
		b.Fatal(err)
	}
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
	if err := s.Sync(); err != nil { // durability is part of the cost
		b.Fatal(err)
	}
}

func BenchmarkFeatureStoreFeatureTo(b *testing.B) {
	s, err := OpenFeatureStore(b.TempDir(), &StoreOptions{Dim: benchDim, Backbone: storeTestBackbone})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 64
	for i := range n {
		n := fmt.Sprint(i)
		if _, err := s.Put(n, testVector(n, benchDim)); err != nil {
			b.Fatal(err)
		}
	}
	s.Sync() // maps the records where supported
	dst := make([]float32, benchDim)
	run := func(b *testing.B) {
		b.SetBytes(4 * benchDim) // float32 features out
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			s.FeatureTo(dst, i*7%n)
		}
	}
	if s.mapped.Load() != nil {
		b.Run("mmap", run)
	}
	s.mapped.Store(nil)
	b.Run("ReadAt", run)
}

func BenchmarkFloat16Encode(b *testing.B) {
	v := testVector("bench", benchDim)
	buf := make([]byte, 2*benchDim)
	b.SetBytes(4 * benchDim)
	for b.Loop() {
		float32ToHalves(buf, v)
	}
}
