package style

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/big"
	"math/bits"
	"slices"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"
)

// PyTorch checkpoints (.pth, .pt) are pickles. They are read here without
// executing anything: the pickle stream is first scanned opcode by opcode
// (every length checked against the bytes actually present, size capped),
// then decoded by gopickle with a class resolver that knows only the few
// globals a state dict of tensors needs and refuses every other one by
// name. Then the tensors asked for are checked (names, shapes, contiguity,
// total size) against what the pickle says, and only then is their data
// read, each storage once.

// maxPickleLen caps the pickles of a checkpoint, all together. A VGG16
// state dict pickle is about 3 KB; the decoder allocates up to about 270
// bytes per pickle byte (a pickle of empty containers), so the cap bounds
// that to about 35 MB.
const maxPickleLen = 128 << 10

// maxZipDirectory caps the bytes zip.NewReader may read to list a zip
// checkpoint (its end records and central directory): 1 MiB, a few
// thousand records, where a VGG16 checkpoint has about 35. The listing
// costs about 6 bytes of memory per directory byte.
const maxZipDirectory = 1 << 20

// maxPickleLine caps text arguments (names, decimal numbers) and long
// integers in a pickle.
const maxPickleLine = 4096

// maxPickleMarks caps the MARK opcodes of a pickle, each of which makes the
// decoder allocate a fresh stack.
const maxPickleMarks = 1 << 16

// pthLegacyMagic is the magic number that starts a legacy torch.save file.
var pthLegacyMagic = func() *big.Int {
	n, _ := new(big.Int).SetString("1950a86a20f9469cfc6c", 16)
	return n
}()

// pthDtype describes a torch storage class.
type pthDtype struct {
	class string // e.g. "torch.FloatStorage"
	dtype string // safetensors name of the element type: F32, F16, BF16
}

func (d *pthDtype) size() int64 { return int64(safetensorsDtypeSize[d.dtype]) }

// pthStorage is a storage referenced from the pickle by persistent id.
type pthStorage struct {
	key   string
	dtype *pthDtype
	numel int64
}

// pthTensor is a tensor rebuilt (as a description only) from the pickle.
type pthTensor struct {
	storage *pthStorage
	offset  int64 // in elements
	size    []int
	stride  []int
}

// pthRebuild stands for torch._utils._rebuild_tensor and
// _rebuild_tensor_v2: it records the arguments and builds nothing.
type pthRebuild struct{ v2 bool }

func (r *pthRebuild) Call(args ...any) (any, error) {
	// _rebuild_tensor(storage, offset, size, stride)
	// _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
	if (!r.v2 && len(args) != 4) || (r.v2 && len(args) != 6 && len(args) != 7) {
		return nil, fmt.Errorf("tensor rebuild call with %d arguments", len(args))
	}
	st, ok := args[0].(*pthStorage)
	if !ok {
		return nil, fmt.Errorf("tensor rebuild call without a storage (got %T)", args[0])
	}
	off, ok := args[1].(int)
	if !ok || off < 0 {
		return nil, fmt.Errorf("tensor storage offset %v is not a non-negative integer", args[1])
	}
	size, err := pickleInts(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := pickleInts(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(size) != len(stride) {
		return nil, fmt.Errorf("tensor size %v and stride %v differ in rank", size, stride)
	}
	return &pthTensor{storage: st, offset: int64(off), size: size, stride: stride}, nil
}

// pthRebuildParameter stands for torch._utils._rebuild_parameter(data,
// requires_grad, backward_hooks), which wraps a tensor.
type pthRebuildParameter struct{}

func (pthRebuildParameter) Call(args ...any) (any, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("parameter rebuild call with %d arguments", len(args))
	}
	t, ok := args[0].(*pthTensor)
	if !ok {
		return nil, fmt.Errorf("parameter rebuild call without a tensor (got %T)", args[0])
	}
	return t, nil
}

func pickleInts(v any, what string) ([]int, error) {
	tup, ok := v.(*types.Tuple)
	if !ok {
		return nil, fmt.Errorf("tensor %s is %T, not a tuple", what, v)
	}
	if tup.Len() > maxTensorRank {
		return nil, fmt.Errorf("tensor %s has %d dimensions, more than %d", what, tup.Len(), maxTensorRank)
	}
	out := make([]int, tup.Len())
	for i := range out {
		n, ok := tup.Get(i).(int)
		if !ok || n < 0 {
			return nil, fmt.Errorf("tensor %s %v is not a tuple of non-negative integers", what, []any(*tup))
		}
		out[i] = n
	}
	return out, nil
}

// pthGlobalAllowed reports whether a pickle may name a global: the few a
// state dict of tensors needs.
func pthGlobalAllowed(module, name string) bool {
	if module == "collections" && name == "OrderedDict" {
		return true
	}
	_, err := pthFindClass(module, name)
	return err == nil
}

// pthFindClass resolves the globals a pickled state dict may name; every
// other one is refused. gopickle resolves three names itself before asking
// (collections.OrderedDict, __builtin__.object, copy_reg._reconstructor, all
// to inert Go values); scanPickle refuses the last two when they are named
// by GLOBAL or INST, which is how protocol 2 (torch.save's) names globals.
func pthFindClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor":
		return &pthRebuild{}, nil
	case "torch._utils._rebuild_tensor_v2":
		return &pthRebuild{v2: true}, nil
	case "torch._utils._rebuild_parameter":
		return pthRebuildParameter{}, nil
	case "torch.FloatStorage":
		return &pthDtype{class: "torch.FloatStorage", dtype: "F32"}, nil
	case "torch.HalfStorage":
		return &pthDtype{class: "torch.HalfStorage", dtype: "F16"}, nil
	case "torch.BFloat16Storage":
		return &pthDtype{class: "torch.BFloat16Storage", dtype: "BF16"}, nil
	case "torch.LongStorage":
		// Batch norms' num_batches_tracked counters; never read (see
		// planPTH), but their storages are checked like the others.
		return &pthDtype{class: "torch.LongStorage", dtype: "I64"}, nil
	}
	return nil, fmt.Errorf("refusing pickle global %s.%s (only tensors of float32, float16 or bfloat16, and int64 counters, in a dict are accepted)", module, name)
}

// unpickleBounded decodes one pickle starting at off, which must end
// within the avail bytes present and within budget bytes (what is left of
// maxPickleLen), with persistent ids resolved by persistentLoad. It returns
// the value and the offset just past the pickle.
func unpickleBounded(r io.ReaderAt, off, avail, budget int64, path string, persistentLoad func(any) (any, error)) (v any, end int64, err error) {
	buf, err := scanPickle(r, off, avail, budget, path)
	if err != nil {
		return nil, 0, err
	}
	u := pickle.NewUnpickler(bytes.NewReader(buf))
	u.FindClass = pthFindClass
	u.PersistentLoad = persistentLoad
	u.GetExtension = func(code int) (any, error) {
		return nil, fmt.Errorf("refusing pickle extension code %d", code)
	}
	defer func() {
		// gopickle indexes and hashes what the stream gives it (odd DICT
		// items, unhashable keys); turn such failures on malformed input
		// into errors.
		if p := recover(); p != nil {
			v, end, err = nil, 0, &FormatError{Path: path, Offset: off, Msg: fmt.Sprintf("malformed pickle: %v", p)}
		}
	}()
	v, err = u.Load()
	if err != nil {
		var fe *FormatError
		if errors.As(err, &fe) {
			return nil, 0, err
		}
		return nil, 0, &FormatError{Path: path, Offset: off, Msg: "decoding pickle", Err: err}
	}
	return v, off + int64(len(buf)), nil
}

// scanPickle walks the opcodes of the pickle at off without interpreting
// them, checking every length against the avail bytes present and the
// budget, and returns its bytes up to and including STOP.
func scanPickle(r io.ReaderAt, off, avail, budget int64, path string) ([]byte, error) {
	limit := min(avail, budget)
	capped := budget < avail
	if limit <= 0 {
		if capped {
			return nil, &FormatError{Path: path, Offset: off, Msg: fmt.Sprintf("pickles longer than the %d-byte limit", maxPickleLen)}
		}
		return nil, &FormatError{Path: path, Offset: off, Msg: "missing pickle"}
	}
	buf := make([]byte, min(limit, 4<<10))
	n, err := r.ReadAt(buf, off)
	buf = buf[:n]
	if err != nil && err != io.EOF {
		return nil, &FormatError{Path: path, Offset: off, Msg: "reading pickle", Err: err}
	}
	// need makes sure buf holds k more bytes from position p.
	need := func(p, k int64) error {
		if k < 0 || p+k > limit {
			if capped {
				return &FormatError{Path: path, Offset: off + p, Msg: fmt.Sprintf("pickles longer than the %d-byte limit", maxPickleLen)}
			}
			return &FormatError{Path: path, Offset: off + p, Msg: "truncated pickle"}
		}
		if p+k <= int64(len(buf)) {
			return nil
		}
		grown := make([]byte, min(limit, max(2*int64(len(buf)), p+k)))
		m, err := r.ReadAt(grown[len(buf):], off+int64(len(buf)))
		copy(grown, buf)
		buf = grown[:len(buf)+m]
		if int64(len(buf)) < p+k {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return &FormatError{Path: path, Offset: off + int64(len(buf)), Msg: "truncated pickle", Err: err}
		}
		return nil
	}
	var p int64
	marks := 0
	line := func() error { // a newline-terminated argument
		for start := p; ; {
			if err := need(p, 1); err != nil {
				return err
			}
			c := buf[p]
			p++
			if c == '\n' {
				return nil
			}
			if p-start > maxPickleLine {
				return &FormatError{Path: path, Offset: off + start, Msg: fmt.Sprintf("pickle text argument longer than %d bytes", maxPickleLine)}
			}
		}
	}
	// counted reads a length of lenBytes bytes, then that many bytes; long
	// integers must have between 1 and maxPickleLine bytes (gopickle decodes
	// them in quadratic time and cannot decode an empty one).
	counted := func(lenBytes int, signed, long bool) error {
		if err := need(p, int64(lenBytes)); err != nil {
			return err
		}
		var n uint64
		switch lenBytes {
		case 1:
			n = uint64(buf[p])
		case 4:
			n = uint64(binary.LittleEndian.Uint32(buf[p:]))
			if signed && n >= 1<<31 {
				return &FormatError{Path: path, Offset: off + p, Msg: "negative length in pickle"}
			}
		case 8:
			n = binary.LittleEndian.Uint64(buf[p:])
		}
		p += int64(lenBytes)
		if n > uint64(limit) {
			return &FormatError{Path: path, Offset: off + p, Msg: fmt.Sprintf("pickle argument of %d bytes exceeds the %d-byte limit", n, limit)}
		}
		if long && (n == 0 || n > maxPickleLine) {
			return &FormatError{Path: path, Offset: off + p, Msg: fmt.Sprintf("long integer of %d bytes in pickle", n)}
		}
		if err := need(p, int64(n)); err != nil {
			return err
		}
		p += int64(n)
		return nil
	}
	fixed := func(k int64) error {
		if err := need(p, k); err != nil {
			return err
		}
		p += k
		return nil
	}
	for {
		if err := need(p, 1); err != nil {
			return nil, err
		}
		op := buf[p]
		p++
		var err error
		switch op {
		case '.': // STOP
			return buf[:p], nil
		case '(':
			marks++
			if marks > maxPickleMarks {
				return nil, &FormatError{Path: path, Offset: off + p - 1, Msg: "too many MARK opcodes in pickle"}
			}
		case '0', '1', '2', 'N', 'Q', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x97, 0x98:
			// no argument
		case 'F', 'I', 'L', 'P', 'S', 'V', 'g', 'p':
			err = line()
		case 'c', 'i': // GLOBAL, INST: "module\nname\n", checked here
			at := p
			if err = line(); err == nil {
				mid := p
				if err = line(); err == nil {
					module, name := string(buf[at:mid-1]), string(buf[mid:p-1])
					if !pthGlobalAllowed(module, name) {
						err = &FormatError{Path: path, Offset: off + at - 1, Msg: fmt.Sprintf("refusing pickle global %s.%s", module, name)}
					}
				}
			}
		case 'K', 'h', 'q', 0x80, 0x82:
			err = fixed(1)
		case 'M', 0x83:
			err = fixed(2)
		case 'J', 'j', 'r', 0x84:
			err = fixed(4)
		case 'G', 0x95: // BINFLOAT, FRAME (the frame's contents are scanned as opcodes)
			err = fixed(8)
		case 'T', 0x8b: // BINSTRING, LONG4: signed 4-byte length
			err = counted(4, true, op == 0x8b)
		case 'X', 'B':
			err = counted(4, false, false)
		case 'U', 'C', 0x8c:
			err = counted(1, false, false)
		case 0x8a: // LONG1
			err = counted(1, false, true)
		case 0x8d, 0x8e, 0x96:
			err = counted(8, false, false)
		default:
			err = &FormatError{Path: path, Offset: off + p - 1, Msg: fmt.Sprintf("unknown pickle opcode 0x%02x", op)}
		}
		if err != nil {
			return nil, err
		}
	}
}

// stateDictTensors finds the name -> tensor entries of an unpickled
// checkpoint.
func stateDictTensors(v any, path string) (map[string]*pthTensor, error) {
	items := func(v any) ([][2]any, bool) {
		switch d := v.(type) {
		case *types.OrderedDict:
			var out [][2]any
			for e := d.List.Front(); e != nil; e = e.Next() {
				ent := e.Value.(*types.OrderedDictEntry)
				out = append(out, [2]any{ent.Key, ent.Value})
			}
			return out, true
		case *types.Dict:
			var out [][2]any
			for _, ent := range *d {
				out = append(out, [2]any{ent.Key, ent.Value})
			}
			return out, true
		}
		return nil, false
	}
	kv, ok := items(v)
	if !ok {
		return nil, &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf("checkpoint holds %T, not a state dict", v)}
	}
	for _, e := range kv { // a training checkpoint: {"state_dict": {...}, ...}
		if e[0] == "state_dict" {
			if inner, ok := items(e[1]); ok {
				kv = inner
			}
		}
	}
	out := make(map[string]*pthTensor)
	for _, e := range kv {
		name, ok := e[0].(string)
		if !ok {
			continue
		}
		if t, ok := e[1].(*pthTensor); ok {
			if _, dup := out[name]; dup {
				return nil, &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf("duplicate tensor %q", name)}
			}
			out[name] = t
		}
	}
	return out, nil
}

// checkContiguous verifies that t is a C-contiguous view lying inside its
// storage and returns its element count.
func (t *pthTensor) checkContiguous() (int64, error) {
	numel := int64(1)
	for _, d := range t.size {
		hi, lo := bits.Mul64(uint64(numel), uint64(d))
		if hi != 0 || lo > math.MaxInt64/8 {
			return 0, fmt.Errorf("size %v overflows", t.size)
		}
		numel = int64(lo)
	}
	want := int64(1)
	for i := len(t.size) - 1; i >= 0; i-- {
		if t.size[i] != 1 && int64(t.stride[i]) != want {
			return 0, fmt.Errorf("size %v with stride %v is not contiguous (only contiguous tensors are supported)", t.size, t.stride)
		}
		want *= int64(t.size[i])
	}
	if t.offset > t.storage.numel || numel > t.storage.numel-t.offset {
		return 0, fmt.Errorf("elements %d..%d lie outside storage %q of %d elements", t.offset, t.offset+numel, t.storage.key, t.storage.numel)
	}
	return numel, nil
}

// readPTHLegacy reads the pre-zip torch.save format: pickles of the magic
// number, protocol version and system info, the object pickle, the pickled
// list of storage keys, then for each storage an 8-byte element count
// followed by its raw little-endian data. It returns the tensors plan
// keeps.
func readPTHLegacy(r io.ReaderAt, size int64, path string, plan *tensorPlan) (map[string]tensor, error) {
	noPersistent := func(any) (any, error) { return nil, errors.New("unexpected persistent id") }
	pos := int64(0)
	// The five pickles share one length budget.
	unpickle := func(persistentLoad func(any) (any, error)) (any, error) {
		v, end, err := unpickleBounded(r, pos, size-pos, maxPickleLen-pos, path, persistentLoad)
		pos = end
		return v, err
	}
	magic, err := unpickle(noPersistent)
	if err != nil {
		return nil, err
	}
	if m, ok := magic.(*big.Int); !ok || m.Cmp(pthLegacyMagic) != 0 {
		return nil, &FormatError{Path: path, Offset: 0, Msg: "not a PyTorch file (bad magic number)"}
	}
	protoOff := pos
	proto, err := unpickle(noPersistent)
	if err != nil {
		return nil, err
	}
	if proto != 1001 {
		return nil, &FormatError{Path: path, Offset: protoOff, Msg: fmt.Sprintf("unsupported PyTorch protocol version %v", proto)}
	}
	sysOff := pos
	sysInfo, err := unpickle(noPersistent)
	if err != nil {
		return nil, err
	}
	if d, ok := sysInfo.(*types.Dict); ok {
		if le, ok := d.Get("little_endian"); ok && le != true {
			return nil, &FormatError{Path: path, Offset: sysOff, Msg: "big-endian PyTorch files are not supported"}
		}
	}

	storages := make(map[string]*pthStorage)
	objOff := pos
	obj, err := unpickle(func(id any) (any, error) {
		tup, ok := id.(*types.Tuple)
		if !ok || tup.Len() != 6 || tup.Get(0) != "storage" {
			return nil, fmt.Errorf("unsupported persistent id %v", id)
		}
		return pthPersistentStorage(tup, storages, tup.Get(5))
	})
	if err != nil {
		return nil, err
	}
	keysOff := pos
	keysV, err := unpickle(noPersistent)
	if err != nil {
		return nil, err
	}
	list, ok := keysV.(*types.List)
	if !ok {
		return nil, &FormatError{Path: path, Offset: keysOff, Msg: "storage key list is not a list"}
	}
	tensors, err := stateDictTensors(obj, path)
	if err != nil {
		return nil, err
	}
	// Locate every storage's data (8 bytes of element count, then data),
	// reading only the counts.
	dataAt := make(map[string]int64, len(*list))
	for _, k := range *list {
		key, ok := k.(string)
		if !ok {
			return nil, &FormatError{Path: path, Offset: keysOff, Msg: "storage key is not a string"}
		}
		st, ok := storages[key]
		if !ok {
			return nil, &FormatError{Path: path, Offset: keysOff, Msg: fmt.Sprintf("storage %q is not referenced by the pickle", key)}
		}
		if _, dup := dataAt[key]; dup {
			return nil, &FormatError{Path: path, Offset: keysOff, Msg: fmt.Sprintf("storage %q listed twice", key)}
		}
		var cnt [8]byte
		if pos > size-8 {
			return nil, &FormatError{Path: path, Offset: pos, Msg: fmt.Sprintf("file ends before storage %q", key)}
		}
		if _, err := r.ReadAt(cnt[:], pos); err != nil {
			return nil, &FormatError{Path: path, Offset: pos, Msg: "reading storage size", Err: err}
		}
		if n := binary.LittleEndian.Uint64(cnt[:]); n != uint64(st.numel) {
			return nil, &FormatError{Path: path, Offset: pos, Msg: fmt.Sprintf("storage %q holds %d elements, the pickle says %d", key, n, st.numel)}
		}
		pos += 8
		nbytes := st.numel * st.dtype.size() // numel <= MaxInt64/8, checked in pthPersistentStorage
		if nbytes > size-pos {
			return nil, &FormatError{Path: path, Offset: pos, Msg: fmt.Sprintf("storage %q of %d bytes runs past the end of the file", key, nbytes)}
		}
		dataAt[key] = pos
		pos += nbytes
	}
	byStorage, err := planPTH(tensors, plan, path, objOff)
	if err != nil {
		return nil, err
	}
	out := make(map[string]tensor)
	for _, key := range slices.Sorted(maps.Keys(byStorage)) {
		views := byStorage[key]
		st := views[0].t.storage
		at, ok := dataAt[st.key]
		if !ok {
			return nil, &FormatError{Path: path, Offset: keysOff, Msg: fmt.Sprintf("tensor %q: storage %q has no data", views[0].name, st.key)}
		}
		sr := io.NewSectionReader(r, at, st.numel*st.dtype.size())
		if err := readViews(sr, st.dtype.dtype, views, out); err != nil {
			return nil, &FormatError{Path: path, Offset: at, Msg: fmt.Sprintf("storage %q: reading data", st.key), Err: err}
		}
	}
	return out, nil
}

// pthView is a kept tensor: a view of its storage, and the values read.
type pthView struct {
	name  string
	t     *pthTensor
	numel int64
	data  []float32
}

// planPTH selects the tensors plan keeps, checks that each is a contiguous
// view lying inside its storage, and applies the plan's check and byte
// budget, all before any tensor data is read or memory allocated for it.
// It returns the kept tensors grouped by storage key, each group sorted by
// offset, with their data allocated. off locates errors (the pickle).
func planPTH(tensors map[string]*pthTensor, plan *tensorPlan, path string, off int64) (map[string][]*pthView, error) {
	names := make([]string, 0, len(tensors))
	for name := range tensors {
		if plan.keeps(name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	shapes := make(map[string][]int, len(names))
	views := make([]*pthView, 0, len(names))
	for _, name := range names {
		t := tensors[name]
		if d := t.storage.dtype.dtype; d != "F32" && d != "F16" && d != "BF16" {
			return nil, &FormatError{Path: path, Offset: off, Msg: fmt.Sprintf("tensor %q: %s is not supported (want float32, float16 or bfloat16)", name, t.storage.dtype.class)}
		}
		numel, err := t.checkContiguous()
		if err != nil {
			return nil, &FormatError{Path: path, Offset: off, Msg: fmt.Sprintf("tensor %q: %v", name, err)}
		}
		shapes[name] = t.size
		views = append(views, &pthView{name: name, t: t, numel: numel})
	}
	if err := plan.validate(shapes, nil, path); err != nil {
		return nil, err
	}
	byStorage := make(map[string][]*pthView)
	for _, v := range views {
		v.data = make([]float32, v.numel)
		byStorage[v.t.storage.key] = append(byStorage[v.t.storage.key], v)
	}
	for _, vs := range byStorage {
		slices.SortStableFunc(vs, func(a, b *pthView) int { return cmp.Compare(a.t.offset, b.t.offset) })
	}
	return byStorage, nil
}

// readViews reads the values of views, which share one storage of dtype
// and are sorted by offset, in one pass over the storage's data from r
// (which starts at its first element), and adds them to out. A storage
// shared by several tensors is thus read once, and never past the end of
// the last view; a gap no view needs is skipped (sought over if r is an
// io.Seeker).
func readViews(r io.Reader, dtype string, views []*pthView, out map[string]tensor) error {
	esize := int64(safetensorsDtypeSize[dtype])
	var end int64
	for _, v := range views {
		end = max(end, v.t.offset+v.numel)
	}
	const chunk = 16 << 10 // elements decoded at a time
	vals := make([]float32, min(chunk, end))
	raw := make([]byte, int64(len(vals))*esize)
	for pos := int64(0); pos < end; {
		next := end // the first element from pos that a view needs
		for _, v := range views {
			if v.t.offset+v.numel > pos {
				next = min(next, max(v.t.offset, pos))
			}
		}
		if next > pos {
			if err := skipBytes(r, (next-pos)*esize); err != nil {
				return err
			}
			pos = next
			continue
		}
		n := min(chunk, end-pos)
		b := raw[:n*esize]
		if _, err := io.ReadFull(r, b); err != nil {
			return err
		}
		decodeFloats(vals[:n], b, dtype)
		for _, v := range views {
			lo, hi := max(pos, v.t.offset), min(pos+n, v.t.offset+v.numel)
			if lo < hi {
				copy(v.data[lo-v.t.offset:hi-v.t.offset], vals[lo-pos:hi-pos])
			}
		}
		pos += n
	}
	for _, v := range views {
		out[v.name] = tensor{name: v.name, shape: v.t.size, data: v.data}
	}
	return nil
}

// skipBytes advances r by n bytes.
func skipBytes(r io.Reader, n int64) error {
	if s, ok := r.(io.Seeker); ok {
		_, err := s.Seek(n, io.SeekCurrent)
		return err
	}
	m, err := io.CopyN(io.Discard, r, n)
	if m < n && err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// pthPersistentStorage resolves a ("storage", class, key, location, numel,
// ...) persistent id, with the same storage object for the same key.
func pthPersistentStorage(tup *types.Tuple, storages map[string]*pthStorage, view any) (any, error) {
	dt, ok := tup.Get(1).(*pthDtype)
	if !ok {
		return nil, fmt.Errorf("storage of unsupported type %v", tup.Get(1))
	}
	key, ok := tup.Get(2).(string)
	if !ok {
		return nil, errors.New("storage key is not a string")
	}
	numel, ok := tup.Get(4).(int)
	if !ok || numel < 0 || int64(numel) > math.MaxInt64/8 {
		return nil, fmt.Errorf("storage %q has invalid size %v", key, tup.Get(4))
	}
	if view != nil {
		return nil, fmt.Errorf("storage %q is a view of another storage, which is not supported", key)
	}
	if st, ok := storages[key]; ok {
		if st.dtype.dtype != dt.dtype || st.numel != int64(numel) {
			return nil, fmt.Errorf("storage %q declared twice with different types or sizes", key)
		}
		return st, nil
	}
	st := &pthStorage{key: key, dtype: dt, numel: int64(numel)}
	storages[key] = st
	return st, nil
}

// readPTHZip reads the zip format of torch.save (PyTorch 1.6 and later):
// ARCHIVE/data.pkl holds the pickle, ARCHIVE/data/KEY the raw storages. It
// returns the tensors plan keeps.
func readPTHZip(r io.ReaderAt, size int64, path string, plan *tensorPlan) (map[string]tensor, error) {
	br := &budgetReaderAt{r: r, left: maxZipDirectory + 66<<10} // + the end-record search
	zr, err := zip.NewReader(br, size)
	if err != nil {
		return nil, &FormatError{Path: path, Offset: -1, Msg: "reading zip archive", Err: err}
	}
	br.left = -1
	records := make(map[string]*zip.File, len(zr.File))
	prefix := ""
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/data.pkl") && strings.Count(f.Name, "/") == 1 {
			prefix = strings.TrimSuffix(f.Name, "data.pkl")
		}
		records[f.Name] = f
	}
	if prefix == "" {
		if _, ok := records["constants.pkl"]; ok {
			return nil, &FormatError{Path: path, Offset: -1, Msg: "TorchScript archives are not supported"}
		}
		return nil, &FormatError{Path: path, Offset: -1, Msg: "zip archive has no ARCHIVE/data.pkl record: not a PyTorch checkpoint"}
	}
	if _, ok := records[prefix+"constants.pkl"]; ok {
		return nil, &FormatError{Path: path, Offset: -1, Msg: "TorchScript archives are not supported"}
	}
	if bo, ok := records[prefix+"byteorder"]; ok {
		b, err := readZipRecord(bo, 16)
		if err != nil || strings.TrimSpace(string(b)) != "little" {
			return nil, &FormatError{Path: path, Offset: recordOffset(bo), Msg: fmt.Sprintf("byte order %q is not supported", b), Err: err}
		}
	}
	pklRec := records[prefix+"data.pkl"]
	if pklRec.UncompressedSize64 > maxPickleLen {
		return nil, &FormatError{Path: path, Offset: recordOffset(pklRec), Msg: fmt.Sprintf("data.pkl of %d bytes exceeds the %d-byte limit", pklRec.UncompressedSize64, maxPickleLen)}
	}
	pkl, err := readZipRecord(pklRec, maxPickleLen)
	if err != nil {
		return nil, &FormatError{Path: path, Offset: recordOffset(pklRec), Msg: "reading data.pkl", Err: err}
	}
	storages := make(map[string]*pthStorage)
	obj, _, err := unpickleBounded(bytes.NewReader(pkl), 0, int64(len(pkl)), maxPickleLen, path+":"+pklRec.Name, func(id any) (any, error) {
		tup, ok := id.(*types.Tuple)
		if !ok || tup.Len() != 5 || tup.Get(0) != "storage" {
			return nil, fmt.Errorf("unsupported persistent id %v", id)
		}
		return pthPersistentStorage(tup, storages, nil)
	})
	if err != nil {
		return nil, err
	}
	tensors, err := stateDictTensors(obj, path)
	if err != nil {
		return nil, err
	}
	// Check every storage record the kept tensors need before allocating.
	for _, name := range slices.Sorted(maps.Keys(tensors)) {
		t := tensors[name]
		if !plan.keeps(name) {
			continue
		}
		rec, ok := records[prefix+"data/"+t.storage.key]
		if !ok {
			return nil, &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf("tensor %q: storage record data/%s is missing", name, t.storage.key)}
		}
		if err := checkZipRecordSize(rec, size); err != nil {
			return nil, &FormatError{Path: path, Offset: recordOffset(rec), Msg: fmt.Sprintf("tensor %q: %v", name, err)}
		}
		if want := t.storage.numel * t.storage.dtype.size(); rec.UncompressedSize64 != uint64(want) {
			return nil, &FormatError{Path: path, Offset: recordOffset(rec), Msg: fmt.Sprintf("tensor %q: storage record %s holds %d bytes, the pickle says %d", name, rec.Name, rec.UncompressedSize64, want)}
		}
	}
	byStorage, err := planPTH(tensors, plan, path, -1)
	if err != nil {
		return nil, err
	}
	out := make(map[string]tensor)
	for _, key := range slices.Sorted(maps.Keys(byStorage)) {
		views := byStorage[key]
		rec := records[prefix+"data/"+key]
		err := func() error {
			// A stored record (what torch.save writes) is read in place,
			// skipping what no tensor needs; a deflated one is inflated
			// once, up to the end of the last tensor.
			if rec.Method == zip.Store {
				raw, err := rec.OpenRaw()
				if err != nil {
					return err
				}
				return readViews(raw, views[0].t.storage.dtype.dtype, views, out)
			}
			rc, err := rec.Open()
			if err != nil {
				return err
			}
			defer rc.Close()
			return readViews(bufio.NewReaderSize(rc, 64<<10), views[0].t.storage.dtype.dtype, views, out)
		}()
		if err != nil {
			return nil, &FormatError{Path: path, Offset: recordOffset(rec), Msg: fmt.Sprintf("tensor %q: reading %s", views[0].name, rec.Name), Err: err}
		}
	}
	return out, nil
}

// budgetReaderAt fails reads once left bytes have been read; a negative
// left means no limit.
type budgetReaderAt struct {
	r    io.ReaderAt
	left int64
}

func (b *budgetReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if b.left >= 0 {
		if int64(len(p)) > b.left {
			return 0, fmt.Errorf("zip directory longer than %d bytes", maxZipDirectory)
		}
		b.left -= int64(len(p))
	}
	return b.r.ReadAt(p, off)
}

// checkZipRecordSize checks that the sizes a zip record declares are
// possible in an archive of the given size: its data lies inside the
// archive, stored records (what torch.save writes) hold as many bytes as
// they claim, deflated ones no more than deflate's maximum ratio allows.
func checkZipRecordSize(f *zip.File, archive int64) error {
	c, u := f.CompressedSize64, f.UncompressedSize64
	off := recordOffset(f)
	switch {
	case c > uint64(archive):
		return fmt.Errorf("record %s claims %d compressed bytes in a %d-byte archive", f.Name, c, archive)
	case off < 0 || uint64(off) > uint64(archive)-c:
		return fmt.Errorf("record %s of %d bytes at offset %d runs past the end of the %d-byte archive", f.Name, c, off, archive)
	case f.Method == zip.Store && u != c:
		return fmt.Errorf("stored record %s claims %d bytes but holds %d", f.Name, u, c)
	case f.Method == zip.Deflate && u/1032 > c:
		return fmt.Errorf("deflated record %s claims %d bytes from %d compressed", f.Name, u, c)
	case f.Method != zip.Store && f.Method != zip.Deflate:
		return fmt.Errorf("record %s uses unsupported compression method %d", f.Name, f.Method)
	}
	return nil
}

// readZipRecord reads a whole zip record of at most limit bytes.
func readZipRecord(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("record %s is longer than %d bytes", f.Name, limit)
	}
	return b, nil
}

// recordOffset returns the offset of a zip record's data in the archive, or
// -1 if it is unknown.
func recordOffset(f *zip.File) int64 {
	off, err := f.DataOffset()
	if err != nil {
		return -1
	}
	return off
}
