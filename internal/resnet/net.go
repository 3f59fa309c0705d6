package resnet

import (
	"fmt"
	"sync"

	"github.com/stylespace/style/internal/engine"
)

// Options configures a Net. A nil *Options means the zero value.
type Options struct {
	// Workers bounds the goroutines of a forward pass. Zero value:
	// runtime.GOMAXPROCS(0) at the time of the pass.
	Workers int
	// Algorithm selects how the 3x3 stride-1 convolutions are computed:
	// engine.Im2col runs them as implicit GEMMs (engine.GEMMConv), the
	// Winograd algorithms as engine.NewConv does. Zero value:
	// engine.Auto, which picks per layer by its width (see auto3x3).
	Algorithm engine.Algorithm
}

// Net is ResNet-50's feature extractor (see the package comment) with
// folded weights. A Net is immutable after New and safe for concurrent
// use.
type Net struct {
	stem     *engine.GEMMConv
	blocks   []bottleneck
	features int
	workers  int
	// free holds the workspaces of finished ForwardTo calls that brought
	// none, at most one per concurrent call.
	freeMu sync.Mutex
	free   []*Workspace
}

// bottleneck is one block: conv1 (1x1), conv2 (3x3, strided in the first
// block of layers 2-4), conv3 (1x1, with the residual and the ReLU) and
// the shortcut down (nil for the identity).
type bottleneck struct {
	conv1, conv3 *engine.GEMMConv
	conv2        conv3x3
	down         *engine.GEMMConv
}

// conv3x3 is a 3x3 convolution on either engine.
type conv3x3 interface {
	OutputSize(h, w int) (oh, ow int)
	forward(dst, x []float32, n, h, w int, ws *engine.Workspace)
}

type gemmConv3x3 struct{ *engine.GEMMConv }

func (c gemmConv3x3) forward(dst, x []float32, n, h, w int, ws *engine.Workspace) {
	c.Forward(dst, x, n, h, w, false, ws)
}

type conv3x3Engine struct{ *engine.Conv }

func (c conv3x3Engine) forward(dst, x []float32, n, h, w int, ws *engine.Workspace) {
	c.Forward(dst, x, n, h, w, ws)
}

// Workspace holds the activations and scratch buffers of a forward pass.
// The zero value is ready to use; it grows to the largest batch it
// serves. A Workspace serves one pass at a time.
type Workspace struct {
	buf [4][]float32
	eng engine.Workspace
}

// New returns the network with the given folded convolutions, in the
// order and with the names and shapes of Layers50 (any width divisor,
// or other widths as long as consecutive layers agree), whose weights
// it packs; convs is not retained. It returns an error if a convolution
// is missing, misnamed or of the wrong shape, if the channels of
// consecutive layers disagree, or if the options are invalid.
func New(convs []Conv, opts *Options) (*Net, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Workers < 0 {
		return nil, fmt.Errorf("negative Workers %d", o.Workers)
	}
	if o.Algorithm < engine.Auto || o.Algorithm > engine.Winograd4x4 {
		return nil, fmt.Errorf("unknown algorithm %d", int(o.Algorithm))
	}
	if len(convs) != NumLayers50 {
		return nil, fmt.Errorf("%d convolutions, want %d", len(convs), NumLayers50)
	}
	want := Layers50(1)
	for i, c := range convs {
		w := want[i]
		if c.Name != w.Name || c.Kernel != w.Kernel || c.Stride != w.Stride || c.Pad != w.Pad || c.Shortcut != w.Shortcut || c.Block != w.Block {
			return nil, fmt.Errorf("convolution %d is %s (%dx%d, stride %d, padding %d), want %s (%dx%d, stride %d, padding %d)",
				i, c.Name, c.Kernel, c.Kernel, c.Stride, c.Pad, w.Name, w.Kernel, w.Kernel, w.Stride, w.Pad)
		}
		if c.In <= 0 || c.Out <= 0 {
			return nil, fmt.Errorf("%s: invalid channel counts in=%d out=%d", c.Name, c.In, c.Out)
		}
	}
	n := &Net{workers: o.Workers}
	gemm := func(c Conv, relu bool) (*engine.GEMMConv, error) {
		g, err := engine.NewGEMMConv(engine.GEMMConvSpec{
			In: c.In, Out: c.Out, Kernel: c.Kernel, Stride: c.Stride, Pad: c.Pad,
			Weight: c.Weight, Bias: c.Bias, ReLU: relu, Workers: o.Workers,
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		return g, nil
	}
	if convs[0].In != 3 {
		return nil, fmt.Errorf("conv1 has %d input channels, want 3", convs[0].In)
	}
	var err error
	if n.stem, err = gemm(convs[0], true); err != nil {
		return nil, err
	}
	in := convs[0].Out
	for i := 1; i < len(convs); {
		c1, c2, c3 := convs[i], convs[i+1], convs[i+2]
		var b bottleneck
		if c1.In != in || c2.In != c1.Out || c3.In != c2.Out {
			return nil, fmt.Errorf("block %d: channels %d -> %s %d->%d -> %s %d->%d -> %s %d->%d do not chain",
				c1.Block, in, c1.Name, c1.In, c1.Out, c2.Name, c2.In, c2.Out, c3.Name, c3.In, c3.Out)
		}
		if b.conv1, err = gemm(c1, true); err != nil {
			return nil, err
		}
		if b.conv2, err = newConv3x3(c2, o); err != nil {
			return nil, err
		}
		if b.conv3, err = gemm(c3, true); err != nil {
			return nil, err
		}
		i += 3
		if i < len(convs) && convs[i].Shortcut {
			d := convs[i]
			if d.In != in || d.Out != c3.Out {
				return nil, fmt.Errorf("%s: %d->%d, want %d->%d", d.Name, d.In, d.Out, in, c3.Out)
			}
			if b.down, err = gemm(d, false); err != nil {
				return nil, err
			}
			i++
		} else if c3.Out != in {
			return nil, fmt.Errorf("%s: %d output channels, want the block's %d input channels for the identity shortcut", c3.Name, c3.Out, in)
		}
		n.blocks = append(n.blocks, b)
		in = c3.Out
	}
	n.features = in
	return n, nil
}

// auto3x3 is the engine Auto picks for a 3x3 stride-1 layer of in and
// out channels when the GEMM kernel is of instruction-set level isa (see
// engine.GEMMISA), from the layer benchmarks (BenchmarkResNet50Layers,
// on 224x224 images, where the width sets the feature map's size). With
// the AVX-512 kernel (and the pure-Go one): Winograd F(4x4, 3x3) up to
// 128 x 128 channels (56x56 and 28x28 maps: about 1.4x and 1.6x faster
// than F(2x2) and the implicit GEMM); F(2x2, 3x3) below 512 x 512 (14x14
// maps: F(4x4) streams 2.25x the transformed weights for few tiles and
// is the slowest); and the implicit GEMM from 512 x 512 (7x7 maps: at
// batch 1, 16 tiles make F(2x2)'s products too thin and it takes 1.3x
// the GEMM's time; at batch 8 it is 1.2x faster). The AVX2 kernel's
// arithmetic is the slower part and its panels of 16 tiles pad few
// tiles less than the AVX-512 kernel's 32, so there F(4x4) also wins at
// 256 x 256 (14x14: 1.5x faster than F(2x2) at batch 1 and 1.6x at
// batch 8) and F(2x2) at 512 x 512 (7x7: 1.6x and 2.1x faster than the
// implicit GEMM; F(4x4), whose 4 tiles of a 7x7 map are mostly padding,
// takes 1.7x F(2x2)'s time at batch 1); AMD EPYC Zen 5 with
// GODEBUG=cpu.avx512f=off. The choice depends on the layer and the
// kernel only, so that the features of an image do not depend on its
// batch.
func auto3x3(in, out int, isa string) engine.Algorithm {
	if isa == "avx2" {
		if in*out < 512*512 {
			return engine.Winograd4x4
		}
		return engine.Winograd
	}
	switch {
	case in*out <= 128*128:
		return engine.Winograd4x4
	case in*out < 512*512:
		return engine.Winograd
	}
	return engine.Im2col
}

// newConv3x3 returns the block's 3x3 convolution: at stride 1 on the
// engine o.Algorithm selects, else as an implicit GEMM.
func newConv3x3(c Conv, o Options) (conv3x3, error) {
	if o.Algorithm == engine.Auto {
		o.Algorithm = auto3x3(c.In, c.Out, engine.GEMMISA())
	}
	if c.Stride != 1 || o.Algorithm == engine.Im2col {
		g, err := engine.NewGEMMConv(engine.GEMMConvSpec{
			In: c.In, Out: c.Out, Kernel: c.Kernel, Stride: c.Stride, Pad: c.Pad,
			Weight: c.Weight, Bias: c.Bias, ReLU: true, Workers: o.Workers,
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		return gemmConv3x3{g}, nil
	}
	e, err := engine.NewConv(engine.ConvSpec{
		In: c.In, Out: c.Out, Weight: c.Weight, Bias: c.Bias, ReLU: true,
		Workers: o.Workers, Algorithm: o.Algorithm,
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	return conv3x3Engine{e}, nil
}

// Features returns the number of features of an image: the output
// channels of the last block (2,048 for ResNet-50).
func (n *Net) Features() int { return n.features }

// bufferLen returns the floats each of the four activation buffers of a
// pass over n images of h x w pixels needs.
func (n *Net) bufferLen(batch, h, w int) int {
	h, w = n.stem.OutputSize(h, w)
	size := n.stem.Out() * h * w
	h, w = engine.MaxPoolOutputSize(h, w, 3, 2, 1)
	for _, b := range n.blocks {
		h2, w2 := b.conv2.OutputSize(h, w)
		size = max(size, b.conv1.Out()*h*w, b.conv3.Out()*h2*w2, b.conv3.Out()*h*w)
		h, w = h2, w2
	}
	return batch * size
}

// ForwardTo computes the features of the batch images of 3 x h x w floats
// (preprocessed, N,C,H,W) in x into dst, n x Features() floats, with the
// buffers of ws or, if ws is nil, buffers the Net keeps for reuse. dst
// must not overlap x.
//
// ForwardTo panics, with a message starting "style: ", if batch, h or w is
// not positive or x or dst has the wrong length.
func (n *Net) ForwardTo(dst, x []float32, batch, h, w int, ws *Workspace) {
	if batch <= 0 || h <= 0 || w <= 0 {
		panic(fmt.Sprintf("style: resnet.Net.ForwardTo: invalid batch %d x %d x %d", batch, h, w))
	}
	if len(x) != batch*3*h*w {
		panic(fmt.Sprintf("style: resnet.Net.ForwardTo: input has %d values, want %d (%d x 3 x %d x %d)", len(x), batch*3*h*w, batch, h, w))
	}
	if len(dst) != batch*n.features {
		panic(fmt.Sprintf("style: resnet.Net.ForwardTo: output has %d values, want %d (%d x %d)", len(dst), batch*n.features, batch, n.features))
	}
	if ws == nil {
		n.freeMu.Lock()
		if k := len(n.free); k > 0 {
			ws = n.free[k-1]
			n.free = n.free[:k-1]
		}
		n.freeMu.Unlock()
		if ws == nil {
			ws = new(Workspace)
		}
		defer func() {
			n.freeMu.Lock()
			n.free = append(n.free, ws)
			n.freeMu.Unlock()
		}()
	}
	size := n.bufferLen(batch, h, w)
	for i := range ws.buf {
		if cap(ws.buf[i]) < size {
			ws.buf[i] = make([]float32, size)
		}
		ws.buf[i] = ws.buf[i][:size]
	}
	eng := &ws.eng
	stem, cur, t2, spare := ws.buf[0], ws.buf[1], ws.buf[2], ws.buf[3]
	n.stem.Forward(stem, x, batch, h, w, false, eng)
	h, w = n.stem.OutputSize(h, w)
	ph, pw := engine.MaxPoolOutputSize(h, w, 3, 2, 1)
	engine.MaxPool(cur, stem, batch*n.stem.Out(), h, w, 3, 2, 1, n.workers)
	h, w = ph, pw
	t1 := stem
	for _, b := range n.blocks {
		b.conv1.Forward(t1, cur, batch, h, w, false, eng)
		b.conv2.forward(t2, t1, batch, h, w, eng)
		h2, w2 := b.conv2.OutputSize(h, w)
		if b.down != nil {
			b.down.Forward(spare, cur, batch, h, w, false, eng)
			b.conv3.Forward(spare, t2, batch, h2, w2, true, eng)
			cur, spare = spare, cur
		} else {
			b.conv3.Forward(cur, t2, batch, h2, w2, true, eng)
		}
		h, w = h2, w2
	}
	engine.GlobalAvgPool(dst, cur, batch*n.features, h*w, n.workers)
}
