package style

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawSafetensors assembles a safetensors file from a header text and data.
func rawSafetensors(header string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func TestSafetensorsRoundTrip(t *testing.T) {
	ts := []tensor{
		{name: "b", shape: []int{2, 3}, data: []float32{1, -2, 3.5, float32(math.Inf(1)), -0.0, 1e-42}},
		{name: "a", shape: []int{4}, data: testValues(7, 4)},
		{name: "scalar", shape: []int{}, data: []float32{42}},
		{name: "empty", shape: []int{0, 5}, data: []float32{}},
		{name: "nan", shape: []int{1}, data: []float32{float32(math.NaN())}},
		{name: `quote"and\slash`, shape: []int{1, 1, 1}, data: []float32{7}},
	}
	meta := map[string]string{"preprocess": "caffe", "note": "ünïcode \"quoted\""}
	p := filepath.Join(t.TempDir(), "t.safetensors")
	require.NoError(t, writeSafetensors(p, ts, meta))
	raw, err := os.ReadFile(p)
	require.NoError(t, err)
	n := binary.LittleEndian.Uint64(raw)
	assert.Zero(t, (8+n)%8, "data section starts at %d, not a multiple of 8", 8+n)
	got, gotMeta, err := readSafetensors(p, nil)
	require.NoError(t, err)
	assert.Equal(t, meta, gotMeta)
	require.Len(t, got, len(ts))
	for _, w := range ts {
		g, ok := got[w.name]
		require.True(t, ok, "tensor %q missing", w.name)
		assert.Equal(t, w.shape, g.shape, "tensor %q", w.name)
		assert.True(t, equalFloats(g.data, w.data), "tensor %q: got %v, want %v", w.name, g.data, w.data)
	}
	// keep selects.
	got, _, err = readSafetensors(p, &tensorPlan{keep: func(n string) bool { return n == "a" }})
	require.NoError(t, err, "keep")
	require.Len(t, got, 1, "keep")
	assert.True(t, equalFloats(got["a"].data, ts[1].data), "keep: got %v", got)
	// Written files are deterministic.
	p2 := filepath.Join(t.TempDir(), "t2.safetensors")
	require.NoError(t, writeSafetensors(p2, ts, meta))
	raw2, err := os.ReadFile(p2)
	require.NoError(t, err)
	assert.Equal(t, raw, raw2, "two writes of the same tensors differ")
}

func TestWriteSafetensorsRejects(t *testing.T) {
	dir := t.TempDir()
	for name, ts := range map[string][]tensor{
		"duplicate": {{name: "x", shape: []int{1}, data: []float32{1}}, {name: "x", shape: []int{1}, data: []float32{1}}},
		"reserved":  {{name: "__metadata__", shape: []int{1}, data: []float32{1}}},
		"empty":     {{name: "", shape: []int{1}, data: []float32{1}}},
		"length":    {{name: "x", shape: []int{2, 2}, data: []float32{1}}},
		"negative":  {{name: "x", shape: []int{-1}, data: nil}},
	} {
		p := filepath.Join(dir, name)
		assert.Error(t, writeSafetensors(p, ts, nil), name)
		assert.NoFileExists(t, p, "%s: file written despite the error", name)
	}
}

func TestSafetensorsHalfPrecision(t *testing.T) {
	// F16: 1, -2, smallest subnormal 2^-24, largest 65504, +Inf, -0.
	f16 := []uint16{0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0x8000}
	want16 := []float32{1, -2, float32(math.Ldexp(1, -24)), 65504, float32(math.Inf(1)), float32(math.Copysign(0, -1))}
	// BF16: 1, -3.5, 1e38 rounded, the top half of pi.
	bf16 := []uint16{0x3f80, 0xc060, 0x7e96, 0x4049}
	var data bytes.Buffer
	binary.Write(&data, binary.LittleEndian, f16)
	binary.Write(&data, binary.LittleEndian, bf16)
	hdr := `{"h":{"dtype":"F16","shape":[6],"data_offsets":[0,12]},"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[12,20]}}`
	p := writeTemp(t, "h.safetensors", rawSafetensors(hdr, data.Bytes()))
	got, meta, err := readSafetensors(p, nil)
	require.NoError(t, err)
	assert.Nil(t, meta)
	assert.True(t, equalFloats(got["h"].data, want16), "F16: got %v, want %v", got["h"].data, want16)
	for i, b := range bf16 {
		assert.Equal(t, math.Float32frombits(uint32(b)<<16), got["b"].data[i], "BF16 %d", i)
	}
}

func TestFloat16to32Exhaustive(t *testing.T) {
	// Every float16 bit pattern against its definition:
	// (-1)^s * 2^(e-15) * (1 + m/1024), subnormals 2^-14 * m/1024.
	for h := 0; h < 1<<16; h++ {
		s, e, m := h>>15, (h>>10)&0x1f, h&0x3ff
		got := halfToFloat32(uint16(h))
		var want float64
		switch {
		case e == 0x1f && m == 0:
			want = math.Inf(1)
		case e == 0x1f:
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: got %v, want NaN", h, got)
			}
			continue
		case e == 0:
			want = math.Ldexp(float64(m)/1024, -14)
		default:
			want = math.Ldexp(1+float64(m)/1024, e-15)
		}
		if s == 1 {
			want = -want
		}
		if float64(got) != want || math.Signbit(float64(got)) != (s == 1) {
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		}
	}
}

func TestSafetensorsHostile(t *testing.T) {
	ok := `{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	eight := make([]byte, 8)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"terabyte_header", append(binary.LittleEndian.AppendUint64(nil, 1<<40), ok...), "limit"},
		{"header_past_eof", append(binary.LittleEndian.AppendUint64(nil, 1000), ok...), "past the end"},
		{"max_uint64_header", append(binary.LittleEndian.AppendUint64(nil, math.MaxUint64), ok...), "limit"},
		{"not_object", rawSafetensors(`[1, 2]`, nil), "'{'"},
		{"bad_json", rawSafetensors(`{"x":{"dtype":"F32",}}`, eight), "JSON"},
		{"unterminated", rawSafetensors(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`, eight), "JSON"},
		{"trailing", rawSafetensors(ok+` x`, eight), "after the JSON"},
		{"duplicate_key", rawSafetensors(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "duplicate"},
		{"offsets_outside", rawSafetensors(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, eight), "run past"},
		{"offsets_huge", rawSafetensors(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,7]}}`, eight), "reversed"},
		{"offsets_reversed", rawSafetensors(`{"x":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, eight), "reversed"},
		{"offsets_negative", rawSafetensors(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, eight), "tensor \"x\""},
		{"offsets_three", rawSafetensors(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, eight), "two numbers"},
		{"overlap", rawSafetensors(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "overlaps"},
		{"hole", rawSafetensors(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "belong to no tensor"},
		{"trailing_data", rawSafetensors(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), "after the last tensor"},
		{"size_mismatch", rawSafetensors(`{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), "needs 12"},
		{"unknown_dtype", rawSafetensors(`{"x":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}`, eight), "unknown dtype"},
		{"unsupported_dtype", rawSafetensors(`{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, eight), "not supported"},
		{"shape_overflow", rawSafetensors(`{"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}`, eight), "overflows"},
		{"shape_bytes_overflow", rawSafetensors(`{"x":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}}`, eight), "overflows"},
		{"shape_negative", rawSafetensors(`{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, eight), "tensor \"x\""},
		{"shape_float", rawSafetensors(`{"x":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}`, eight), "tensor \"x\""},
		{"shape_rank", rawSafetensors(`{"x":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,2],"data_offsets":[0,8]}}`, eight), "dimensions"},
		{"missing_dtype", rawSafetensors(`{"x":{"shape":[2],"data_offsets":[0,8]}}`, eight), "missing dtype"},
		{"unknown_field", rawSafetensors(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}`, eight), "extra"},
		{"metadata_not_strings", rawSafetensors(`{"__metadata__":{"a":1},"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight), "__metadata__"},
		{"metadata_null", rawSafetensors(`{"__metadata__":null,"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, eight), "__metadata__"},
		{"entry_not_object", rawSafetensors(`{"x":[1,2]}`, eight), "tensor \"x\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeTemp(t, "x.safetensors", tc.file)
			ts, _, err := readSafetensors(p, nil)
			require.Error(t, err, "got %v", ts)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			require.ErrorIs(t, err, ErrFormat)
			assert.Equal(t, p, fe.Path)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestSafetensorsErrorOffsets(t *testing.T) {
	// The offset of a FormatError points into the file: the header length
	// at 0, the gap in the data section at its absolute position.
	hdr := `{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`
	p := writeTemp(t, "x.safetensors", rawSafetensors(hdr, make([]byte, 8)))
	_, _, err := readSafetensors(p, nil)
	var fe *FormatError
	require.ErrorAs(t, err, &fe, "hole")
	assert.Equal(t, int64(8+len(hdr)), fe.Offset, "hole")
	p = writeTemp(t, "y.safetensors", append(binary.LittleEndian.AppendUint64(nil, 1<<40), hdr...))
	_, _, err = readSafetensors(p, nil)
	require.ErrorAs(t, err, &fe, "header length")
	assert.Zero(t, fe.Offset, "header length")
}

func TestSafetensorsTruncated(t *testing.T) {
	ts := []tensor{{name: "a", shape: []int{3, 5}, data: testValues(1, 15)}, {name: "b", shape: []int{7}, data: testValues(2, 7)}}
	p := filepath.Join(t.TempDir(), "t.safetensors")
	require.NoError(t, writeSafetensors(p, ts, map[string]string{"k": "v"}))
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	for cut := 0; cut < len(data); cut++ {
		_, _, err := decodeSafetensors(bytes.NewReader(data[:cut]), int64(cut), "t", nil)
		require.ErrorIs(t, err, ErrFormat, "cut at %d of %d", cut, len(data))
	}
}

func TestSafetensorsReadsOnlyKept(t *testing.T) {
	// A big tensor that is not kept is never read.
	big := tensor{name: "classifier.0.weight", shape: []int{1 << 20}, data: make([]float32, 1<<20)}
	small := tensor{name: "features.0.bias", shape: []int{3}, data: []float32{1, 2, 3}}
	p := filepath.Join(t.TempDir(), "t.safetensors")
	require.NoError(t, writeSafetensors(p, []tensor{big, small}, nil))
	data, err := os.ReadFile(p)
	require.NoError(t, err)
	c := &countingReaderAt{r: bytes.NewReader(data)}
	got, _, err := decodeSafetensors(c, int64(len(data)), p, &tensorPlan{keep: func(n string) bool { return n == small.name }})
	require.NoError(t, err)
	assert.Equal(t, small.data, got[small.name].data)
	assert.LessOrEqual(t, c.n, int64(1024), "bytes read of a %d-byte file, want the header and 12 bytes", len(data))
}

// FuzzReadSafetensors checks that no input makes the reader panic, that
// every failure is a *FormatError, that what it decodes is consistent and
// bounded by the input (at least 2 bytes of data per value, so a short
// input cannot make it allocate much), that reading allocates at most twice
// the bytes returned plus 64 MB (also when reading the VGG16 layers of
// divisor 64), and that decoded tensors survive a write/read round trip
// bit for bit. Seeds are in testdata/fuzz/FuzzReadSafetensors.
func FuzzReadSafetensors(f *testing.F) {
	f.Add(rawSafetensors(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	var vgg bytes.Buffer
	w, err := GenerateWeights(VGG16, 1, 64)
	if err != nil {
		f.Fatal(err)
	}
	ts := vgg16Spec.tensors(w.layers)
	hdr, err := safetensorsHeader(ts, map[string]string{"preprocess": "caffe"})
	if err != nil {
		f.Fatal(err)
	}
	if err := encodeSafetensors(&vgg, hdr, ts); err != nil {
		f.Fatal(err)
	}
	f.Add(vgg.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		var w *Weights
		var err error
		n := allocated(func() { w, err = decodeWeights(bytes.NewReader(data), int64(len(data)), "fuzz", archSpecs, "", 64) })
		checkReadCost(t, "VGG16 / 64", err, n, layersBytes(w))

		var ts map[string]tensor
		var meta map[string]string
		n = allocated(func() { ts, meta, err = decodeSafetensors(bytes.NewReader(data), int64(len(data)), "fuzz", nil) })
		checkReadCost(t, "any tensors", err, n, tensorsBytes(ts))
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not a *FormatError", err)
			}
			if ts != nil || meta != nil {
				t.Fatal("result returned with an error")
			}
			return
		}
		names := make([]string, 0, len(ts))
		total := 0
		for name, tt := range ts {
			n := 1
			for _, d := range tt.shape {
				n *= d
			}
			if tt.name != name || n != len(tt.data) {
				t.Fatalf("tensor %q: name %q, shape %v, %d values", name, tt.name, tt.shape, len(tt.data))
			}
			total += len(tt.data)
			names = append(names, name)
		}
		if 2*total > len(data) {
			t.Fatalf("decoded %d values from %d bytes", total, len(data))
		}
		sort.Strings(names)
		var list []tensor
		for _, n := range names {
			list = append(list, ts[n])
		}
		hdr, err := safetensorsHeader(list, meta)
		if err != nil {
			t.Fatalf("decoded tensors cannot be written: %v", err)
		}
		var buf bytes.Buffer
		if err := encodeSafetensors(&buf, hdr, list); err != nil {
			t.Fatal(err)
		}
		ts2, meta2, err := decodeSafetensors(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "round trip", nil)
		if err != nil {
			t.Fatalf("re-reading: %v", err)
		}
		if len(ts2) != len(ts) || len(meta2) != len(meta) {
			t.Fatalf("round trip: %d tensors and %d metadata keys, want %d and %d", len(ts2), len(meta2), len(ts), len(meta))
		}
		for k, v := range meta {
			if meta2[k] != v {
				t.Fatalf("round trip: metadata %q = %q, want %q", k, meta2[k], v)
			}
		}
		for n, a := range ts {
			b := ts2[n]
			if !reflect.DeepEqual(a.shape, b.shape) && !(len(a.shape) == 0 && len(b.shape) == 0) || !equalFloats(a.data, b.data) {
				t.Fatalf("round trip: tensor %q differs", n)
			}
		}
	})
}
