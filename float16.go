package style

import (
	"encoding/binary"
	"math"
	"sync"
)

// The half-precision conversions of the package: the feature store keeps
// vectors as IEEE 754 binary16 (float16), and weight files may hold
// float16 or bfloat16 tensors. Every conversion of these formats goes
// through this file.

// maxFloat16 is the largest finite float16 value, 65504.
const maxFloat16 = 65504

// halfTable maps every binary16 bit pattern to its float32 value (256 KiB,
// built on first use): a lookup is faster than the bit manipulation.
var halfTable = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = halfToFloat32(uint16(h))
	}
	return &t
})

// halfToFloat32 converts an IEEE 754 binary16 value to float32 exactly,
// including subnormals, signed zeros, infinities and NaNs (whose payload
// is kept).
func halfToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0: // zero or subnormal: mant * 2^-24
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(v) | sign)
	case 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// float32ToHalf rounds f to the nearest binary16 value, ties to even. ok is
// false for NaN, infinities and values that round beyond ±maxFloat16.
func float32ToHalf(f float32) (h uint16, ok bool) {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		return sign | 0x7e00, false
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00, false
	}
	if e <= 0 {
		if e < -10 {
			return sign, true // below 2^-25: rounds to zero
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		r := m >> shift
		if rem > half || (rem == half && r&1 == 1) {
			r++
		}
		return sign | uint16(r), true
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && r&1 == 1) {
		r++
	}
	if r >= 0x7c00 {
		return sign | 0x7c00, false
	}
	return sign | uint16(r), true
}

// float32ToHalves writes src as little-endian float16 into dst and returns
// the largest rounded value. bad is the index of the first value that is
// not representable, or -1.
func float32ToHalves(dst []byte, src []float32) (max float32, bad int) {
	t := halfTable()
	max = float32(math.Inf(-1))
	for i, v := range src {
		h, ok := float32ToHalf(v)
		if !ok {
			return 0, i
		}
		binary.LittleEndian.PutUint16(dst[2*i:], h)
		if r := t[h]; r > max {
			max = r
		}
	}
	return max, -1
}

// halvesToFloat32 converts the little-endian float16 values in src to dst.
// It panics if src holds fewer than len(dst) values.
func halvesToFloat32(dst []float32, src []byte) {
	t := halfTable()
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = t[binary.LittleEndian.Uint16(src[2*i:])]
	}
}

// bfloat16sToFloat32 converts the little-endian bfloat16 values in src to
// dst, exactly: a bfloat16 is the upper half of a float32. It panics if src
// holds fewer than len(dst) values.
func bfloat16sToFloat32(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
	}
}
