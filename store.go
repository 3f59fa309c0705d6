package style

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/stylespace/style/internal/atomicfile"
	"github.com/stylespace/style/internal/engine"
)

// The feature store keeps one feature vector per image name in a folder:
//
//	features.f16  fixed-size records, appended in the order they are stored
//	index.json    a checkpoint: dimension, backbone, names and maxima of the
//	              first count records, replaced atomically
//	lock          held with flock(2) by a writer, where supported
//
// A record is storeHeaderSize bytes of header followed by Dim float16
// values (little endian), padded with zeros to a multiple of 8 bytes:
//
//	offset 0   "SFR1"
//	offset 4   CRC-32C (Castagnoli) of bytes 8 to the end of the record
//	offset 8   float32: largest value of the record (after rounding)
//	offset 12  uint16: name length n, 1..maxStoreNameLen
//	offset 14  uint16: 0
//	offset 16  name, n bytes, then zeros up to offset 256
//	offset 256 Dim x float16
//
// The index is trusted for the records it covers. Records past it (stored
// after the last checkpoint) are checked on open, one by one, and kept while
// their magic, checksum and name are valid; the first bad record and
// everything after it (a torn write) is cut off. Every record is checked
// again, once per FeatureStore value, the first time it is read.
const (
	storeDataFile   = "features.f16"
	storeIndexFile  = "index.json"
	storeLockFile   = "lock"
	storeHeaderSize = 256
	storeMagic      = "SFR1"
	storeFormat     = "style feature store"
	storeVersion    = 1

	// maxStoreNameLen is the longest name, in bytes, a FeatureStore
	// accepts: 240.
	maxStoreNameLen = storeHeaderSize - 16
)

var storeCRCTable = crc32.MakeTable(crc32.Castagnoli)

// StoreOptions configures OpenFeatureStore. The zero value of each field
// selects its default.
type StoreOptions struct {
	// Dim is the length of the feature vectors. It is required to create a
	// store (or to rebuild a lost index); for an existing store it must be
	// 0 or match.
	Dim int
	// Backbone is recorded when the store is created; for an existing
	// store it must be the zero Backbone or match.
	Backbone Backbone
	// ReadOnly opens an existing store for reading only: nothing is
	// written, no lock is taken, and records past the last checkpoint are
	// checked but not cut off.
	ReadOnly bool
	// CheckpointEvery is how many records Put stores between checkpoints
	// (an fsync of the data and a rewrite of the index); 0 means 256.
	CheckpointEvery int
}

// FeatureStore is a feature-vector store on disk, one vector per image
// name, that survives interruption: each Put appends one checksummed
// record, and a store reopened after a crash keeps every complete record
// and drops a torn one. It implements FeatureSource; index i is the i-th
// vector stored.
//
// Vectors are kept as IEEE 754 half precision (float16), halving the disk
// and memory of float32: the 55,565 VGG16 vectors of 25,088 floats of the
// study take 2.8 GB instead of 5.6 GB. Rounding to float16 is to nearest,
// with a relative error of at most 2^-11 (4.9e-4) for values above 6.1e-5
// and an absolute error of at most 2^-25 (3e-8) below; after the head's
// MinMax scaling (division by the largest feature) every input moves by
// less than 4.9e-4, well under what changes a style distance.
//
// On Linux, macOS and the BSDs the data file is memory-mapped for reading,
// so the vectors live in the operating system's page cache rather than the
// Go heap: a store larger than free memory still works, with the kernel
// paging records in. Elsewhere, and for records stored after the latest
// mapping, FeatureTo reads the record with one positioned read.
//
// # Damaged records
//
// Every record carries a CRC-32C checksum, and the first read of each
// record (by this FeatureStore value) checks it, with the record's name
// against the index: a disk that flips bits, or a file changed behind the
// store's back, never feeds wrong numbers to a head. Checked records are
// remembered, so later reads cost only the conversion (the check runs at
// several GB/s, a few microseconds for a VGG16 record).
//
// FeatureTo has no error result, so it cannot report a damaged record: it
// fills dst with NaN instead (which Catalog.Add rejects and which makes
// any distance NaN). The functions of this package that read a
// FeatureSource for a result (Trainer.Fit, SiameseHead.PairDistances,
// FeatureScale and TSNE.Fit) check every record they will read before
// they start, and return a *FormatError naming the first damaged record
// (its index, name and byte offset in features.f16) and how many there
// are, rather than train or measure on damaged data. A record that cannot
// be read at all (an I/O error) is reported the same way.
//
// All methods are safe for concurrent use. Put serialises writers; reads do
// not lock. Close must not run concurrently with other calls.
type FeatureStore struct {
	dir      string
	dim      int
	recSize  int64
	backbone Backbone
	readOnly bool
	every    int

	f    *os.File
	lock *os.File

	count    atomic.Int64
	mapped   atomic.Pointer[storeMapping]
	maps     []*storeMapping // every mapping made, released by Close
	verified atomic.Pointer[storeBitmap]

	mu      sync.RWMutex
	names   []string
	index   map[string]int
	maxes   []float32
	pending int // records since the last checkpoint
	closed  bool

	bufs sync.Pool // *[]byte of recSize

	// A sharded output (see OpenFeatureStore) is read through the
	// stores of its shards: vectors starts[k] to starts[k+1]-1 are those
	// of shards[k]. names, index and maxes cover them all; f is nil.
	shards []*FeatureStore
	starts []int
}

type storeMapping struct {
	data []byte
	n    int64 // records covered
}

// storeBitmap is a set of record indices, read and updated without locks.
// It is replaced by a larger copy when the store grows; a bit set in the
// old copy meanwhile is lost, which only means checking that record again.
type storeBitmap struct{ w []atomic.Uint64 }

type storeIndex struct {
	Format      string    `json:"format"`
	Version     int       `json:"version"`
	Dim         int       `json:"dim"`
	RecordBytes int64     `json:"record_bytes"`
	Backbone    Backbone  `json:"backbone"`
	Count       int       `json:"count"`
	Names       []string  `json:"names"`
	Max         []float32 `json:"max"`
}

func storeRecordSize(dim int) int64 {
	return (storeHeaderSize + 2*int64(dim) + 7) &^ 7
}

// OpenFeatureStore opens the feature store in folder dir, creating it (and
// the folder) if it does not exist unless opts.ReadOnly is set. opts may be
// nil to open an existing store as it is. A store being written by another
// process is refused where file locks are supported.
//
// A malformed index or a record the index covers that does not fit the
// data file gives a *FormatError. If index.json is missing but data is
// present (the index was deleted), the index is rebuilt by checking every
// record, which needs opts.Dim.
//
// # Sharded outputs
//
// dir may also name the manifest of a sharded output (an extraction split
// over many machines, as examples/beam writes it), or the folder holding
// that manifest, manifest.json, and no feature store. The shards' feature
// stores are then opened as one store, always read-only (Put returns an
// error saying so): its vectors are those of the shards in manifest order,
// each shard's in its own order. Before anything is opened, the SHA-256
// of every file of every shard's store is checked against the manifest
// (reading all of them once). The shards must hold as many vectors as the
// manifest records, the same dimension and the manifest's backbone, and
// no name may be in two shards; opts.Dim and opts.Backbone, if set, must
// match. A problem (a malformed manifest, a path leaving the manifest's
// folder, a missing file, a checksum or count that does not match) gives
// a *FormatError naming the manifest and the shard.
//
// The manifest is JSON:
//
//	{
//	  "format": "style sharded output",
//	  "version": 1,
//	  "backbone": {"Arch": "vgg16", "Preprocess": "torch", "SHA256": "<hex>", "Seed": 0, "Divisor": 1},
//	  "shards": [
//	    {
//	      "features": {"path": "shards/00000-of-00002/features", "count": 12,
//	                   "sha256": {"features.f16": "<hex>", "index.json": "<hex>"}},
//	      "catalog":  {"path": "shards/00000-of-00002/catalog.stylecat", "count": 12,
//	                   "sha256": "<hex>"}
//	    },
//	    ...
//	  ]
//	}
//
// Paths are relative to the manifest's folder, with forward slashes, and
// must stay inside it (no "..", not absolute, not shared by two shards).
// Each shard has a feature store folder ("features"), a catalogue file
// ("catalog", see LoadCatalog), or both; "count" is the number of vectors
// or items of that part, "sha256" the hex SHA-256 of each file read (for a
// store, exactly its two files). The backbone is checked when not the zero
// Backbone. Other fields are ignored.
func OpenFeatureStore(dir string, opts *StoreOptions) (store *FeatureStore, err error) {
	var o StoreOptions
	if opts != nil {
		o = *opts
	}
	if o.Dim < 0 {
		return nil, fmt.Errorf("style: feature store %s: negative dimension %d", dir, o.Dim)
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 256
	}
	if m := shardManifestOf(dir); m != "" {
		return openShardedStore(m, o)
	}
	return openStoreFolder(dir, o)
}

// openStoreFolder opens the feature store in folder dir, as
// OpenFeatureStore does; o has its defaults resolved.
func openStoreFolder(dir string, o StoreOptions) (store *FeatureStore, err error) {
	s := &FeatureStore{dir: dir, readOnly: o.ReadOnly, every: o.CheckpointEvery, index: make(map[string]int)}
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	dataPath := filepath.Join(dir, storeDataFile)
	if o.ReadOnly {
		if s.f, err = os.Open(dataPath); err != nil {
			return nil, fmt.Errorf("style: feature store: %w", err)
		}
	} else {
		if err = os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("style: feature store: %w", err)
		}
		if s.lock, err = os.OpenFile(filepath.Join(dir, storeLockFile), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
			return nil, fmt.Errorf("style: feature store: %w", err)
		}
		if err = lockStoreFile(s.lock); err != nil {
			return nil, fmt.Errorf("style: feature store %s is in use by another writer: %w", dir, err)
		}
		if s.f, err = os.OpenFile(dataPath, os.O_RDWR|os.O_CREATE, 0o644); err != nil {
			return nil, fmt.Errorf("style: feature store: %w", err)
		}
	}
	fi, err := s.f.Stat()
	if err != nil {
		return nil, fmt.Errorf("style: feature store: %w", err)
	}
	size := fi.Size()

	idxPath := filepath.Join(dir, storeIndexFile)
	idx, err := readStoreIndex(idxPath)
	switch {
	case err == nil:
		if o.Dim != 0 && o.Dim != idx.Dim {
			return nil, fmt.Errorf("style: feature store %s holds vectors of %d floats, not %d", dir, idx.Dim, o.Dim)
		}
		if o.Backbone != (Backbone{}) && o.Backbone != idx.Backbone {
			return nil, fmt.Errorf("style: feature store %s holds features of backbone %+v, not %+v", dir, idx.Backbone, o.Backbone)
		}
		s.dim, s.backbone = idx.Dim, idx.Backbone
		s.recSize = storeRecordSize(s.dim)
		if int64(idx.Count)*s.recSize > size {
			return nil, &FormatError{Path: idxPath, Offset: -1,
				Msg: fmt.Sprintf("index lists %d records but %s holds only %d bytes", idx.Count, storeDataFile, size)}
		}
		for i, n := range idx.Names {
			s.names = append(s.names, n)
			s.index[n] = i
		}
		s.maxes = idx.Max
	case errors.Is(err, fs.ErrNotExist):
		if o.Dim == 0 {
			if size == 0 {
				return nil, fmt.Errorf("style: feature store %s does not exist; creating one needs a dimension", dir)
			}
			return nil, fmt.Errorf("style: feature store %s has lost its index; rebuilding it needs a dimension", dir)
		}
		s.dim, s.backbone = o.Dim, o.Backbone
		s.recSize = storeRecordSize(s.dim)
		s.pending = 1 // write an index
	default:
		return nil, err
	}
	s.count.Store(int64(len(s.names)))

	// Recover records stored after the last checkpoint.
	buf := make([]byte, s.recSize)
	for off := s.count.Load() * s.recSize; off+s.recSize <= size; off += s.recSize {
		if _, err := s.f.ReadAt(buf, off); err != nil {
			return nil, fmt.Errorf("style: feature store: %w", err)
		}
		name, mx, bad := s.checkRecord(buf)
		if bad != "" {
			break
		}
		if _, dup := s.index[name]; dup {
			break
		}
		s.index[name] = len(s.names)
		s.names = append(s.names, name)
		s.maxes = append(s.maxes, mx)
		s.count.Add(1)
		s.pending++
	}
	if !s.readOnly {
		if end := s.count.Load() * s.recSize; size > end {
			if err := s.f.Truncate(end); err != nil {
				return nil, fmt.Errorf("style: feature store: %w", err)
			}
			s.pending++
		}
		if s.pending > 0 {
			if err := s.checkpointLocked(); err != nil {
				return nil, err
			}
		}
	}
	s.remap()
	s.bufs.New = func() any { b := make([]byte, s.recSize); return &b }
	return s, nil
}

func readStoreIndex(path string) (*storeIndex, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("style: feature store: %w", err)
	}
	var idx storeIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, &FormatError{Path: path, Offset: -1, Msg: "malformed index", Err: err}
	}
	// Indexes written before Backbone had Arch, Seed and Divisor name the
	// architecture "Name" and record no divisor, which is then 1.
	var legacy struct {
		Backbone struct {
			Name    string
			Divisor *int
		} `json:"backbone"`
	}
	if json.Unmarshal(data, &legacy) == nil && legacy.Backbone.Divisor == nil {
		idx.Backbone.Arch, idx.Backbone.Divisor = cmp.Or(idx.Backbone.Arch, Arch(legacy.Backbone.Name)), 1
	}
	bad := func(msg string, args ...any) error {
		return &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf(msg, args...)}
	}
	switch {
	case idx.Format != storeFormat:
		return nil, bad("not a feature store index (format %q)", idx.Format)
	case idx.Version != storeVersion:
		return nil, bad("unsupported version %d", idx.Version)
	case idx.Dim <= 0 || idx.Dim > 1<<30:
		return nil, bad("bad dimension %d", idx.Dim)
	case idx.RecordBytes != storeRecordSize(idx.Dim):
		return nil, bad("record size %d does not match dimension %d", idx.RecordBytes, idx.Dim)
	case idx.Count != len(idx.Names) || idx.Count != len(idx.Max):
		return nil, bad("count %d does not match %d names and %d maxima", idx.Count, len(idx.Names), len(idx.Max))
	}
	seen := make(map[string]struct{}, len(idx.Names))
	for i, n := range idx.Names {
		if !validStoreName(n) {
			return nil, bad("entry %d: invalid name %q", i, n)
		}
		if _, dup := seen[n]; dup {
			return nil, bad("entry %d: duplicate name %q", i, n)
		}
		seen[n] = struct{}{}
	}
	return &idx, nil
}

func validStoreName(n string) bool {
	return n != "" && len(n) <= maxStoreNameLen && utf8.ValidString(n)
}

// checkRecord validates one record and returns its name and maximum, or
// what is wrong with it.
func (s *FeatureStore) checkRecord(rec []byte) (name string, max float32, bad string) {
	if string(rec[:4]) != storeMagic {
		return "", 0, "bad magic"
	}
	if binary.LittleEndian.Uint32(rec[4:]) != crc32.Checksum(rec[8:], storeCRCTable) {
		return "", 0, "checksum mismatch"
	}
	n := int(binary.LittleEndian.Uint16(rec[12:]))
	if n < 1 || n > maxStoreNameLen {
		return "", 0, "bad name length"
	}
	name = string(rec[16 : 16+n])
	if !validStoreName(name) {
		return "", 0, "invalid name"
	}
	return name, math.Float32frombits(binary.LittleEndian.Uint32(rec[8:])), ""
}

// remap maps the data file again when at least half of its records are not
// mapped. Older mappings stay valid (readers may hold them) until Close.
func (s *FeatureStore) remap() {
	n := s.count.Load()
	m := s.mapped.Load()
	if n == 0 || (m != nil && n < 2*m.n) {
		return
	}
	data, err := mmapStoreFile(s.f, n*s.recSize)
	if err != nil || data == nil {
		return // keep reading with ReadAt
	}
	nm := &storeMapping{data: data, n: n}
	s.maps = append(s.maps, nm)
	s.mapped.Store(nm)
}

// Len returns the number of stored vectors.
func (s *FeatureStore) Len() int { return int(s.count.Load()) }

// Dim returns the length of the vectors.
func (s *FeatureStore) Dim() int { return s.dim }

// Backbone returns the backbone recorded when the store was created.
func (s *FeatureStore) Backbone() Backbone { return s.backbone }

// Index returns the index of the vector stored for name.
func (s *FeatureStore) Index(name string) (int, bool) {
	s.mu.RLock()
	i, ok := s.index[name]
	s.mu.RUnlock()
	return i, ok
}

// Name returns the name of vector i. It panics if i is out of range.
func (s *FeatureStore) Name(i int) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if i < 0 || i >= len(s.names) {
		panic(fmt.Sprintf("style: FeatureStore.Name: index %d out of range [0,%d)", i, len(s.names)))
	}
	return s.names[i]
}

// maxAll returns the largest value of all stored vectors (as stored, after
// rounding to float16), or 0 if the store is empty: FeatureScale's fast
// path.
func (s *FeatureStore) maxAll() float32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var m float32
	for i, v := range s.maxes {
		if i == 0 || v > m {
			m = v
		}
	}
	return m
}

// maxOf returns the largest value of the vectors with the given indices
// (for example those of the training pairs), or 0 if idx is empty:
// FeatureScale's fast path. It panics if an index is out of range.
func (s *FeatureStore) maxOf(idx []int) float32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var m float32
	for k, i := range idx {
		if i < 0 || i >= len(s.maxes) {
			panic(fmt.Sprintf("style: FeatureStore.maxOf: index %d out of range [0,%d)", i, len(s.maxes)))
		}
		if k == 0 || s.maxes[i] > m {
			m = s.maxes[i]
		}
	}
	return m
}

// FeatureTo copies vector i, converted to float32, into dst and returns
// dst. The first read of a record checks it (see "Damaged records" in
// the type's documentation): a damaged record, or one that cannot be read,
// fills dst with NaN. It panics if i is out of range or len(dst) != Dim().
func (s *FeatureStore) FeatureTo(dst []float32, i int) []float32 {
	if i < 0 || int64(i) >= s.count.Load() {
		panic(fmt.Sprintf("style: FeatureStore.FeatureTo: index %d out of range [0,%d)", i, s.count.Load()))
	}
	if len(dst) != s.dim {
		panic(fmt.Sprintf("style: FeatureStore.FeatureTo: dst has length %d, want %d", len(dst), s.dim))
	}
	err := s.readRecord(i, func(rec []byte) {
		halvesToFloat32(dst, rec[storeHeaderSize:])
	})
	if err != nil {
		nan := float32(math.NaN())
		for k := range dst {
			dst[k] = nan
		}
	}
	return dst
}

var _ FeatureSource = (*FeatureStore)(nil)

// readRecord calls use with record i, which is checked first unless it was
// checked before, and returns the reason it is damaged or unreadable
// instead. rec is valid only during the call.
func (s *FeatureStore) readRecord(i int, use func(rec []byte)) error {
	if s.shards != nil {
		part, j := s.shardOf(i)
		return part.readRecord(j, use)
	}
	off := int64(i) * s.recSize
	var rec []byte
	if m := s.mapped.Load(); m != nil && int64(i) < m.n {
		rec = m.data[off : off+s.recSize : off+s.recSize]
	} else {
		bp := s.bufs.Get().(*[]byte)
		defer s.bufs.Put(bp)
		if _, err := s.f.ReadAt(*bp, off); err != nil {
			return s.recordError(i, fmt.Sprintf("cannot be read: %v", err))
		}
		rec = *bp
	}
	if !s.isVerified(i) {
		name, _, bad := s.checkRecord(rec)
		if bad == "" {
			if want := s.Name(i); name != want {
				bad = fmt.Sprintf("holds %q", name)
			}
		}
		if bad != "" {
			return s.recordError(i, bad)
		}
		s.setVerified(i)
	}
	if use != nil {
		use(rec)
	}
	return nil
}

// recordError is the error for damaged record i.
func (s *FeatureStore) recordError(i int, why string) *FormatError {
	return &FormatError{Path: filepath.Join(s.dir, storeDataFile), Offset: int64(i) * s.recSize,
		Msg: fmt.Sprintf("record %d (%q) is damaged: %s", i, s.Name(i), why)}
}

// isVerified reports whether record i was checked before. The records of
// a sharded store are checked, and remembered, by their shard's store.
func (s *FeatureStore) isVerified(i int) bool {
	if s.shards != nil {
		part, j := s.shardOf(i)
		return part.isVerified(j)
	}
	b := s.verified.Load()
	return b != nil && i>>6 < len(b.w) && b.w[i>>6].Load()&(1<<(i&63)) != 0
}

// setVerified records that record i is sound, growing the bitmap to the
// store's size if needed.
func (s *FeatureStore) setVerified(i int) {
	for {
		b := s.verified.Load()
		if b != nil && i>>6 < len(b.w) {
			b.w[i>>6].Or(1 << (i & 63))
			return
		}
		words := max(i>>6+1, int(s.count.Load()+63)>>6)
		if b != nil {
			words = max(words, 2*len(b.w))
		}
		nb := &storeBitmap{w: make([]atomic.Uint64, words)}
		if b != nil {
			for k := range b.w {
				nb.w[k].Store(b.w[k].Load())
			}
		}
		s.verified.CompareAndSwap(b, nb)
	}
}

// checkRecords checks the records idx (all of them if idx is nil) that
// were not checked before, on all CPUs, and returns a *FormatError naming
// the first damaged one (in index order) and the number of damaged ones,
// or ctx.Err() if ctx is cancelled. Indices out of range are ignored.
func (s *FeatureStore) checkRecords(ctx context.Context, idx []int) error {
	n := int(s.count.Load())
	var todo []int
	add := func(i int) {
		if i >= 0 && i < n && !s.isVerified(i) {
			todo = append(todo, i)
		}
	}
	if idx == nil {
		for i := range n {
			add(i)
		}
	} else {
		for _, i := range idx {
			add(i)
		}
		slices.Sort(todo)
		todo = slices.Compact(todo)
	}
	errs := make([]error, len(todo))
	engine.For(engine.Workers(0), len(todo), func(_, k int) {
		if k%64 == 0 && ctx.Err() != nil {
			return
		}
		errs[k] = s.readRecord(todo[k], nil)
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	var first *FormatError
	bad := 0
	for _, err := range errs {
		if err != nil {
			if bad == 0 {
				first = err.(*FormatError)
			}
			bad++
		}
	}
	switch {
	case bad == 2:
		first.Msg += " (and 1 more damaged record)"
	case bad > 2:
		first.Msg += fmt.Sprintf(" (and %d more damaged records)", bad-1)
	}
	if first != nil {
		return first
	}
	return nil
}

// recordChecker is implemented by feature sources whose entries can be
// found damaged when read, which FeatureTo cannot report: FeatureStore.
type recordChecker interface {
	checkRecords(ctx context.Context, idx []int) error
}

// checkEntries checks, for a source that can tell, that the entries idx
// can be read, and returns the error naming the first that cannot. The
// readers of this package call it, checkFeatures or checkAllEntries before
// reading a FeatureSource for a result.
func checkEntries(ctx context.Context, src FeatureSource, idx []int) error {
	if rc, ok := src.(recordChecker); ok && len(idx) > 0 {
		return rc.checkRecords(ctx, idx)
	}
	return nil
}

// checkAllEntries is checkEntries for every entry of src.
func checkAllEntries(ctx context.Context, src FeatureSource) error {
	if rc, ok := src.(recordChecker); ok {
		return rc.checkRecords(ctx, nil)
	}
	return nil
}

// checkFeatures is checkEntries for the entries that pairs refer to.
func checkFeatures(ctx context.Context, src FeatureSource, pairs ...[]LabeledPair) error {
	if _, ok := src.(recordChecker); !ok {
		return nil
	}
	var idx []int
	for _, set := range pairs {
		for _, p := range set {
			idx = append(idx, p.A, p.B)
		}
	}
	return checkEntries(ctx, src, idx)
}

// storeInputError reports a name or vector that Put cannot store; the
// store itself is fine.
type storeInputError struct{ msg string }

func (e *storeInputError) Error() string { return e.msg }

// Put stores features under name, rounded to float16, and returns its
// index. It fails if name is already stored (with an error matching
// fs.ErrExist), is empty, invalid UTF-8 or longer than 240 bytes, if a
// value is NaN, infinite or beyond ±65504 (the largest float16), or if the
// store was opened read-only. Every StoreOptions.CheckpointEvery records
// it checkpoints the store: it syncs the data and rewrites the index. It
// panics if len(features) != Dim().
func (s *FeatureStore) Put(name string, features []float32) (int, error) {
	if len(features) != s.dim {
		panic(fmt.Sprintf("style: FeatureStore.Put: %d features, want %d", len(features), s.dim))
	}
	if s.readOnly {
		return 0, s.errReadOnly()
	}
	rec, err := s.encodeRecord(name, features)
	if err != nil {
		return 0, err
	}
	defer s.bufs.Put(rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, err := s.appendLocked(name, *rec)
	if err != nil {
		return 0, err
	}
	if s.pending >= s.every {
		if err := s.checkpointLocked(); err != nil {
			return i, err
		}
	}
	return i, nil
}

func (s *FeatureStore) errReadOnly() error {
	if s.shards != nil {
		return fmt.Errorf("style: feature store %s is read-only: a sharded output is opened for reading only", s.dir)
	}
	return fmt.Errorf("style: feature store %s is read-only", s.dir)
}

// encodeRecord returns the record of features stored under name, in a
// buffer of s.bufs, or a *storeInputError if they cannot be stored. It
// does not lock the store.
func (s *FeatureStore) encodeRecord(name string, features []float32) (*[]byte, error) {
	if !validStoreName(name) {
		return nil, &storeInputError{fmt.Sprintf("style: feature store: name %q is empty, longer than %d bytes or not UTF-8", name, maxStoreNameLen)}
	}
	bp := s.bufs.Get().(*[]byte)
	rec := *bp
	clear(rec)
	copy(rec, storeMagic)
	mx, bad := float32ToHalves(rec[storeHeaderSize:storeHeaderSize+2*s.dim], features)
	if bad >= 0 {
		s.bufs.Put(bp)
		return nil, &storeInputError{fmt.Sprintf("style: feature store: %s: feature %d is %v, outside the float16 range", name, bad, features[bad])}
	}
	binary.LittleEndian.PutUint32(rec[8:], math.Float32bits(mx))
	binary.LittleEndian.PutUint16(rec[12:], uint16(len(name)))
	copy(rec[16:], name)
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(rec[8:], storeCRCTable))
	return bp, nil
}

// appendLocked writes rec, a record encodeRecord made for name, after the
// last one and returns its index. s.mu must be held.
func (s *FeatureStore) appendLocked(name string, rec []byte) (int, error) {
	if s.closed {
		return 0, errors.New("style: feature store is closed")
	}
	if _, dup := s.index[name]; dup {
		return 0, fmt.Errorf("style: feature store: %q: %w", name, fs.ErrExist)
	}
	i := len(s.names)
	if _, err := s.f.WriteAt(rec, int64(i)*s.recSize); err != nil {
		return 0, fmt.Errorf("style: feature store: %w", err)
	}
	s.names = append(s.names, name)
	s.index[name] = i
	s.maxes = append(s.maxes, math.Float32frombits(binary.LittleEndian.Uint32(rec[8:])))
	s.count.Store(int64(i + 1))
	s.pending++
	return i, nil
}

// sync checkpoints the store, making every stored vector durable: it
// syncs the data file and rewrites the index.
func (s *FeatureStore) sync() error {
	if s.readOnly {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("style: feature store is closed")
	}
	return s.checkpointLocked()
}

func (s *FeatureStore) checkpointLocked() error {
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("style: feature store: %w", err)
	}
	idx := storeIndex{
		Format: storeFormat, Version: storeVersion, Dim: s.dim, RecordBytes: s.recSize,
		Backbone: s.backbone, Count: len(s.names), Names: s.names, Max: s.maxes,
	}
	if idx.Names == nil {
		idx.Names, idx.Max = []string{}, []float32{}
	}
	err := atomicfile.Write(filepath.Join(s.dir, storeIndexFile), func(w io.Writer) error {
		return json.NewEncoder(w).Encode(&idx)
	})
	if err != nil {
		return fmt.Errorf("style: %w", err)
	}
	s.pending = 0
	s.remap()
	return nil
}

// Close checkpoints the store and releases its files. The store must not be
// used afterwards.
func (s *FeatureStore) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	var err error
	if !s.readOnly && s.pending > 0 {
		err = s.checkpointLocked()
	}
	if !s.readOnly && err == nil {
		// Drop anything a failed write left past the last record.
		if terr := s.f.Truncate(int64(len(s.names)) * s.recSize); terr != nil {
			err = fmt.Errorf("style: feature store: %w", terr)
		}
	}
	s.closed = true
	s.mu.Unlock()
	if rerr := s.release(); err == nil {
		err = rerr
	}
	return err
}

// release unmaps and closes the files without a checkpoint.
func (s *FeatureStore) release() error {
	var err error
	s.mapped.Store(nil)
	for _, m := range s.maps {
		if e := munmapStoreFile(m.data); e != nil && err == nil {
			err = fmt.Errorf("style: feature store: %w", e)
		}
	}
	s.maps = nil
	for _, part := range s.shards {
		if e := part.Close(); e != nil && err == nil {
			err = e
		}
	}
	if s.f != nil {
		if e := s.f.Close(); e != nil && err == nil {
			err = fmt.Errorf("style: feature store: %w", e)
		}
	}
	if s.lock != nil {
		s.lock.Close() // releases the flock
	}
	return err
}
