package style

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"slices"
	"sort"

	"github.com/stylespace/style/internal/atomicfile"
)

// maxSafetensorsHeader caps the JSON header of a safetensors file. A VGG16
// header is about 3 KB (timm's, with the classifier) and a head's under
// 1 KB; parsing costs up to about 32 bytes of memory per header byte (a
// header of many zero-sized tensors), so the cap keeps a hostile header
// within about 32 MB. (The reference implementation allows 100 MB.)
const maxSafetensorsHeader = 1 << 20

// maxTensorBytes caps the float32 bytes of the tensors one read keeps when
// the caller sets no tighter budget: 1 GiB.
const maxTensorBytes = 1 << 30

// tensorPlan says which tensors of a weight file to read, and checks what
// the file says about them before any of their data is read or memory
// allocated for it. A nil *tensorPlan keeps every tensor, within
// maxTensorBytes.
type tensorPlan struct {
	// keep selects the tensors to read by name; nil keeps all.
	keep func(name string) bool
	// check, if not nil, validates the shapes of the kept tensors and the
	// file's metadata (nil for PyTorch files); its error is returned as is.
	check func(shapes map[string][]int, meta map[string]string) error
	// maxBytes caps the float32 bytes of the kept tensors, counted per
	// tensor; 0 means maxTensorBytes.
	maxBytes int64
}

func (p *tensorPlan) keeps(name string) bool {
	return p == nil || p.keep == nil || p.keep(name)
}

// validate runs the plan's check on the kept tensors' shapes and checks
// their size against the budget.
func (p *tensorPlan) validate(shapes map[string][]int, meta map[string]string, path string) error {
	if p != nil && p.check != nil {
		if err := p.check(shapes, meta); err != nil {
			return err
		}
	}
	budget := int64(maxTensorBytes)
	if p != nil && p.maxBytes > 0 {
		budget = p.maxBytes
	}
	var total int64
	for _, s := range shapes {
		n, ok := shapeBytes(s)
		if !ok || n > budget-total {
			return &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf("the tensors to read hold more than %d bytes as float32", budget)}
		}
		total += n
	}
	return nil
}

// shapeBytes returns the float32 bytes of a tensor of the given shape, and
// false if that overflows an int64.
func shapeBytes(shape []int) (int64, bool) {
	n := uint64(4)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if d < 0 || hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		n = lo
	}
	return int64(n), true
}

// maxTensorRank caps the number of dimensions of a tensor.
const maxTensorRank = 16

// safetensorsDtypeSize gives the element size in bytes of every dtype of the
// safetensors format, so that offsets of tensors that are not read can still
// be checked. Sub-byte types are not listed: a file holding them is refused.
var safetensorsDtypeSize = map[string]uint64{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// stEntry is one tensor entry of a safetensors header.
type stEntry struct {
	name       string
	dtype      string
	shape      []int
	begin, end uint64 // data_offsets, relative to the data section
}

// stHeader is a parsed and validated safetensors header.
type stHeader struct {
	dataStart int64 // absolute offset of the data section
	entries   []stEntry
	meta      map[string]string
}

// readSafetensors reads the tensors of a safetensors file that plan keeps,
// converting F32/F16/BF16 to float32, and the file's __metadata__ (nil if
// it has none).
//
// The whole header is validated, kept or not: a header length above 1 MiB
// or beyond the end of the file, malformed or duplicate JSON keys, unknown
// dtypes, shapes whose size overflows, data_offsets that disagree with
// shape*dtype, lie outside the data section, overlap or leave holes are all
// reported as *FormatError (errors.Is(err, ErrFormat)). Then the plan's
// check and byte budget are applied to the kept tensors, still before any
// of their data is read or memory allocated for it. Only the bytes of the
// kept tensors are read, so picking the convolution layers out of a 528 MB
// checkpoint reads about 59 MB.
func readSafetensors(path string, plan *tensorPlan) (map[string]tensor, map[string]string, error) {
	f, size, err := openSized(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	return decodeSafetensors(f, size, path, plan)
}

// openSized opens a file for reading and returns its size.
func openSized(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("style: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("style: %w", err)
	}
	return f, fi.Size(), nil
}

// decodeSafetensors is readSafetensors on any io.ReaderAt of known size.
func decodeSafetensors(r io.ReaderAt, size int64, path string, plan *tensorPlan) (map[string]tensor, map[string]string, error) {
	h, err := parseSafetensorsHeader(r, size, path)
	if err != nil {
		return nil, nil, err
	}
	var kept []stEntry
	shapes := make(map[string][]int)
	for _, e := range h.entries {
		if !plan.keeps(e.name) {
			continue
		}
		if e.dtype != "F32" && e.dtype != "F16" && e.dtype != "BF16" {
			return nil, nil, &FormatError{Path: path, Offset: h.dataStart + int64(e.begin),
				Msg: fmt.Sprintf("tensor %q: dtype %s is not supported (want F32, F16 or BF16)", e.name, e.dtype)}
		}
		kept = append(kept, e)
		shapes[e.name] = e.shape
	}
	if err := plan.validate(shapes, h.meta, path); err != nil {
		return nil, nil, err
	}
	out := make(map[string]tensor, len(kept))
	for _, e := range kept {
		off := h.dataStart + int64(e.begin)
		ferr := func(msg string, err error) error {
			return &FormatError{Path: path, Offset: off, Msg: fmt.Sprintf("tensor %q: %s", e.name, msg), Err: err}
		}
		n := int((e.end - e.begin) / safetensorsDtypeSize[e.dtype])
		data := make([]float32, n)
		if err := readFloats(io.NewSectionReader(r, off, int64(e.end-e.begin)), e.dtype, data); err != nil {
			return nil, nil, ferr("reading data", err)
		}
		out[e.name] = tensor{name: e.name, shape: e.shape, data: data}
	}
	return out, h.meta, nil
}

// parseSafetensorsHeader reads and validates the header of a safetensors
// file of the given size.
func parseSafetensorsHeader(r io.ReaderAt, size int64, path string) (*stHeader, error) {
	ferr := func(off int64, format string, args ...any) error {
		return &FormatError{Path: path, Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	var lenBuf [8]byte
	if size < 8 {
		return nil, ferr(0, "file of %d bytes is too short for a safetensors header", size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, &FormatError{Path: path, Offset: 0, Msg: "reading header length", Err: err}
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxSafetensorsHeader {
		return nil, ferr(0, "header length %d exceeds the %d-byte limit", n, maxSafetensorsHeader)
	}
	if n > uint64(size-8) {
		return nil, ferr(0, "header length %d runs past the end of the %d-byte file", n, size)
	}
	if n < 2 {
		return nil, ferr(0, "header length %d is too short for a JSON object", n)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, &FormatError{Path: path, Offset: 8, Msg: "reading header", Err: err}
	}
	if hdr[0] != '{' {
		return nil, ferr(8, "header does not start with '{'")
	}
	h := &stHeader{dataStart: 8 + int64(n)}
	dataLen := uint64(size) - 8 - n

	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	jerr := func(err error) error {
		var se *json.SyntaxError
		off := int64(8) + dec.InputOffset()
		if errors.As(err, &se) {
			off = 8 + se.Offset
		}
		return &FormatError{Path: path, Offset: off, Msg: "malformed JSON header", Err: err}
	}
	if _, err := dec.Token(); err != nil { // '{'
		return nil, jerr(err)
	}
	seen := make(map[string]bool)
	for dec.More() {
		keyOff := 8 + dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return nil, jerr(err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, ferr(keyOff, "header key is not a string")
		}
		if seen[name] {
			return nil, ferr(keyOff, "duplicate header key %q", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jerr(err)
		}
		if name == "__metadata__" {
			meta, err := parseSafetensorsMeta(raw)
			if err != nil {
				return nil, &FormatError{Path: path, Offset: keyOff, Msg: "__metadata__ must map strings to strings", Err: err}
			}
			h.meta = meta
			continue
		}
		e, err := parseSafetensorsEntry(name, raw, dataLen)
		if err != nil {
			return nil, &FormatError{Path: path, Offset: keyOff, Msg: fmt.Sprintf("tensor %q: %v", name, err)}
		}
		h.entries = append(h.entries, e)
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, jerr(err)
	}
	// Only spaces (the format's padding) may follow the object.
	if rest := hdr[dec.InputOffset():]; len(bytes.TrimRight(rest, " ")) != 0 {
		return nil, ferr(8+dec.InputOffset(), "unexpected data after the JSON header")
	}

	// The data section must be covered exactly: no overlaps, no holes.
	sorted := slices.Clone(h.entries)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].begin != sorted[j].begin {
			return sorted[i].begin < sorted[j].begin
		}
		return sorted[i].end < sorted[j].end
	})
	var pos uint64
	for _, e := range sorted {
		switch {
		case e.begin < pos:
			return nil, ferr(h.dataStart+int64(e.begin), "tensor %q (bytes %d-%d of the data section) overlaps the previous tensor", e.name, e.begin, e.end)
		case e.begin > pos:
			return nil, ferr(h.dataStart+int64(pos), "bytes %d-%d of the data section belong to no tensor", pos, e.begin)
		}
		pos = e.end
	}
	if pos != dataLen {
		return nil, ferr(h.dataStart+int64(pos), "%d bytes after the last tensor belong to no tensor", dataLen-pos)
	}
	return h, nil
}

func parseSafetensorsMeta(raw json.RawMessage) (map[string]string, error) {
	var m map[string]string
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("null")
	}
	return m, nil
}

func parseSafetensorsEntry(name string, raw json.RawMessage, dataLen uint64) (stEntry, error) {
	var info struct {
		Dtype       *string  `json:"dtype"`
		Shape       []uint64 `json:"shape"`
		DataOffsets []uint64 `json:"data_offsets"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		return stEntry{}, err
	}
	if name == "" {
		return stEntry{}, errors.New("empty tensor name")
	}
	if info.Dtype == nil {
		return stEntry{}, errors.New("missing dtype")
	}
	if info.Shape == nil {
		return stEntry{}, errors.New("missing shape")
	}
	if len(info.DataOffsets) != 2 {
		return stEntry{}, errors.New("data_offsets must hold two numbers")
	}
	esize, ok := safetensorsDtypeSize[*info.Dtype]
	if !ok {
		return stEntry{}, fmt.Errorf("unknown dtype %q", *info.Dtype)
	}
	if len(info.Shape) > maxTensorRank {
		return stEntry{}, fmt.Errorf("%d dimensions exceed the limit of %d", len(info.Shape), maxTensorRank)
	}
	count := uint64(1)
	shape := make([]int, len(info.Shape))
	for i, d := range info.Shape {
		hi, lo := bits.Mul64(count, d)
		if hi != 0 || lo > math.MaxInt64 {
			return stEntry{}, fmt.Errorf("shape %v overflows", info.Shape)
		}
		count = lo
		shape[i] = int(d)
	}
	hi, nbytes := bits.Mul64(count, esize)
	if hi != 0 || nbytes > math.MaxInt64 {
		return stEntry{}, fmt.Errorf("shape %v of %s overflows", info.Shape, *info.Dtype)
	}
	begin, end := info.DataOffsets[0], info.DataOffsets[1]
	if begin > end {
		return stEntry{}, fmt.Errorf("data_offsets [%d, %d] are reversed", begin, end)
	}
	if end > dataLen {
		return stEntry{}, fmt.Errorf("data_offsets [%d, %d] run past the %d-byte data section", begin, end, dataLen)
	}
	if end-begin != nbytes {
		return stEntry{}, fmt.Errorf("data_offsets [%d, %d] hold %d bytes, shape %v of %s needs %d", begin, end, end-begin, info.Shape, *info.Dtype, nbytes)
	}
	return stEntry{name: name, dtype: *info.Dtype, shape: shape, begin: begin, end: end}, nil
}

// readFloats fills dst from little-endian values of dtype F32, F16 or BF16
// read from r, in chunks so that no second full-size buffer is needed.
func readFloats(r io.Reader, dtype string, dst []float32) error {
	esize := int(safetensorsDtypeSize[dtype])
	buf := make([]byte, min(64<<10, len(dst)*esize))
	for len(dst) > 0 {
		n := min(len(buf)/esize, len(dst))
		b := buf[:n*esize]
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		decodeFloats(dst[:n], b, dtype)
		dst = dst[n:]
	}
	return nil
}

// decodeFloats converts the little-endian values of dtype F32, F16 or BF16
// in b to dst. It panics if dtype is not one of these or b does not hold
// len(dst) values.
func decodeFloats(dst []float32, b []byte, dtype string) {
	switch dtype {
	case "F32":
		b = b[:4*len(dst)]
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "F16":
		halvesToFloat32(dst, b)
	case "BF16":
		bfloat16sToFloat32(dst, b)
	default:
		panic("style: decodeFloats: dtype " + dtype)
	}
}

// writeSafetensors writes tensors as F32 with metadata, atomically. Tensor
// names must be unique, non-empty and not "__metadata__", and each tensor's
// data must have the length its shape gives; otherwise an error is returned
// and nothing is written. The header is padded with spaces so that the data
// section starts at a multiple of 8 bytes.
func writeSafetensors(path string, ts []tensor, meta map[string]string) error {
	hdr, err := safetensorsHeader(ts, meta)
	if err != nil {
		return fmt.Errorf("style: write %s: %w", path, err)
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		return encodeSafetensors(w, hdr, ts)
	})
	if err != nil {
		return fmt.Errorf("style: %w", err)
	}
	return nil
}

// safetensorsHeader validates ts and returns the padded JSON header
// describing them as F32, in order, with meta as __metadata__.
func safetensorsHeader(ts []tensor, meta map[string]string) ([]byte, error) {
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			hdr.WriteByte(',')
		}
		first = false
	}
	if len(meta) > 0 {
		sep()
		hdr.WriteString(`"__metadata__":`)
		mb, err := json.Marshal(meta) // keys sorted, values strings
		if err != nil {
			return nil, err
		}
		hdr.Write(mb)
	}
	seen := make(map[string]bool, len(ts))
	var off uint64
	for _, t := range ts {
		if t.name == "" || t.name == "__metadata__" || seen[t.name] {
			return nil, fmt.Errorf("invalid or duplicate tensor name %q", t.name)
		}
		seen[t.name] = true
		n := 1
		for _, d := range t.shape {
			if d < 0 {
				return nil, fmt.Errorf("tensor %q has a negative dimension in shape %v", t.name, t.shape)
			}
			n *= d
		}
		if n != len(t.data) {
			return nil, fmt.Errorf("tensor %q has %d values, shape %v needs %d", t.name, len(t.data), t.shape, n)
		}
		sep()
		nb, err := json.Marshal(t.name)
		if err != nil {
			return nil, err
		}
		hdr.Write(nb)
		shape := t.shape
		if shape == nil {
			shape = []int{}
		}
		sb, _ := json.Marshal(shape)
		end := off + 4*uint64(n)
		fmt.Fprintf(&hdr, `:{"dtype":"F32","shape":%s,"data_offsets":[%d,%d]}`, sb, off, end)
		off = end
	}
	hdr.WriteByte('}')
	for (8+hdr.Len())%8 != 0 {
		hdr.WriteByte(' ')
	}
	return hdr.Bytes(), nil
}

// encodeSafetensors writes a safetensors file: the header length, the
// header made by safetensorsHeader for ts, and the data.
func encodeSafetensors(w io.Writer, hdr []byte, ts []tensor) error {
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	buf := make([]byte, 0, 64<<10)
	for _, t := range ts {
		for _, v := range t.data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err := w.Write(buf)
	return err
}
