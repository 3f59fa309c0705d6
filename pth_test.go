package style

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// This file builds PyTorch checkpoints byte by byte, the way torch.save
// writes them (pickle protocol 2), so that the reader can be tested on
// files with every property under control: storage offsets, strides, half
// precision, shared storages and hostile content.

// pthSpec describes one tensor of a synthetic checkpoint.
type pthSpec struct {
	name   string
	shape  []int
	data   []float32 // row-major values
	half   bool      // store as float16 (values should be representable)
	long   bool      // store as int64 (a batch norm's num_batches_tracked)
	offset int       // elements of padding before the tensor in its storage
	extra  int       // elements of padding after it
	stride []int     // nil: contiguous
	trim   int       // elements dropped from the end of the storage
}

// pthFile describes a synthetic checkpoint.
type pthFile struct {
	tensors []pthSpec
	zip     bool
	// inject is raw pickle inserted as an extra dict item (key, value)
	// before SETITEMS, to smuggle hostile content into the state dict.
	inject []byte
	// view adds legacy view metadata to the first storage's persistent id.
	view bool
	// bigEndian marks the legacy system info as big-endian.
	bigEndian bool
	// countDelta is added to the legacy storage element counts on disk.
	countDelta int
	// lieSize makes the zip directory claim 1 TB for storage 0.
	lieSize bool
	// v1 rebuilds tensors with torch._utils._rebuild_tensor(storage,
	// offset, size, stride), as PyTorch before 0.4 wrote them.
	v1 bool
	// stateMeta adds the _metadata attribute that Module.state_dict()
	// sets, restored with BUILD.
	stateMeta bool
	// shared, if > 0, puts every tensor in one storage of shared elements,
	// at its offset, as slices of a flat parameter buffer are (a later
	// tensor overwrites the elements of an earlier one it overlaps).
	shared int
	// deflate compresses the zip records.
	deflate bool
}

// pickler appends pickle opcodes.
type pickler struct{ bytes.Buffer }

func (p *pickler) op(b ...byte) { p.Write(b) }
func (p *pickler) str(s string) {
	p.op('X')
	binary.Write(p, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
}
func (p *pickler) int(n int) {
	p.op('J')
	binary.Write(p, binary.LittleEndian, int32(n))
}
func (p *pickler) global(module, name string) { p.WriteString("c" + module + "\n" + name + "\n") }
func (p *pickler) ints(ns []int) {
	p.op('(')
	for _, n := range ns {
		p.int(n)
	}
	p.op('t')
}

func contiguousStride(shape []int) []int {
	s := make([]int, len(shape))
	acc := 1
	for i := len(shape) - 1; i >= 0; i-- {
		s[i] = acc
		acc *= shape[i]
	}
	return s
}

// float32to16 rounds to the nearest float16 (ties to even) for values in
// the normal float16 range, zero, infinities and NaN, which is all the
// tests need.
func float32to16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	switch {
	case f == 0:
		return sign
	case math.IsInf(float64(f), 0):
		return sign | 0x7c00
	case f != f:
		return 0x7e00
	}
	exp := int(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	if exp <= 0 || exp >= 31 {
		panic("float32to16: value out of the normal float16 range")
	}
	h := uint32(exp)<<10 | mant>>13
	rest := mant & 0x1fff
	if rest > 0x1000 || (rest == 0x1000 && h&1 == 1) {
		h++
	}
	return sign | uint16(h)
}

func (s pthSpec) storageBytes() []byte {
	var buf bytes.Buffer
	vals := make([]float32, 0, s.offset+len(s.data)+s.extra)
	vals = append(vals, make([]float32, s.offset)...)
	vals = append(vals, s.data...)
	vals = append(vals, make([]float32, s.extra)...)
	vals = vals[:len(vals)-s.trim]
	for _, v := range vals {
		if s.long {
			binary.Write(&buf, binary.LittleEndian, int64(v))
		} else if s.half {
			binary.Write(&buf, binary.LittleEndian, float32to16(v))
		} else {
			binary.Write(&buf, binary.LittleEndian, v)
		}
	}
	return buf.Bytes()
}

func (s pthSpec) numel() int { return s.offset + len(s.data) + s.extra - s.trim }

// mainPickle writes the state dict pickle.
func (f *pthFile) mainPickle() []byte {
	var p pickler
	p.op(0x80, 2)
	p.global("collections", "OrderedDict")
	p.op(')', 'R', '(')
	for i, t := range f.tensors {
		p.str(t.name)
		if f.v1 {
			p.global("torch._utils", "_rebuild_tensor")
		} else {
			p.global("torch._utils", "_rebuild_tensor_v2")
		}
		p.op('(', '(')
		p.str("storage")
		if t.half {
			p.global("torch", "HalfStorage")
		} else if t.long {
			p.global("torch", "LongStorage")
		} else {
			p.global("torch", "FloatStorage")
		}
		if f.shared > 0 {
			p.str("0")
			p.str("cpu")
			p.int(f.shared)
		} else {
			p.str(strconv.Itoa(i))
			p.str("cpu")
			p.int(t.numel())
		}
		if !f.zip {
			if f.view && i == 0 {
				p.op('(')
				p.str("v0")
				p.int(0)
				p.int(t.numel())
				p.op('t')
			} else {
				p.op('N')
			}
		}
		p.op('t', 'Q')
		p.int(t.offset)
		p.ints(t.shape)
		stride := t.stride
		if stride == nil {
			stride = contiguousStride(t.shape)
		}
		p.ints(stride)
		if !f.v1 {
			p.op(0x89)
			p.global("collections", "OrderedDict")
			p.op(')', 'R')
		}
		p.op('t', 'R')
	}
	p.Write(f.inject)
	p.op('u')
	if f.stateMeta { // {"_metadata": OrderedDict([("", {"version": 1})])}
		p.op('}')
		p.str("_metadata")
		p.global("collections", "OrderedDict")
		p.op(')', 'R', '(')
		p.str("")
		p.op('}')
		p.str("version")
		p.int(1)
		p.op('s', 'u', 's', 'b')
	}
	p.op('.')
	return p.Bytes()
}

// bytes returns the checkpoint file.
func (f *pthFile) bytes(t testing.TB) []byte {
	if f.zip {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		method := zip.Store
		if f.deflate {
			method = zip.Deflate
		}
		add := func(name string, data []byte) {
			w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/" + name, Method: method})
			if f.lieSize && name == "data/0" {
				w, err = zw.CreateRaw(&zip.FileHeader{Name: "archive/" + name, Method: zip.Store,
					CompressedSize64: uint64(len(data)), UncompressedSize64: 1 << 40})
			}
			require.NoError(t, err)
			w.Write(data)
		}
		add("data.pkl", f.mainPickle())
		add("byteorder", []byte("little"))
		if f.shared > 0 {
			add("data/0", f.sharedStorage())
		}
		for i, s := range f.tensors {
			if f.shared == 0 {
				add("data/"+strconv.Itoa(i), s.storageBytes())
			}
		}
		add("version", []byte("3\n"))
		require.NoError(t, zw.Close())
		return buf.Bytes()
	}
	var out pickler
	// magic number, protocol version, system info
	out.op(0x80, 2, 0x8a, 10)
	out.Write([]byte{0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19})
	out.op('.')
	out.op(0x80, 2, 'M', 0xe9, 0x03, '.')
	out.op(0x80, 2, '}', '(')
	out.str("protocol_version")
	out.op('M', 0xe9, 0x03)
	out.str("little_endian")
	if f.bigEndian {
		out.op(0x89)
	} else {
		out.op(0x88)
	}
	out.op('u', '.')
	out.Write(f.mainPickle())
	out.op(0x80, 2, ']', '(')
	if f.shared > 0 {
		out.str("0")
		out.op('e', '.')
		binary.Write(&out, binary.LittleEndian, uint64(f.shared+f.countDelta))
		out.Write(f.sharedStorage())
		return out.Bytes()
	}
	for i := range f.tensors {
		out.str(strconv.Itoa(i))
	}
	out.op('e', '.')
	for _, s := range f.tensors {
		binary.Write(&out, binary.LittleEndian, uint64(s.numel()+f.countDelta))
		out.Write(s.storageBytes())
	}
	return out.Bytes()
}

// sharedStorage returns the bytes of the storage all tensors share, of
// float16 if the first tensor is.
func (f *pthFile) sharedStorage() []byte {
	half := len(f.tensors) > 0 && f.tensors[0].half
	esize := 4
	if half {
		esize = 2
	}
	b := make([]byte, esize*f.shared)
	for _, s := range f.tensors {
		for i, v := range s.data {
			at := b[esize*(s.offset+i):]
			if half {
				binary.LittleEndian.PutUint16(at, float32to16(v))
			} else {
				binary.LittleEndian.PutUint32(at, math.Float32bits(v))
			}
		}
	}
	return b
}

func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(p, data, 0o644))
	return p
}

// testValues returns n deterministic values that float16 represents
// exactly (multiples of 1/1024 in [-1, 1)), so f16 files can be compared
// exactly.
func testValues(seed, n int) []float32 {
	out := make([]float32, n)
	x := uint64(seed)*0x9E3779B97F4A7C15 + 1
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		out[i] = float32(int(x%2048)-1024) / 1024
	}
	return out
}

// testDivisor is the width divisor of the small VGG16 networks the tests
// write.
const testDivisor = 32

// vgg16Specs returns the conv tensors of VGG16 with every width divided by
// divisor, plus a classifier tensor of classifier floats.
func vgg16Specs(divisor int, half bool, classifier int) []pthSpec {
	var specs []pthSpec
	for i, l := range vgg16Spec.layers {
		in, out := vgg16Spec.layerShape(i, divisor)
		specs = append(specs,
			pthSpec{name: l.weight, shape: []int{out, in, 3, 3}, data: testValues(2*i, out*in*9), half: half},
			pthSpec{name: l.bias, shape: []int{out}, data: testValues(2*i+1, out), half: half})
	}
	if classifier > 0 {
		specs = append(specs, pthSpec{name: "classifier.0.weight", shape: []int{classifier}, data: make([]float32, classifier), half: half})
	}
	return specs
}

func checkLayersMatchSpecs(t *testing.T, w *Weights, specs []pthSpec) {
	t.Helper()
	require.Len(t, w.layers, 13)
	for i, l := range w.layers {
		ws, bs := specs[2*i], specs[2*i+1]
		if l.Out != ws.shape[0] || l.In != ws.shape[1] {
			t.Fatalf("layer %d: %d -> %d, want %d -> %d", i, l.In, l.Out, ws.shape[1], ws.shape[0])
		}
		if !equalFloats(l.Weight, ws.data) || !equalFloats(l.Bias, bs.data) {
			t.Fatalf("layer %d: values differ from the file's", i)
		}
	}
}

func equalFloats(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestReadPTHInt64 checks that int64 tensors (batch norms'
// num_batches_tracked counters) are skipped when not needed and refused
// when they are.
func TestReadPTHInt64(t *testing.T) {
	for _, zip := range []bool{false, true} {
		specs := append(vgg16Specs(testDivisor, false, 0), pthSpec{name: "counter", shape: []int{}, data: []float32{7}, long: true})
		w, err := ReadWeights(writeTemp(t, "w.pth", (&pthFile{tensors: specs, zip: zip}).bytes(t)), "", testDivisor)
		require.NoError(t, err, "zip %v", zip)
		checkLayersMatchSpecs(t, w, specs[:len(specs)-1])

		specs[3].long = true
		p := writeTemp(t, "w.pth", (&pthFile{tensors: specs, zip: zip}).bytes(t))
		_, err = ReadWeights(p, "", testDivisor)
		require.ErrorIs(t, err, ErrFormat, "zip %v", zip)
		assert.ErrorContains(t, err, fmt.Sprintf("tensor %q: torch.LongStorage is not supported", specs[3].name), "zip %v", zip)
	}
}

func TestReadPTHSynthetic(t *testing.T) {
	for _, tc := range []struct {
		name      string
		file      pthFile
		zip, half bool
	}{
		{name: "legacy"},
		{name: "legacy_v1", file: pthFile{v1: true}},
		{name: "legacy_f16", half: true},
		{name: "legacy_state_meta", file: pthFile{stateMeta: true}},
		{name: "zip", zip: true},
		{name: "zip_f16", zip: true, half: true},
		{name: "zip_state_meta", zip: true, file: pthFile{stateMeta: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			specs := vgg16Specs(testDivisor, tc.half, 1000)
			f := tc.file
			f.tensors, f.zip = specs, tc.zip
			p := writeTemp(t, "w.pth", f.bytes(t))
			w, err := ReadWeights(p, "", testDivisor)
			require.NoError(t, err)
			// testValues are multiples of 1/1024 in [-1, 1): exact in float16.
			checkLayersMatchSpecs(t, w, specs)
			assert.Equal(t, PreprocessTorch, w.Preprocess)
			assert.Equal(t, p, w.Source)
			assert.Equal(t, mustSHA256(t, p), w.SHA256)
			assert.Equal(t, VGG16, w.Arch)
			assert.Equal(t, testDivisor, w.Divisor)
		})
	}
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r interface {
		ReadAt([]byte, int64) (int, error)
	}
	n int64
}

func (c *countingReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(b, off)
	c.n += int64(n)
	return n, err
}

func TestReadPTHSkipsUnkeptStorages(t *testing.T) {
	// A 4 MB "classifier" storage must be skipped, not read.
	specs := vgg16Specs(testDivisor, false, 1<<20)
	conv := int64(0)
	for _, s := range specs[:26] {
		conv += 4 * int64(len(s.data))
	}
	for _, isZip := range []bool{false, true} {
		data := (&pthFile{tensors: specs, zip: isZip}).bytes(t)
		c := &countingReaderAt{r: bytes.NewReader(data)}
		var err error
		plan := &tensorPlan{keep: vgg16Spec.hasTensor}
		if isZip {
			_, err = readPTHZip(c, int64(len(data)), "w.pth", plan)
		} else {
			_, err = readPTHLegacy(c, int64(len(data)), "w.pth", plan)
		}
		require.NoError(t, err)
		// Allowance: the pickles, zip directory and read-ahead buffers.
		assert.LessOrEqual(t, c.n, conv+256<<10, "zip=%v: bytes read of a %d-byte file", isZip, len(data))
	}
}

func TestReadPTHStorageOffsetAndSharing(t *testing.T) {
	// Tensors that start inside a larger storage (as slices of a flat
	// parameter buffer do) are read from the right place.
	specs := vgg16Specs(testDivisor, false, 0)
	for i := range specs {
		specs[i].offset = 3 + i
		specs[i].extra = 5
	}
	for _, isZip := range []bool{false, true} {
		p := writeTemp(t, "w.pth", (&pthFile{tensors: specs, zip: isZip}).bytes(t))
		w, err := ReadWeights(p, VGG16, testDivisor)
		require.NoError(t, err, "zip=%v", isZip)
		checkLayersMatchSpecs(t, w, specs)
	}
}

func TestReadPTHHostile(t *testing.T) {
	base := func() []pthSpec { return vgg16Specs(testDivisor, false, 0) }
	withInject := func(b []byte) []byte {
		var p pickler
		p.str("evil")
		p.Write(b)
		return p.Bytes()
	}
	var reduceGlobal pickler // os.system("true")
	reduceGlobal.global("os", "system")
	reduceGlobal.op('(')
	reduceGlobal.str("true")
	reduceGlobal.op('t', 'R')
	var reconstructor pickler // resolved inside gopickle, refused by the scanner
	reconstructor.global("copy_reg", "_reconstructor")
	var stackGlobal pickler // builtins.eval via STACK_GLOBAL
	stackGlobal.str("builtins")
	stackGlobal.str("eval")
	stackGlobal.op(0x93)
	var hugeString pickler // BINUNICODE8 claiming 2^60 bytes
	hugeString.op(0x8d)
	binary.Write(&hugeString, binary.LittleEndian, uint64(1)<<60)
	var oddDict pickler // DICT with an odd number of items: gopickle indexes past the end
	oddDict.op('(')
	oddDict.int(1)
	oddDict.op('d')
	var unhashable pickler // an OrderedDict keyed by bytes (a Go slice)
	unhashable.global("collections", "OrderedDict")
	unhashable.op(')', 'R', 'C', 1, 'a', 'N', 's')

	nonContig := base()
	nonContig[0].stride = []int{1, 2, 6, 18}
	half := func() []pthSpec { return vgg16Specs(testDivisor, true, 0) }

	cases := []struct {
		name string
		file pthFile
		want string
	}{
		{"reduce_global", pthFile{tensors: base(), inject: withInject(reduceGlobal.Bytes())}, "os.system"},
		{"reduce_global_zip", pthFile{tensors: base(), zip: true, inject: withInject(reduceGlobal.Bytes())}, "os.system"},
		{"copy_reg_global", pthFile{tensors: base(), inject: withInject(reconstructor.Bytes())}, "copy_reg._reconstructor"},
		{"stack_global", pthFile{tensors: base(), inject: withInject(stackGlobal.Bytes())}, "builtins.eval"},
		{"huge_string", pthFile{tensors: base(), inject: withInject(hugeString.Bytes())}, "limit"},
		{"odd_dict", pthFile{tensors: base(), inject: withInject(oddDict.Bytes())}, "pickle"},
		{"unhashable_key", pthFile{tensors: base(), inject: withInject(unhashable.Bytes())}, "pickle"},
		{"non_contiguous", pthFile{tensors: nonContig}, "not contiguous"},
		{"view", pthFile{tensors: base(), view: true}, "view"},
		{"big_endian", pthFile{tensors: base(), bigEndian: true}, "big-endian"},
		{"zip_size_lie", pthFile{tensors: base(), zip: true, lieSize: true}, "claims"},
		{"count_mismatch", pthFile{tensors: base(), countDelta: 1}, "elements"},
		{"count_mismatch_f16", pthFile{tensors: half(), countDelta: -1}, "elements"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeTemp(t, "w.pth", tc.file.bytes(t))
			_, err := ReadWeights(p, VGG16, testDivisor)
			require.ErrorIs(t, err, ErrFormat)
			assert.ErrorContains(t, err, tc.want)
			assert.ErrorContains(t, err, p, "the error names the file")
		})
	}

	// A tensor whose view extends past the end of its storage.
	for _, isZip := range []bool{false, true} {
		specs := base()
		specs[4].offset, specs[4].trim = 2, 3
		p := writeTemp(t, "w.pth", (&pthFile{tensors: specs, zip: isZip}).bytes(t))
		_, err := ReadWeights(p, VGG16, testDivisor)
		require.ErrorIs(t, err, ErrFormat, "zip=%v", isZip)
		assert.ErrorContains(t, err, "outside storage", "zip=%v", isZip)
	}
}

func TestReadPTHTruncated(t *testing.T) {
	for _, isZip := range []bool{false, true} {
		data := (&pthFile{tensors: vgg16Specs(testDivisor, false, 0), zip: isZip}).bytes(t)
		dir := t.TempDir()
		p := filepath.Join(dir, "w.pth")
		for _, cut := range cutPoints(len(data)) {
			require.NoError(t, os.WriteFile(p, data[:cut], 0o644))
			_, err := ReadWeights(p, VGG16, testDivisor)
			require.ErrorIs(t, err, ErrFormat, "zip=%v cut at %d of %d", isZip, cut, len(data))
		}
	}
}

// cutPoints returns every length up to 300 (the headers and pickles) and
// about 150 more spread over the rest of a file of n bytes, all shorter
// than n.
func cutPoints(n int) []int {
	var cuts []int
	for c := 0; c < n && c < 300; c++ {
		cuts = append(cuts, c)
	}
	for c := 300; c < n; c += max(1, n/150) {
		cuts = append(cuts, c)
	}
	return append(cuts, n-1)
}

func TestScanPickleLimits(t *testing.T) {
	// A pickle that never stops, longer than the cap, is refused without
	// being decoded.
	long := bytes.Repeat([]byte{'N'}, maxPickleLen+10)
	_, err := scanPickle(bytes.NewReader(long), 0, int64(len(long)), maxPickleLen, "x")
	assert.ErrorIs(t, err, ErrFormat, "over-long pickle")
	marks := bytes.Repeat([]byte{'('}, maxPickleMarks+1)
	_, err = scanPickle(bytes.NewReader(marks), 0, int64(len(marks)), int64(len(marks)), "x")
	assert.ErrorContains(t, err, "MARK", "too many marks")
	for _, bad := range [][]byte{
		{0x8a, 0, '.'},                 // empty LONG1
		{0x8b, 0xff, 0xff, 0xff, 0xff}, // negative LONG4 length
		{0xff},                         // unknown opcode
		append([]byte{'I'}, bytes.Repeat([]byte{'9'}, maxPickleLine+1)...), // endless text argument
	} {
		_, err := scanPickle(bytes.NewReader(bad), 0, int64(len(bad)), maxPickleLen, "x")
		assert.Error(t, err, "%q", bad)
	}
}

// FuzzReadPTH checks that no checkpoint makes the .pth reader panic, that
// every failure is a *FormatError, and that reading allocates at most
// twice the bytes of the tensors returned plus 64 MB (0 on error), both for
// any tensors (within a 256 MB budget) and for the VGG16 layers of divisors
// 1 and 64. Seeds include a 66 KB zip bomb and a legacy file whose 26
// tensors share one storage.
func FuzzReadPTH(f *testing.F) {
	f.Add((&pthFile{tensors: vgg16Specs(64, false, 0)}).bytes(f))
	f.Add((&pthFile{tensors: vgg16Specs(64, true, 0), zip: true}).bytes(f))
	f.Add((&pthFile{tensors: vgg16Specs(64, false, 10), zip: true, deflate: true}).bytes(f))
	var evil pickler
	evil.str("x")
	evil.global("os", "system")
	f.Add((&pthFile{tensors: vgg16Specs(64, false, 0)[:2], inject: evil.Bytes()}).bytes(f))
	f.Add(vgg16Bomb(f, 34<<20, true))
	f.Add(vgg16Bomb(f, 1<<10, false))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var ts map[string]tensor
		var err error
		n := allocated(func() {
			plan := &tensorPlan{maxBytes: 256 << 20}
			if bytes.HasPrefix(data, []byte("PK\x03\x04")) {
				ts, err = readPTHZip(r, int64(len(data)), "fuzz", plan)
			} else {
				ts, err = readPTHLegacy(r, int64(len(data)), "fuzz", plan)
			}
		})
		checkReadCost(t, "any tensors", err, n, tensorsBytes(ts))
		for _, d := range []int{1, 64} {
			var w *Weights
			var err error
			n := allocated(func() { w, err = decodeWeights(r, int64(len(data)), "fuzz", archSpecs, "", d) })
			checkReadCost(t, fmt.Sprintf("VGG16 / %d", d), err, n, layersBytes(w))
		}
		if err != nil {
			return
		}
		for name, tt := range ts {
			n := 1
			for _, d := range tt.shape {
				n *= d
			}
			if n != len(tt.data) {
				t.Fatalf("tensor %q: shape %v, %d values", name, tt.shape, len(tt.data))
			}
		}
	})
}

// vgg16Bomb returns a checkpoint whose 26 VGG16 tensors all view the whole
// of one float16 storage of n zeros. Zipped (and deflated), n = 34 Mi
// makes a 66 KB file that a reader inflating and converting every tensor
// separately turns into 26 x 136 MB = 3.5 GB of float32.
func vgg16Bomb(t testing.TB, n int, zipped bool) []byte {
	var specs []pthSpec
	for _, l := range vgg16Spec.layers {
		for _, name := range []string{l.weight, l.bias} {
			specs = append(specs, pthSpec{name: name, shape: []int{n}, half: true})
		}
	}
	return (&pthFile{tensors: specs, zip: zipped, deflate: zipped, shared: n}).bytes(t)
}

// TestReadPTHSharedStorage reads the 26 tensors from slices of one flat
// storage, as a flattened parameter buffer holds them, with the biases of
// the first two layers tied (the same elements): each tensor gets its
// values, the storage is read once, and the allocations stay within twice
// the bytes kept plus 64 MB.
func TestReadPTHSharedStorage(t *testing.T) {
	specs := vgg16Specs(testDivisor, false, 0)
	off := 7
	for i := range specs {
		specs[i].offset = off
		off += len(specs[i].data) + 3
	}
	specs[3].offset, specs[3].data = specs[1].offset, specs[1].data // tied biases
	for _, tc := range []struct {
		name           string
		zipped, deflat bool
	}{{"legacy", false, false}, {"zip", true, false}, {"zip_deflate", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := &pthFile{tensors: specs, zip: tc.zipped, deflate: tc.deflat, shared: off + 11}
			p := writeTemp(t, "w.pth", f.bytes(t))
			var w *Weights
			var err error
			n := allocated(func() { w, err = ReadWeights(p, VGG16, testDivisor) })
			require.NoError(t, err)
			checkLayersMatchSpecs(t, w, specs)
			assert.LessOrEqual(t, n, readBudget(layersBytes(w)))
		})
	}
}
