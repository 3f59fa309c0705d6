package ann

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// The index file format, version 1. All integers are little-endian. The
// file holds the graph only; the vectors are the caller's, identified by
// their checksum.
//
//	offset  size  field
//	0       8     magic "STYLEANN"
//	8       4     version (1)
//	12      4     dim
//	16      8     n: items
//	24      4     M
//	28      4     efConstruction
//	32      8     seed
//	40      4     entry node (0xffffffff when n is 0)
//	44      4     top layer: the entry node's level (0 when n is 0)
//	48      8     upper words: uint32 words of the upper layers
//	56      4     CRC-32C of the vectors' float32 little-endian bytes
//	60      4     CRC-32C (Castagnoli) of bytes 0..59
//	64            levels: n bytes, each at most MaxLevel; CRC-32C
//	              bottom layer: n blocks of 2M+1 uint32, a count and
//	              2M slots (unused slots 0); CRC-32C
//	              upper layers: for each node i with levels[i] > 0, in
//	              order, levels[i] blocks of M+1 uint32 (layers 1, 2, ...);
//	              CRC-32C
//
// The file ends right after the last checksum. A link names a node other
// than its owner that exists on the link's layer.
const (
	fileMagic      = "STYLEANN"
	fileVersion    = 1
	fileHeaderSize = 64
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fingerprint returns the CRC-32C of the little-endian bytes of vecs.
func fingerprint(vecs []float32) uint32 {
	var buf [16 << 10]byte
	crc := uint32(0)
	for len(vecs) > 0 {
		k := min(len(vecs), len(buf)/4)
		for j, v := range vecs[:k] {
			binary.LittleEndian.PutUint32(buf[4*j:], math.Float32bits(v))
		}
		crc = crc32.Update(crc, castagnoli, buf[:4*k])
		vecs = vecs[k:]
	}
	return crc
}

// WriteTo writes the index to w in the format Read reads and returns the
// number of bytes written. The same index always gives the same bytes.
func (ix *Index) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	var hdr [fileHeaderSize]byte
	copy(hdr[:], fileMagic)
	le := binary.LittleEndian
	le.PutUint32(hdr[8:], fileVersion)
	le.PutUint32(hdr[12:], uint32(ix.dim))
	le.PutUint64(hdr[16:], uint64(ix.n))
	le.PutUint32(hdr[24:], uint32(ix.m))
	le.PutUint32(hdr[28:], uint32(ix.efc))
	le.PutUint64(hdr[32:], ix.seed)
	le.PutUint32(hdr[40:], uint32(ix.entry))
	le.PutUint32(hdr[44:], uint32(max(ix.maxLevel, 0)))
	le.PutUint64(hdr[48:], uint64(len(ix.upper)))
	le.PutUint32(hdr[56:], ix.fingerprint)
	le.PutUint32(hdr[60:], crc32.Checksum(hdr[:60], castagnoli))
	cw.Write(hdr[:])
	cw.Write(ix.levels)
	cw.writeCRC(crc32.Checksum(ix.levels, castagnoli))
	cw.writeWords(ix.links0)
	cw.writeWords(ix.upper)
	return cw.n, cw.err
}

// countWriter counts bytes and keeps the first error, after which it
// writes nothing.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (cw *countWriter) Write(p []byte) {
	if cw.err != nil {
		return
	}
	n, err := cw.w.Write(p)
	cw.n += int64(n)
	cw.err = err
}

func (cw *countWriter) writeCRC(crc uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], crc)
	cw.Write(b[:])
}

// writeWords writes s as little-endian uint32 followed by its CRC-32C.
func (cw *countWriter) writeWords(s []uint32) {
	buf := make([]byte, 0, 64<<10)
	crc := uint32(0)
	for len(s) > 0 {
		k := min(len(s), cap(buf)/4)
		buf = buf[:0]
		for _, v := range s[:k] {
			buf = binary.LittleEndian.AppendUint32(buf, v)
		}
		crc = crc32.Update(crc, castagnoli, buf)
		cw.Write(buf)
		s = s[k:]
	}
	cw.writeCRC(crc)
}

// fileReader reads sections while tracking the offset for errors.
type fileReader struct {
	r    io.Reader
	off  int64
	name string
	buf  []byte
}

func (fr *fileReader) errorf(off int64, format string, args ...any) error {
	return &FormatError{Path: fr.name, Offset: off, Msg: "index: " + fmt.Sprintf(format, args...)}
}

// read fills b, reporting a short read as a truncated file.
func (fr *fileReader) read(b []byte, what string) error {
	n, err := io.ReadFull(fr.r, b)
	fr.off += int64(n)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return &FormatError{Path: fr.name, Offset: fr.off, Msg: "index: truncated in " + what, Err: io.ErrUnexpectedEOF}
	}
	if err != nil {
		return fmt.Errorf("style: read %s: %w", fr.name, err)
	}
	return nil
}

func (fr *fileReader) checkCRC(crc uint32, what string) error {
	var b [4]byte
	if err := fr.read(b[:], what+" checksum"); err != nil {
		return err
	}
	if got := binary.LittleEndian.Uint32(b[:]); got != crc {
		return fr.errorf(fr.off-4, "%s checksum mismatch (stored %08x, computed %08x)", what, got, crc)
	}
	return nil
}

// readWords fills dst with little-endian uint32 and checks the CRC that
// follows. It returns the offset where dst started.
func (fr *fileReader) readWords(dst []uint32, what string) (int64, error) {
	start := fr.off
	if fr.buf == nil {
		fr.buf = make([]byte, 64<<10)
	}
	crc := uint32(0)
	for s := dst; len(s) > 0; {
		k := min(len(s), len(fr.buf)/4)
		b := fr.buf[:4*k]
		if err := fr.read(b, what); err != nil {
			return start, err
		}
		crc = crc32.Update(crc, castagnoli, b)
		for j := range s[:k] {
			s[j] = binary.LittleEndian.Uint32(b[4*j:])
		}
		s = s[k:]
	}
	return start, fr.checkCRC(crc, what)
}

// Read reads an index written by WriteTo for the vectors vecs (row-major,
// len(vecs)/dim rows), from r, which holds size bytes; name is used in
// errors. The index keeps vecs, which must not be modified while it is in
// use.
//
// Every field is checked before use: a file that is not an index, is
// truncated or too long, fails a checksum, or holds a value out of range
// (a level above MaxLevel, a link count above capacity, a link to a
// missing node, to itself or to a node absent from the link's layer, a
// duplicate link) gives a *FormatError with the byte offset. An index
// built for other vectors (another dimension, count or checksum) gives a
// *FormatError wrapping ErrMismatch. Read allocates nothing whose size
// depends on the file before checking it against size and the vectors:
// it then allocates what the graph takes, about 4·(2M+3)·n bytes (M is
// at most MaxM) plus the upper layers, which the file's size bounds. I/O
// errors are returned wrapped.
//
// It panics if dim < 1 or len(vecs) is not a multiple of dim.
func Read(r io.Reader, size int64, vecs []float32, dim int, name string) (*Index, error) {
	if dim < 1 {
		panic(fmt.Sprintf("style: ann: dimension %d", dim))
	}
	if len(vecs)%dim != 0 {
		panic(fmt.Sprintf("style: ann: %d values are not rows of %d", len(vecs), dim))
	}
	n := len(vecs) / dim
	fr := &fileReader{r: r, name: name}
	if size < fileHeaderSize {
		return nil, fr.errorf(max(size, 0), "truncated: %d bytes, shorter than the %d-byte header", size, fileHeaderSize)
	}
	var hdr [fileHeaderSize]byte
	if err := fr.read(hdr[:], "header"); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	if string(hdr[:8]) != fileMagic {
		return nil, fr.errorf(0, "not a style index (bad magic %q)", hdr[:8])
	}
	if v := le.Uint32(hdr[8:]); v != fileVersion {
		return nil, fr.errorf(8, "unsupported version %d (want %d)", v, fileVersion)
	}
	if got, want := le.Uint32(hdr[60:]), crc32.Checksum(hdr[:60], castagnoli); got != want {
		return nil, fr.errorf(60, "header checksum mismatch (stored %08x, computed %08x)", got, want)
	}
	fdim := le.Uint32(hdr[12:])
	fn := le.Uint64(hdr[16:])
	m := le.Uint32(hdr[24:])
	efc := le.Uint32(hdr[28:])
	seed := le.Uint64(hdr[32:])
	entry := le.Uint32(hdr[40:])
	top := le.Uint32(hdr[44:])
	words := le.Uint64(hdr[48:])
	fp := le.Uint32(hdr[56:])
	mismatch := func(off int64, format string, args ...any) error {
		return &FormatError{Path: name, Offset: off, Msg: "index: " + fmt.Sprintf(format, args...), Err: ErrMismatch}
	}
	switch {
	case uint64(fdim) != uint64(dim):
		return nil, mismatch(12, "built for dimension %d, vectors of dimension %d", fdim, dim)
	case fn != uint64(n):
		return nil, mismatch(16, "built for %d items, %d vectors given", fn, n)
	case m < 2 || m > MaxM:
		return nil, fr.errorf(24, "M %d out of range [2, %d]", m, MaxM)
	case efc < m || efc > MaxEfConstruction:
		return nil, fr.errorf(28, "efConstruction %d out of range [M=%d, %d]", efc, m, MaxEfConstruction)
	case n == 0 && (entry != math.MaxUint32 || top != 0):
		return nil, fr.errorf(40, "empty index with entry node %d, top layer %d", entry, top)
	case n > 0 && uint64(entry) >= uint64(n):
		return nil, fr.errorf(40, "entry node %d out of range [0, %d)", entry, n)
	case top > MaxLevel:
		return nil, fr.errorf(44, "top layer %d, more than %d", top, MaxLevel)
	case words > uint64(n)*MaxLevel*uint64(m+1):
		return nil, fr.errorf(48, "%d words of upper layers for %d items", words, n)
	}
	// All counts are bounded above, so this cannot overflow.
	m0 := 2 * int64(m)
	want := int64(fileHeaderSize) + int64(n) + 4 + 4*int64(n)*(m0+1) + 4 + 4*int64(words) + 4
	if size != want {
		if size < want {
			return nil, fr.errorf(size, "truncated: file is %d bytes, header declares %d", size, want)
		}
		return nil, fr.errorf(want, "%d bytes of trailing data after the index", size-want)
	}
	if got := fingerprint(vecs); got != fp {
		return nil, mismatch(56, "built for vectors with checksum %08x, these have %08x", fp, got)
	}

	ix := newIndex(vecs, dim, int(m), int(efc), seed)
	ix.fingerprint = fp
	if n > 0 {
		ix.entry, ix.maxLevel = int32(entry), int(top)
	}
	levelsOff := fr.off
	if err := fr.read(ix.levels, "levels"); err != nil {
		return nil, err
	}
	if err := fr.checkCRC(crc32.Checksum(ix.levels, castagnoli), "levels"); err != nil {
		return nil, err
	}
	sum := uint64(0)
	for i, l := range ix.levels {
		if l > MaxLevel {
			return nil, fr.errorf(levelsOff+int64(i), "node %d: level %d, more than %d", i, l, MaxLevel)
		}
		if uint32(l) > top {
			return nil, fr.errorf(levelsOff+int64(i), "node %d: level %d above the top layer %d", i, l, top)
		}
		sum += uint64(l)
	}
	if n > 0 && uint32(ix.levels[entry]) != top {
		return nil, fr.errorf(levelsOff+int64(entry), "entry node %d: level %d, not the top layer %d", entry, ix.levels[entry], top)
	}
	if sum*uint64(m+1) != words {
		return nil, fr.errorf(48, "%d words of upper layers, the levels need %d", words, sum*uint64(m+1))
	}
	ix.layout()

	// seen[x] == stamp while checking one list marks the nodes it holds.
	seen := make([]uint32, n)
	stamp := uint32(0)
	check := func(base int64, words []uint32, owner, l, capacity int) error {
		stamp++
		if stamp == 0 {
			clear(seen)
			stamp = 1
		}
		cnt := words[0]
		if cnt > uint32(capacity) {
			return fr.errorf(base, "node %d layer %d: %d links, more than %d", owner, l, cnt, capacity)
		}
		for k, x := range words[1:] {
			off := base + 4*int64(k+1)
			if uint32(k) >= cnt {
				if x != 0 {
					return fr.errorf(off, "node %d layer %d: unused link slot is %d, not 0", owner, l, x)
				}
				continue
			}
			switch {
			case uint64(x) >= uint64(n):
				return fr.errorf(off, "node %d layer %d: link to node %d out of range [0, %d)", owner, l, x, n)
			case int(x) == owner:
				return fr.errorf(off, "node %d layer %d: link to itself", owner, l)
			case int(ix.levels[x]) < l:
				return fr.errorf(off, "node %d layer %d: link to node %d, whose top layer is %d", owner, l, x, ix.levels[x])
			case seen[x] == stamp:
				return fr.errorf(off, "node %d layer %d: duplicate link to node %d", owner, l, x)
			}
			seen[x] = stamp
		}
		return nil
	}
	start, err := fr.readWords(ix.links0, "bottom layer")
	if err != nil {
		return nil, err
	}
	bs := int(m0) + 1
	for i := range n {
		if err := check(start+4*int64(i*bs), ix.links0[i*bs:(i+1)*bs], i, 0, int(m0)); err != nil {
			return nil, err
		}
	}
	start, err = fr.readWords(ix.upper, "upper layers")
	if err != nil {
		return nil, err
	}
	bs = int(m) + 1
	for i := range n {
		for l := 1; l <= int(ix.levels[i]); l++ {
			b := int(ix.upperOff[i]) + (l-1)*bs
			if err := check(start+4*int64(b), ix.upper[b:b+bs], i, l, int(m)); err != nil {
				return nil, err
			}
		}
	}
	return ix, nil
}
