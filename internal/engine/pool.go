package engine

import (
	"fmt"
	"math"
)

// The pooling layers of a residual network: a max-pool of any window,
// stride and padding, and the global average pool that turns the last
// feature maps into a vector. Both work on planes (one channel of one
// image, h x w floats) and split the planes between workers, so results
// do not depend on their number.

// poolMinParallel is the number of input floats below which a pooling
// pass runs on the calling goroutine.
const poolMinParallel = 1 << 16

// MaxPoolOutputSize returns the output size of a k x k max-pool with
// stride s and padding p over an h x w plane (PyTorch's floor mode):
// ⌊(h + 2p − k)/s⌋ + 1, and the same for w, or zero when the padded
// plane is smaller than the window.
func MaxPoolOutputSize(h, w, k, s, p int) (oh, ow int) {
	return gemmConvOutputLen(h, k, s, p), gemmConvOutputLen(w, k, s, p)
}

// MaxPool computes a k x k max-pool with stride s and padding p of the
// planes h x w planes in x into dst (planes x oh x ow, see
// MaxPoolOutputSize), on at most workers goroutines (0: GOMAXPROCS).
// Padding never wins: each output is the maximum of the window's pixels
// inside the plane, as in PyTorch. dst must not overlap x.
//
// MaxPool panics, with a message starting "style: ", if a size is not
// positive, p is negative or not smaller than k (so that every window
// holds a pixel), the padded plane is smaller than the window, or dst or
// x is too short.
func MaxPool(dst, x []float32, planes, h, w, k, s, p, workers int) {
	if planes <= 0 || h <= 0 || w <= 0 || k <= 0 || s <= 0 || p < 0 || p >= k {
		panic(fmt.Sprintf("style: MaxPool: invalid %d planes of %dx%d, window %d, stride %d, padding %d", planes, h, w, k, s, p))
	}
	oh, ow := MaxPoolOutputSize(h, w, k, s, p)
	if oh <= 0 || ow <= 0 {
		panic(fmt.Sprintf("style: MaxPool: %dx%d plane smaller than the %dx%d window with padding %d", h, w, k, k, p))
	}
	if len(x) < planes*h*w || len(dst) < planes*oh*ow {
		panic(fmt.Sprintf("style: MaxPool: %d input and %d output values, want %d and %d", len(x), len(dst), planes*h*w, planes*oh*ow))
	}
	if planes*h*w < poolMinParallel {
		workers = 1
	}
	chunk := max(1, planes/(8*Workers(workers)))
	For(Workers(workers), (planes+chunk-1)/chunk, func(_, t int) {
		for i := t * chunk; i < min(planes, (t+1)*chunk); i++ {
			maxPoolPlane(dst[i*oh*ow:(i+1)*oh*ow], x[i*h*w:(i+1)*h*w], h, w, oh, ow, k, s, p)
		}
	})
}

// maxPoolPlane max-pools one plane: the maximum over the window's rows
// of each column first (into a row on the stack), then over the window's
// columns. Planes wider than maxPoolRow take the direct loops.
func maxPoolPlane(dst, src []float32, h, w, oh, ow, k, s, p int) {
	if w > maxPoolRow {
		maxPoolPlaneDirect(dst, src, h, w, oh, ow, k, s, p)
		return
	}
	var buf [maxPoolRow]float32
	col := buf[:w]
	for oy := range oh {
		y0, y1 := max(0, oy*s-p), min(h, oy*s-p+k)
		copy(col, src[y0*w:(y0+1)*w])
		for y := y0 + 1; y < y1; y++ {
			maxInto(col, src[y*w:(y+1)*w])
		}
		d := dst[oy*ow : (oy+1)*ow]
		if k == 3 && s == 2 && p == 1 {
			// ResNet's pool: windows 2ox-1 .. 2ox+1.
			d[0] = col[0]
			if w > 1 {
				d[0] = max32(col[0], col[1])
			}
			// Windows inside the row, then the last if it is cut.
			ox := 1
			for ; 2*ox+1 < w; ox++ {
				t := col[2*ox-1 : 2*ox+2 : 2*ox+2]
				d[ox] = max32(max32(t[0], t[1]), t[2])
			}
			for ; ox < ow; ox++ {
				d[ox] = max32(col[2*ox-1], col[2*ox])
			}
			continue
		}
		for ox := range d {
			x0, x1 := max(0, ox*s-p), min(w, ox*s-p+k)
			m := col[x0]
			for _, v := range col[x0+1 : x1] {
				m = max32(m, v)
			}
			d[ox] = m
		}
	}
}

// max32 is the builtin max, which compiles to branch-free code: on
// activations a comparison and branch mispredicts about half the time.
func max32(a, b float32) float32 { return max(a, b) }

// maxInto sets d[i] = max(d[i], s[i]).
func maxInto(d, s []float32) {
	s = s[:len(d)]
	for i, v := range s {
		d[i] = max(d[i], v)
	}
}

// maxPoolRow is the widest plane maxPoolPlane pools through a row on the
// stack.
const maxPoolRow = 1024

// maxPoolPlaneDirect max-pools one plane window by window.
func maxPoolPlaneDirect(dst, src []float32, h, w, oh, ow, k, s, p int) {
	for oy := range oh {
		y0, y1 := max(0, oy*s-p), min(h, oy*s-p+k)
		d := dst[oy*ow : (oy+1)*ow]
		for ox := range d {
			x0, x1 := max(0, ox*s-p), min(w, ox*s-p+k)
			m := float32(math.Inf(-1))
			for y := y0; y < y1; y++ {
				for _, v := range src[y*w+x0 : y*w+x1] {
					m = max(m, v)
				}
			}
			d[ox] = m
		}
	}
}

// GlobalAvgPool sets dst[i] to the mean of plane i of x (planes planes of
// hw floats each), summed in float64 in order and rounded once, on at
// most workers goroutines (0: GOMAXPROCS).
//
// GlobalAvgPool panics, with a message starting "style: ", if planes or
// hw is not positive or dst or x is too short.
func GlobalAvgPool(dst, x []float32, planes, hw, workers int) {
	if planes <= 0 || hw <= 0 {
		panic(fmt.Sprintf("style: GlobalAvgPool: invalid %d planes of %d values", planes, hw))
	}
	if len(x) < planes*hw || len(dst) < planes {
		panic(fmt.Sprintf("style: GlobalAvgPool: %d input and %d output values, want %d and %d", len(x), len(dst), planes*hw, planes))
	}
	if planes*hw < poolMinParallel {
		workers = 1
	}
	chunk := max(1, planes/(8*Workers(workers)))
	For(Workers(workers), (planes+chunk-1)/chunk, func(_, t int) {
		for i := t * chunk; i < min(planes, (t+1)*chunk); i++ {
			var sum float64
			for _, v := range x[i*hw : (i+1)*hw] {
				sum += float64(v)
			}
			dst[i] = float32(sum / float64(hw))
		}
	})
}
