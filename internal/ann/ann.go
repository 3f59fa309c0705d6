package ann

import (
	"errors"
	"fmt"
	"math"
	"sync"
)

// Defaults and limits of the configuration.
const (
	DefaultM              = 16  // Config.M when zero
	DefaultEfConstruction = 200 // Config.EfConstruction when zero
	DefaultEf             = 64  // Search's ef when zero or less
	MaxM                  = 128 // largest Config.M
	MaxEfConstruction     = 1 << 16
	MaxLevel              = 16 // levels above this are capped
)

// Config sets how Build constructs an index. A nil *Config means the
// defaults. Build never modifies it.
type Config struct {
	// M is the number of neighbours a node links to on each upper layer,
	// and half the number it may keep on the bottom layer. 0 means
	// DefaultM; otherwise it must be in [2, MaxM]. Larger values raise
	// recall at a given ef and cost memory (4·(2M+1) bytes per item) and
	// build time.
	M int

	// EfConstruction is the size of the candidate list of the neighbour
	// searches while building. 0 means DefaultEfConstruction; otherwise it
	// must be in [1, MaxEfConstruction]. Values below M are raised to M.
	EfConstruction int

	// Seed draws the nodes' levels. The same vectors, Config and Seed
	// give the same index, byte for byte, whatever Workers is.
	Seed uint64

	// Workers is the number of goroutines building the index; 0 means
	// runtime.GOMAXPROCS(0). Negative values are an error.
	Workers int
}

// Result is one neighbour found by Search.
type Result struct {
	Index int32   // row of the item in the vectors
	Dist  float32 // squared Euclidean distance to the query
}

// Index is a hierarchical navigable small-world graph over a set of
// vectors it does not own. It is immutable once built or read, and safe
// for concurrent use by several goroutines.
type Index struct {
	vecs []float32 // n×dim, row-major, the caller's
	dim  int
	n    int
	m    int // neighbours per node on the upper layers
	m0   int // neighbours per node on the bottom layer: 2m
	efc  int
	seed uint64

	levels   []uint8  // top layer of each node
	entry    int32    // node the searches start from; -1 when empty
	maxLevel int      // levels[entry]
	links0   []uint32 // bottom layer: per node a count and m0 slots
	upperOff []uint32 // per node with levels > 0: offset of its layer-1 block in upper
	upper    []uint32 // layers 1..levels[i] of each node: a count and m slots each

	fingerprint uint32 // CRC-32C of the vectors

	pool sync.Pool // *searcher
}

// Len returns the number of items indexed.
func (ix *Index) Len() int { return ix.n }

// Dim returns the length of the vectors.
func (ix *Index) Dim() int { return ix.dim }

// neighbors returns the neighbour list of node i on layer l.
func (ix *Index) neighbors(i int32, l int) []uint32 {
	if l == 0 {
		b := int(i) * (ix.m0 + 1)
		return ix.links0[b+1 : b+1+int(ix.links0[b])]
	}
	b := int(ix.upperOff[i]) + (l-1)*(ix.m+1)
	return ix.upper[b+1 : b+1+int(ix.upper[b])]
}

// setNeighbors replaces the neighbour list of node i on layer l, whose
// capacity is at least len(ids).
func (ix *Index) setNeighbors(i int32, l int, ids []uint32) {
	var blk []uint32
	if l == 0 {
		b := int(i) * (ix.m0 + 1)
		blk = ix.links0[b : b+1+ix.m0]
	} else {
		b := int(ix.upperOff[i]) + (l-1)*(ix.m+1)
		blk = ix.upper[b : b+1+ix.m]
	}
	blk[0] = uint32(len(ids))
	copy(blk[1:], ids)
	clear(blk[1+len(ids):])
}

// vec returns the vector of node i.
func (ix *Index) vec(i int32) []float32 {
	d := ix.dim
	return ix.vecs[int(i)*d : int(i)*d+d : int(i)*d+d]
}

// memBytes returns the memory the index holds besides the vectors.
func (ix *Index) memBytes() int64 {
	return int64(len(ix.levels)) + 4*int64(len(ix.links0)+len(ix.upperOff)+len(ix.upper))
}

// level draws the top layer of node i: ⌊-ln(u)/ln(M)⌋ for a uniform u in
// (0, 1) hashed from the seed and i (SplitMix64), so it does not depend
// on the order of the draws.
func level(seed uint64, i int, m int) int {
	z := seed + uint64(i+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	u := (float64(z>>11) + 0.5) / (1 << 53)
	l := int(-math.Log(u) / math.Log(float64(m)))
	return min(l, MaxLevel)
}

// ErrMismatch is wrapped by the *FormatError Read returns for an index
// built over other vectors than the ones given: a stale index, to be
// rebuilt.
var ErrMismatch = errors.New("index does not match the vectors")

// FormatError reports a malformed index file.
type FormatError struct {
	Path   string // file name given to Read; "" if unknown
	Offset int64  // byte offset of the fault
	Msg    string // what is wrong
	Err    error  // underlying error (io.ErrUnexpectedEOF, ErrMismatch), may be nil
}

func (e *FormatError) Error() string {
	s := "style: "
	if e.Path != "" {
		s += e.Path + ": "
	}
	s += fmt.Sprintf("offset %d: %s", e.Offset, e.Msg)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }
