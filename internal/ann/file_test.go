package ann

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stylespace/style/internal/clustered"
)

// fileTestData returns small vectors and the bytes of their index, with
// upper layers (M = 3 makes many levels).
var fileTestData = sync.OnceValues(func() ([]float32, []byte) {
	const n, d = 150, 6
	vecs := clustered.New(20, d, 3, 3, 0.1).Points(21, n)
	ix, err := Build(context.Background(), vecs, d, &Config{M: 3, EfConstruction: 20, Seed: 22}, nil)
	if err != nil {
		panic(err)
	}
	var buf bytes.Buffer
	if _, err := ix.WriteTo(&buf); err != nil {
		panic(err)
	}
	return vecs, buf.Bytes()
})

const fileTestDim = 6

func readBytes(b []byte, vecs []float32) (*Index, error) {
	return Read(bytes.NewReader(b), int64(len(b)), vecs, fileTestDim, "test.idx")
}

// fixCRCs rewrites the checksums of an index file in place where the
// header's sizes agree with len(b), so that tests and the fuzzer reach
// the checks behind them.
func fixCRCs(b []byte) {
	if len(b) < fileHeaderSize {
		return
	}
	le := binary.LittleEndian
	n := le.Uint64(b[16:])
	m := uint64(le.Uint32(b[24:]))
	words := le.Uint64(b[48:])
	if n < 1<<20 && m <= MaxM && words < 1<<24 {
		sec := []uint64{n, 4 * n * (2*m + 1), 4 * words}
		off := uint64(fileHeaderSize)
		total := off
		for _, s := range sec {
			total += s + 4
		}
		if total == uint64(len(b)) {
			for _, s := range sec {
				le.PutUint32(b[off+s:], crc32.Checksum(b[off:off+s], castagnoli))
				off += s + 4
			}
		}
	}
	le.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
}

// requireFormatError checks that err is a *FormatError at offset off
// (-1: any) whose message contains msg.
func requireFormatError(t testing.TB, err error, off int64, msg string) *FormatError {
	t.Helper()
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	if off >= 0 {
		assert.Equal(t, off, fe.Offset, "%v", err)
	}
	assert.Contains(t, fe.Error(), msg)
	assert.Equal(t, "test.idx", fe.Path)
	return fe
}

// TestRoundTrip checks that Read gives back an index that searches and
// writes exactly as the original, for several shapes.
func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		n, d int
		cfg  Config
	}{
		{0, 3, Config{}},
		{1, 3, Config{}},
		{2, 1, Config{M: 2}},
		{1500, 10, Config{M: 5, EfConstruction: 30, Seed: 1}},
		{1500, 10, Config{M: MaxM, EfConstruction: 10, Seed: 2}},
	} {
		vecs := clustered.New(23, tc.d, 3, 2, 0.1).Points(24, tc.n)
		ix := buildTest(t, vecs, tc.d, &tc.cfg)
		b := indexBytes(t, ix)
		got, err := Read(bytes.NewReader(b), int64(len(b)), vecs, tc.d, "x")
		require.NoError(t, err, "n=%d", tc.n)
		assert.Equal(t, b, indexBytes(t, got))
		assert.Equal(t, tc.n, got.Len())
		q := make([]float32, tc.d)
		for i := range min(tc.n, 20) {
			copy(q, row(vecs, tc.d, i))
			q[0] += 0.01
			want, wc := ix.Search(nil, q, 5, 8, nil)
			have, hc := got.Search(nil, q, 5, 8, nil)
			assert.Equal(t, want, have)
			assert.Equal(t, wc, hc)
		}
	}
}

// TestReadTruncated checks every prefix of a file, read with its own
// size and with the full file's size.
func TestReadTruncated(t *testing.T) {
	vecs, b := fileTestData()
	for k := range len(b) {
		_, err := readBytes(b[:k], vecs)
		requireFormatError(t, err, -1, "truncated")
		_, err = Read(bytes.NewReader(b[:k]), int64(len(b)), vecs, fileTestDim, "test.idx")
		fe := requireFormatError(t, err, int64(k), "truncated")
		assert.ErrorIs(t, fe, io.ErrUnexpectedEOF)
	}
	_, err := readBytes(append(bytes.Clone(b), 0), vecs)
	requireFormatError(t, err, int64(len(b)), "1 bytes of trailing data")
}

// TestReadCorrupt checks that flipping a bit of any byte of the file is
// caught.
func TestReadCorrupt(t *testing.T) {
	vecs, b := fileTestData()
	c := bytes.Clone(b)
	for k := range len(b) {
		bit := byte(1) << (k % 8)
		c[k] ^= bit
		_, err := readBytes(c, vecs)
		var fe *FormatError
		require.ErrorAs(t, err, &fe, "byte %d bit %#x", k, bit)
		c[k] ^= bit
	}
}

// TestReadHostile checks values that pass the checksums but are invalid.
func TestReadHostile(t *testing.T) {
	vecs, b := fileTestData()
	le := binary.LittleEndian
	ix, err := readBytes(b, vecs)
	require.NoError(t, err)
	n, m := ix.n, ix.m
	levelsOff := fileHeaderSize
	bottomOff := levelsOff + n + 4
	upperOff := bottomOff + 4*n*(2*m+1) + 4
	// A node on layer 0 only, and one with two layers or more.
	low, high := -1, -1
	for i, l := range ix.levels {
		if l == 0 && low < 0 {
			low = i
		}
		if l >= 2 && high < 0 && int32(i) != ix.entry {
			high = i
		}
	}
	require.True(t, low >= 0 && high >= 0)
	slot := func(i, k int) int { return bottomOff + 4*(i*(2*m+1)+k) }
	uslot := func(i, l, k int) int { return upperOff + 4*(int(ix.upperOff[i])+(l-1)*(m+1)+k) }
	require.NotEmpty(t, ix.neighbors(int32(high), 2), "links on layer 2")

	for _, tc := range []struct {
		name string
		edit func(c []byte)
		off  int64
		msg  string
		err  error
	}{
		{"magic", func(c []byte) { c[0] = 'X' }, 0, "not a style index", nil},
		{"version", func(c []byte) { le.PutUint32(c[8:], 2) }, 8, "unsupported version 2", nil},
		{"dim", func(c []byte) { le.PutUint32(c[12:], 7) }, 12, "built for dimension 7, vectors of dimension 6", ErrMismatch},
		{"n", func(c []byte) { le.PutUint64(c[16:], 1<<62) }, 16, "built for 4611686018427387904 items, 150 vectors given", ErrMismatch},
		{"M small", func(c []byte) { le.PutUint32(c[24:], 1) }, 24, "M 1 out of range", nil},
		{"M large", func(c []byte) { le.PutUint32(c[24:], math.MaxUint32) }, 24, "M 4294967295 out of range", nil},
		{"efc", func(c []byte) { le.PutUint32(c[28:], 2) }, 28, "efConstruction 2 out of range", nil},
		{"entry", func(c []byte) { le.PutUint32(c[40:], uint32(n)) }, 40, "entry node 150 out of range", nil},
		{"top", func(c []byte) { le.PutUint32(c[44:], MaxLevel+1) }, 44, "top layer 17, more than 16", nil},
		{"words huge", func(c []byte) { le.PutUint64(c[48:], math.MaxUint64) }, 48, "words of upper layers for 150 items", nil},
		{"words size", func(c []byte) { le.PutUint64(c[48:], le.Uint64(c[48:])+1) }, int64(len(b)), "truncated: file is", nil},
		{"fingerprint", func(c []byte) { c[56]++ }, 56, "built for vectors with checksum", ErrMismatch},
		{"level above top", func(c []byte) { c[levelsOff+low] = byte(ix.maxLevel + 1) }, int64(levelsOff + low), "above the top layer", nil},
		{"level huge", func(c []byte) { c[levelsOff+low] = 200 }, int64(levelsOff + low), "level 200, more than 16", nil},
		{"entry level", func(c []byte) { c[levelsOff+int(ix.entry)] = 0 }, int64(levelsOff) + int64(ix.entry), "not the top layer", nil},
		{"levels vs words", func(c []byte) { c[levelsOff+low] = 1 }, 48, "the levels need", nil},
		{"count", func(c []byte) { le.PutUint32(c[slot(low, 0):], uint32(2*m+1)) }, int64(slot(low, 0)), "links, more than 6", nil},
		{"link range", func(c []byte) { le.PutUint32(c[slot(low, 1):], uint32(n)) }, int64(slot(low, 1)), "link to node 150 out of range", nil},
		{"self link", func(c []byte) { le.PutUint32(c[slot(low, 1):], uint32(low)) }, int64(slot(low, 1)), "link to itself", nil},
		{"duplicate", func(c []byte) { copy(c[slot(low, 2):], c[slot(low, 1):slot(low, 2)]) }, int64(slot(low, 2)), "duplicate link", nil},
		{"unused slot", func(c []byte) { le.PutUint32(c[slot(low, 2*m):], 1) }, int64(slot(low, 2*m)), "unused link slot is 1", nil},
		{"upper count", func(c []byte) { le.PutUint32(c[uslot(high, 1, 0):], uint32(m+1)) }, int64(uslot(high, 1, 0)), "layer 1: 4 links, more than 3", nil},
		{"upper link to lower node", func(c []byte) { le.PutUint32(c[uslot(high, 1, 1):], uint32(low)) }, int64(uslot(high, 1, 1)), "whose top layer is 0", nil},
		{"upper self link", func(c []byte) { le.PutUint32(c[uslot(high, 2, 1):], uint32(high)) }, -1, "link to itself", nil},
	} {
		c := bytes.Clone(b)
		tc.edit(c)
		fixCRCs(c)
		_, err := readBytes(c, vecs)
		fe := requireFormatError(t, err, tc.off, tc.msg)
		if tc.err != nil {
			assert.ErrorIs(t, fe, tc.err, tc.name)
		} else {
			assert.NotErrorIs(t, fe, ErrMismatch, tc.name)
		}
	}

	// Other vectors of the same shape.
	other := slices.Clone(vecs)
	other[5]++
	_, err = readBytes(b, other)
	assert.ErrorIs(t, err, ErrMismatch)
	_, err = readBytes(b, vecs[:len(vecs)-fileTestDim])
	assert.ErrorIs(t, err, ErrMismatch)

	// Short files and I/O errors.
	_, err = readBytes(b[:10], vecs)
	requireFormatError(t, err, 10, "shorter than the 64-byte header")
	_, err = Read(iotest{}, int64(len(b)), vecs, fileTestDim, "test.idx")
	assert.ErrorIs(t, err, errIO)
	assert.PanicsWithValue(t, "style: ann: 5 values are not rows of 6", func() {
		Read(bytes.NewReader(b), int64(len(b)), vecs[:5], fileTestDim, "x")
	})
}

var errIO = errors.New("disk on fire")

type iotest struct{}

func (iotest) Read([]byte) (int, error) { return 0, errIO }

// FuzzReadIndex checks that Read never panics and allocates only what
// the (fixed, small) vectors justify, that an index it accepts writes
// back the same bytes and searches without panicking, and that it
// rejects with a *FormatError. With fix set, the checksums are rewritten
// first so that the checks behind them get exercised.
func FuzzReadIndex(f *testing.F) {
	vecs, b := fileTestData()
	f.Add(b, false)
	f.Add(b, true)
	f.Add(b[:fileHeaderSize], true)
	f.Add(b[:len(b)/2], false)
	empty := indexBytes(f, buildTest(f, nil, fileTestDim, nil))
	f.Add(empty, false)
	f.Fuzz(func(t *testing.T, data []byte, fix bool) {
		data = bytes.Clone(data)
		if fix {
			fixCRCs(data)
		}
		for _, v := range [][]float32{vecs, nil} {
			ix, err := readBytes(data, v)
			if err != nil {
				var fe *FormatError
				require.ErrorAs(t, err, &fe)
				continue
			}
			require.Equal(t, data, indexBytes(t, ix))
			q := make([]float32, fileTestDim)
			for _, accept := range []func(int) bool{nil, func(i int) bool { return i%3 == 0 }} {
				got, _ := ix.Search(nil, q, 4, 6, accept)
				for _, r := range got {
					require.Less(t, int(r.Index), ix.Len())
				}
			}
		}
	})
}

// failWriter accepts limit bytes, then fails.
type failWriter struct{ limit int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.limit {
		n := w.limit
		w.limit = 0
		return n, errIO
	}
	w.limit -= len(p)
	return len(p), nil
}

// TestWriteToError checks that WriteTo reports the first write error and
// the bytes written until then, wherever it happens.
func TestWriteToError(t *testing.T) {
	vecs, b := fileTestData()
	ix, err := readBytes(b, vecs)
	require.NoError(t, err)
	for _, limit := range []int{0, 10, fileHeaderSize, fileHeaderSize + 20, len(b) - 1} {
		n, err := ix.WriteTo(&failWriter{limit: limit})
		assert.ErrorIs(t, err, errIO, "limit %d", limit)
		assert.Equal(t, int64(limit), n)
	}
}
