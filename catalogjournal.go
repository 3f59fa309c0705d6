package style

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"time"
)

// A catalogue journal makes Catalog.AddImages durable without rewriting
// the catalogue file: the items it adds, replaces and removes are appended
// to the file's journal, path + ".journal", and synced at every
// checkpoint. LoadCatalog replays the journal over the file; Save folds it
// in (it writes the whole catalogue, then removes the journal).
//
// The journal format, version 1. All integers are little-endian.
//
//	offset  size  field
//	0       8     magic "STYLEJNL"
//	8       4     version (1)
//	12      4     reserved, 0
//	16      8     size of the catalogue file the journal extends
//	24      4     checksum of that file's section checksums (catalogPrint)
//	28      4     CRC-32C of bytes 0..27
//	32            records, each: payload length (uint32), CRC-32C of the
//	              payload (uint32), payload
//
// A payload is an operation byte and its fields; strings are a uvarint
// length and the bytes, integers varints:
//
//	journalPut:    ID, category, image size, image modification time,
//	               then the embedding, float32 values to the end
//	journalDelete: ID
//	journalMeta:   number of pairs (uvarint), then each key and value; it
//	               replaces Meta
//
// A journal whose header records another file than the catalogue's (left
// over from before a Save) is ignored. A record that is cut short or fails
// its checksum, the trace of a write interrupted by a crash, ends the
// journal: it and anything after it are dropped, and the next checkpoint
// overwrites them; so does a record of length 0 (none is written: zeros
// are what a crash may leave past the last record written). A record with
// a valid checksum but invalid content is a *FormatError.
const (
	journalMagic      = "STYLEJNL"
	journalVersion    = 1
	journalHeaderSize = 32
	journalFrameSize  = 8

	journalPut    = 1
	journalDelete = 2
	journalMeta   = 3

	// maxJournalRecord bounds a record: a put of the largest item, or
	// the metadata.
	maxJournalRecord = 1 + 2*(3+maxCatalogIDLen) + 2*10 + 4*maxCatalogDim + 3 + math.MaxUint16*2*(2+maxCatalogIDLen)
)

// Checkpoints of a journaled Catalog.AddImages: at least every
// catalogCheckpointEvery items and every catalogCheckpointInterval while
// items are added. A variable so that tests can checkpoint more often.
var (
	catalogCheckpointEvery    = 1000
	catalogCheckpointInterval = 30 * time.Second
)

// catalogDisk is what a Catalog knows of the file it was loaded from or
// last saved to.
type catalogDisk struct {
	path  string            // "" if none
	print catalogPrint      // of the file at path
	meta  map[string]string // Meta as the file and its journal hold it
	jend  int64             // length of the valid journal; 0 if there is none
	dirty bool              // changed since, other than through the journal
}

// journalPath returns the journal of the catalogue file path.
func journalPath(path string) string { return path + ".journal" }

// catalogJournal appends the changes of a Catalog.AddImages run to the
// journal of the catalogue's file.
type catalogJournal struct {
	c    *Catalog
	path string // the journal
	f    *os.File
	buf  []byte // records not written yet
}

// openJournal prepares the journal of the catalogue file path for c. If c
// was not loaded from path or saved there, or was changed since other than
// through the journal, c is saved to path first (a new file only: an
// existing one that c was not loaded from is an error, so that it is never
// overwritten by mistake). Errors name the file; nothing is indexed
// before they are reported.
func openJournal(c *Catalog, path string) (*catalogJournal, error) {
	if filepath.Clean(c.disk.path) != filepath.Clean(path) {
		switch _, err := os.Lstat(path); {
		case err == nil:
			return nil, fmt.Errorf("style: catalogue %s exists but this catalogue was not loaded from it (see LoadCatalog)", path)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("style: catalogue: %w", err)
		}
		if err := c.Save(path); err != nil {
			return nil, err
		}
	} else if c.disk.dirty {
		if err := c.Save(path); err != nil {
			return nil, err
		}
	}
	jp := journalPath(path)
	f, err := os.OpenFile(jp, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		return nil, fmt.Errorf("style: catalogue journal: %w", err)
	}
	j := &catalogJournal{c: c, path: jp, f: f}
	if err := j.start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("style: catalogue journal %s: %w", jp, err)
	}
	return j, nil
}

// start positions the journal after its last valid record, or writes a new
// header.
func (j *catalogJournal) start() error {
	d := &j.c.disk
	if d.jend >= journalHeaderSize {
		if err := j.f.Truncate(d.jend); err != nil {
			return err
		}
		_, err := j.f.Seek(d.jend, io.SeekStart)
		return err
	}
	if err := j.f.Truncate(0); err != nil {
		return err
	}
	hdr := make([]byte, journalHeaderSize)
	copy(hdr, journalMagic)
	binary.LittleEndian.PutUint32(hdr[8:], journalVersion)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(d.print.size))
	binary.LittleEndian.PutUint32(hdr[24:], d.print.sum)
	binary.LittleEndian.PutUint32(hdr[28:], crc32.Checksum(hdr[:28], castagnoli))
	if _, err := j.f.WriteAt(hdr, 0); err != nil {
		return err
	}
	if _, err := j.f.Seek(journalHeaderSize, io.SeekStart); err != nil {
		return err
	}
	if err := j.f.Sync(); err != nil {
		return err
	}
	syncDir(filepath.Dir(j.path))
	d.jend = journalHeaderSize
	return nil
}

// syncDir makes a new entry of the folder dir durable, where the system
// allows it.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync() // not supported everywhere; the records are synced anyway
		f.Close()
	}
}

// record appends a record with the payload that add appends to its
// argument.
func (j *catalogJournal) record(add func([]byte) []byte) {
	at := len(j.buf)
	j.buf = append(j.buf, make([]byte, journalFrameSize)...)
	j.buf = add(j.buf)
	payload := j.buf[at+journalFrameSize:]
	binary.LittleEndian.PutUint32(j.buf[at:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(j.buf[at+4:], crc32.Checksum(payload, castagnoli))
}

// put records the item i of the catalogue as it is now.
func (j *catalogJournal) put(i int) {
	c := j.c
	j.record(func(b []byte) []byte {
		b = append(b, journalPut)
		b = appendString(b, c.ids[i])
		b = appendString(b, c.cats[c.cat[i]])
		b = binary.AppendVarint(b, c.keys[i].size)
		b = binary.AppendVarint(b, c.keys[i].mtime)
		for _, v := range c.row(i) {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	})
}

// remove records the removal of the item id.
func (j *catalogJournal) remove(id string) {
	j.record(func(b []byte) []byte {
		return appendString(append(b, journalDelete), id)
	})
}

// checkpoint writes the records not written yet, and the metadata if it
// changed, and syncs the journal. It costs the size of these records,
// whatever the size of the catalogue.
func (j *catalogJournal) checkpoint() error {
	c := j.c
	if !maps.Equal(c.Meta, c.disk.meta) {
		if len(c.Meta) > math.MaxUint16 {
			return fmt.Errorf("style: catalogue: %d metadata pairs, more than %d", len(c.Meta), math.MaxUint16)
		}
		for k, v := range c.Meta {
			if len(k) > maxCatalogIDLen || len(v) > maxCatalogIDLen {
				return fmt.Errorf("style: catalogue: metadata %q: key or value longer than %d bytes", k, maxCatalogIDLen)
			}
		}
		j.record(func(b []byte) []byte {
			b = binary.AppendUvarint(append(b, journalMeta), uint64(len(c.Meta)))
			for k, v := range c.Meta {
				b = appendString(appendString(b, k), v)
			}
			return b
		})
		c.disk.meta = maps.Clone(c.Meta)
	}
	if len(j.buf) == 0 {
		return nil
	}
	if _, err := j.f.Write(j.buf); err != nil {
		return fmt.Errorf("style: catalogue journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("style: catalogue journal: %w", err)
	}
	c.disk.jend += int64(len(j.buf))
	c.disk.dirty = false
	j.buf = j.buf[:0]
	return nil
}

func (j *catalogJournal) close() error {
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("style: catalogue journal: %w", err)
	}
	return nil
}

// replayJournal applies the journal of the catalogue file path, if there
// is one for this file, to c, which was just read from path.
func replayJournal(c *Catalog, path string) error {
	jp := journalPath(path)
	f, err := os.Open(jp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("style: catalogue journal: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("style: catalogue journal: %w", err)
	}
	return c.replay(bufio.NewReaderSize(f, int(min(1<<20, st.Size()))), st.Size(), jp)
}

// replay applies the journal read from r, of size bytes, called name, to
// c.
func (c *Catalog) replay(r io.Reader, size int64, name string) error {
	cr := &catalogReader{r: r, name: name}
	if size < journalHeaderSize {
		return nil // cut short while it was created: no record yet
	}
	hdr := make([]byte, journalHeaderSize)
	if err := cr.read(hdr, "journal header"); err != nil {
		return err
	}
	switch {
	case string(hdr[:8]) != journalMagic:
		return cr.errorf(0, "not a style catalogue journal (bad magic %q)", hdr[:8])
	case binary.LittleEndian.Uint32(hdr[28:]) != crc32.Checksum(hdr[:28], castagnoli):
		return cr.errorf(28, "journal header checksum mismatch")
	case binary.LittleEndian.Uint32(hdr[8:]) != journalVersion:
		return cr.errorf(8, "unsupported journal version %d (want %d)", binary.LittleEndian.Uint32(hdr[8:]), journalVersion)
	}
	fp := catalogPrint{size: int64(binary.LittleEndian.Uint64(hdr[16:])), sum: binary.LittleEndian.Uint32(hdr[24:])}
	if fp != c.disk.print {
		return nil // the journal of an earlier file, folded in by a Save
	}
	var frame [journalFrameSize]byte
	var payload []byte
	// Runs of deletions (a pruned folder) are applied in one pass over the
	// items, not one pass each.
	del := map[int]bool{}
	flush := func() {
		if len(del) > 0 {
			c.removeWhere(func(i int) bool { return del[i] })
			clear(del)
		}
	}
	for {
		at := cr.off
		if size-at < journalFrameSize {
			break // end, or a frame cut short
		}
		if err := cr.read(frame[:], "journal record"); err != nil {
			return err
		}
		n := int64(binary.LittleEndian.Uint32(frame[:]))
		if n == 0 || n > size-cr.off || n > maxJournalRecord {
			// Cut short, or a damaged length. No record is empty: zeros
			// are what a crash may leave where records were to be
			// written.
			break
		}
		payload = append(payload[:0], make([]byte, n)...)
		if err := cr.read(payload, "journal record"); err != nil {
			return err
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(frame[4:]) {
			break // damaged by an interrupted write
		}
		if len(del) > 0 && payload[0] != journalDelete {
			flush()
		}
		if err := c.applyRecord(payload, del); err != nil {
			return cr.errorf(at, "journal record: %v", err)
		}
		c.disk.jend = cr.off
	}
	flush()
	if c.disk.jend == 0 {
		c.disk.jend = journalHeaderSize
	}
	c.disk.dirty = false
	c.disk.meta = maps.Clone(c.Meta)
	return nil
}

// applyRecord applies one journal record to c. A deletion only marks the
// item in del; the caller removes the marked items before any other
// record.
func (c *Catalog) applyRecord(p []byte, del map[int]bool) error {
	if len(p) == 0 {
		return errors.New("empty record")
	}
	op, p := p[0], p[1:]
	str := func(what string) (string, error) {
		l, n := binary.Uvarint(p)
		if n <= 0 || l > maxCatalogIDLen || l > uint64(len(p)-n) {
			return "", fmt.Errorf("bad %s", what)
		}
		s := string(p[n : n+int(l)])
		p = p[n+int(l):]
		return s, nil
	}
	switch op {
	case journalPut:
		id, err := str("item ID")
		if err != nil {
			return err
		}
		cat, err := str("category")
		if err != nil {
			return err
		}
		var key itemKey
		for _, v := range []*int64{&key.size, &key.mtime} {
			x, n := binary.Varint(p)
			if n <= 0 {
				return fmt.Errorf("item %q: bad image key", id)
			}
			*v, p = x, p[n:]
		}
		d := len(p) / 4
		if len(p)%4 != 0 || d == 0 || d > maxCatalogDim || (c.dim != 0 && d != c.dim) {
			return fmt.Errorf("item %q: embedding of %d bytes, catalogue dimension %d", id, len(p), c.dim)
		}
		vec := make([]float32, d)
		for t := range vec {
			vec[t] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*t:]))
		}
		return c.put(Item{ID: id, Category: cat, Embedding: vec}, key, "catalogue journal")
	case journalDelete:
		id, err := str("item ID")
		if err != nil {
			return err
		}
		if len(p) != 0 {
			return fmt.Errorf("%d bytes after the item ID", len(p))
		}
		i, ok := c.byID[id]
		if !ok || del[i] {
			return fmt.Errorf("removes unknown item %q", id)
		}
		del[i] = true
		return nil
	case journalMeta:
		n, k := binary.Uvarint(p)
		if k <= 0 || n > math.MaxUint16 {
			return errors.New("bad metadata count")
		}
		p = p[k:]
		m := make(map[string]string, min(n, 64))
		for range n {
			k, err := str("metadata key")
			if err != nil {
				return err
			}
			v, err := str("metadata value")
			if err != nil {
				return err
			}
			m[k] = v
		}
		if len(p) != 0 {
			return fmt.Errorf("%d bytes after the metadata", len(p))
		}
		if len(m) == 0 {
			m = nil
		}
		c.Meta = m
		return nil
	}
	return fmt.Errorf("unknown operation %d", op)
}
