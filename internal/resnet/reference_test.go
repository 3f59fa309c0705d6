package resnet

import (
	"math"
	"runtime"
	"sync"
)

// The float64 reference forward pass: direct convolution loops with the
// batch norms applied explicitly (not folded), ReLU, the 3x3 stride-2
// max-pool, residual additions and the global average pool, all in
// float64 from the float32 weights and input.

// tensor is a float64 batch in N,C,H,W order.
type tensor struct {
	n, c, h, w int
	v          []float64
}

// refConvBN returns batch norm (conv (x)) of layer c, then ReLU if relu.
// The output channels are computed in parallel, each by the same loops.
func refConvBN(x tensor, c *ConvBN, relu bool) tensor {
	k, s, p := c.Kernel, c.Stride, c.Pad
	oh, ow := (x.h+2*p-k)/s+1, (x.w+2*p-k)/s+1
	y := tensor{n: x.n, c: c.Out, h: oh, w: ow, v: make([]float64, x.n*c.Out*oh*ow)}
	var wg sync.WaitGroup
	next := make(chan int, c.Out)
	for o := range c.Out {
		next <- o
	}
	close(next)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for o := range next {
				refConvChannel(x, y, c, o, relu)
			}
		})
	}
	wg.Wait()
	return y
}

// refConvChannel computes output channel o of refConvBN for every image.
func refConvChannel(x, y tensor, c *ConvBN, o int, relu bool) {
	k, s, p := c.Kernel, c.Stride, c.Pad
	scale := float64(c.Norm.Gamma[o]) / math.Sqrt(float64(c.Norm.Var[o])+BNEps)
	for b := range x.n {
		acc := y.v[(b*y.c+o)*y.h*y.w : (b*y.c+o+1)*y.h*y.w]
		for ci := range x.c {
			plane := x.v[(b*x.c+ci)*x.h*x.w : (b*x.c+ci+1)*x.h*x.w]
			for ky := range k {
				for kx := range k {
					wv := float64(c.Weight[((o*c.In+ci)*k+ky)*k+kx])
					for oy := range y.h {
						iy := oy*s + ky - p
						if iy < 0 || iy >= x.h {
							continue
						}
						row := plane[iy*x.w : (iy+1)*x.w]
						out := acc[oy*y.w : (oy+1)*y.w]
						for ox := range out {
							if ix := ox*s + kx - p; ix >= 0 && ix < x.w {
								out[ox] += wv * row[ix]
							}
						}
					}
				}
			}
		}
		for i, v := range acc {
			v = (v-float64(c.Norm.Mean[o]))*scale + float64(c.Norm.Beta[o])
			if relu {
				v = max(v, 0)
			}
			acc[i] = v
		}
	}
}

// refMaxPool is the 3x3, stride 2, padding 1 max-pool (padding never
// wins).
func refMaxPool(x tensor) tensor {
	oh, ow := (x.h-1)/2+1, (x.w-1)/2+1
	y := tensor{n: x.n, c: x.c, h: oh, w: ow, v: make([]float64, 0, x.n*x.c*oh*ow)}
	for i := range x.n * x.c {
		plane := x.v[i*x.h*x.w : (i+1)*x.h*x.w]
		for oy := range oh {
			for ox := range ow {
				m := math.Inf(-1)
				for iy := max(0, 2*oy-1); iy < min(x.h, 2*oy+2); iy++ {
					for ix := max(0, 2*ox-1); ix < min(x.w, 2*ox+2); ix++ {
						m = max(m, plane[iy*x.w+ix])
					}
				}
				y.v = append(y.v, m)
			}
		}
	}
	return y
}

// refForward returns the features of the batch x (n x 3 x h x w) of the
// network convs (Generate's order) in float64: n x Features values.
func refForward(convs []ConvBN, x []float32, n, h, w int) []float64 {
	t := tensor{n: n, c: 3, h: h, w: w, v: make([]float64, len(x))}
	for i, v := range x {
		t.v[i] = float64(v)
	}
	t = refMaxPool(refConvBN(t, &convs[0], true))
	for i := 1; i < len(convs); {
		a := refConvBN(t, &convs[i], true)
		a = refConvBN(a, &convs[i+1], true)
		a = refConvBN(a, &convs[i+2], false)
		short := t
		i += 3
		if i < len(convs) && convs[i].Shortcut {
			short = refConvBN(t, &convs[i], false)
			i++
		}
		for j := range a.v {
			a.v[j] = max(a.v[j]+short.v[j], 0)
		}
		t = a
	}
	out := make([]float64, n*t.c)
	for i := range out {
		var sum float64
		for _, v := range t.v[i*t.h*t.w : (i+1)*t.h*t.w] {
			sum += v
		}
		out[i] = sum / float64(t.h*t.w)
	}
	return out
}
