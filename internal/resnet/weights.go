package resnet

import (
	"fmt"
	"math"

	"github.com/stylespace/style/internal/splitmix"
)

// BNEps is the epsilon of torchvision's batch norms.
const BNEps = 1e-5

// BatchNorm holds the inference parameters of a batch normalisation
// over Out channels: y = (x − Mean)/sqrt(Var + eps)·Gamma + Beta, as
// torchvision stores them (weight, bias, running_mean, running_var).
type BatchNorm struct {
	Gamma, Beta, Mean, Var []float32
}

// ConvBN is a convolution without bias followed by a batch norm, as
// torchvision's ResNets store them.
type ConvBN struct {
	Layer
	Weight []float32 // Out x In x Kernel x Kernel (OIHW)
	Norm   BatchNorm
}

// Conv is a convolution with its batch norm folded in: what New takes.
type Conv struct {
	Layer
	Weight []float32 // Out x In x Kernel x Kernel (OIHW)
	Bias   []float32 // Out
}

// Fold returns the convolution with its batch norm folded into the
// weights and a bias, computed in float64 and rounded once:
//
//	s = Gamma[o] / sqrt(Var[o] + eps)
//	w'[o][...] = w[o][...]·s,  b'[o] = Beta[o] − Mean[o]·s
//
// It returns an error if a length does not match the layer's shape or a
// variance plus eps is not positive (the factor would not be finite).
func (c *ConvBN) Fold(eps float64) (Conv, error) {
	return c.foldTo(make([]float32, len(c.Weight)), eps)
}

// FoldInPlace is Fold writing the folded weights over c.Weight, which the
// result shares, so that folding a whole network needs no second copy of
// its weights. On error c.Weight is unchanged.
func (c *ConvBN) FoldInPlace(eps float64) (Conv, error) {
	return c.foldTo(c.Weight, eps)
}

// foldTo is Fold with the folded weights written to dst, which has
// len(c.Weight) elements and may be c.Weight.
func (c *ConvBN) foldTo(dst []float32, eps float64) (Conv, error) {
	k := c.In * c.Kernel * c.Kernel
	if len(c.Weight) != c.Out*k {
		return Conv{}, fmt.Errorf("%s: weight has %d values, want %d", c.Name, len(c.Weight), c.Out*k)
	}
	for _, p := range []struct {
		name string
		v    []float32
	}{{"weight", c.Norm.Gamma}, {"bias", c.Norm.Beta}, {"running_mean", c.Norm.Mean}, {"running_var", c.Norm.Var}} {
		if len(p.v) != c.Out {
			return Conv{}, fmt.Errorf("%s.%s has %d values, want %d", c.BN, p.name, len(p.v), c.Out)
		}
	}
	for o := range c.Out {
		d := float64(c.Norm.Var[o]) + eps
		if !(d > 0) || math.IsInf(d, 0) {
			return Conv{}, fmt.Errorf("%s.running_var[%d] = %v: variance plus eps is not positive and finite", c.BN, o, c.Norm.Var[o])
		}
	}
	f := Conv{Layer: c.Layer, Weight: dst, Bias: make([]float32, c.Out)}
	for o := range c.Out {
		s := float64(c.Norm.Gamma[o]) / math.Sqrt(float64(c.Norm.Var[o])+eps)
		for i, w := range c.Weight[o*k : (o+1)*k] {
			f.Weight[o*k+i] = float32(float64(w) * s)
		}
		f.Bias[o] = float32(float64(c.Norm.Beta[o]) - float64(c.Norm.Mean[o])*s)
	}
	return f, nil
}

// Generate returns the weights of ResNet-50 with widths divided by
// divisor (see Layers50) computed from a formula rather than read from a
// file, for tests and benchmarks. With
//
//	splitmix64(x): x += 0x9E3779B97F4A7C15; z = x
//	               z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
//	               z = (z ^ (z >> 27)) * 0x94D049BB133111EB
//	               return z ^ (z >> 31)              (uint64 arithmetic)
//	u(key) = float64(splitmix64(key ^ mix) >> 40) / 2^24   in [0, 1)
//	mix = seed * 0x9E3779B97F4A7C15                         (0 for seed 0)
//
// (style.GenerateVGG16Weights' hash), convolution l = 0..52 of Layers50
// has, each value rounded once to float32:
//
//	weight i (flat OIHW index):  sqrt(6/fan_in)·(2u(l<<32 | i) − 1),  fan_in = In·k·k
//	batch norm, channel j:
//	  gamma = 1 + 0.25·(2u(l<<32 | 1<<31 | 0<<24 | j) − 1)   in [0.75, 1.25)
//	  beta  = 0.1·(2u(l<<32 | 1<<31 | 1<<24 | j) − 1)
//	  mean  = 0.1·(2u(l<<32 | 1<<31 | 2<<24 | j) − 1)
//	  var   = 0.5 + u(l<<32 | 1<<31 | 3<<24 | j)            in [0.5, 1.5)
//
// that is He-uniform convolutions and batch norms near the identity.
// testdata/ort/model.mjs computes the same network in JavaScript
// for ONNX Runtime.
//
// Generate panics if divisor is not a positive divisor of 64.
func Generate(seed uint64, divisor int) []ConvBN {
	mix := seed * splitmix.Golden
	ls := Layers50(divisor)
	out := make([]ConvBN, len(ls))
	for l, ly := range ls {
		fanIn := ly.In * ly.Kernel * ly.Kernel
		c := ConvBN{Layer: ly, Weight: make([]float32, ly.Out*fanIn)}
		scale := math.Sqrt(6 / float64(fanIn))
		key := uint64(l) << 32
		for i := range c.Weight {
			c.Weight[i] = float32(scale * (2*splitmix.Unit(key|uint64(i), mix) - 1))
		}
		bn := func(q uint64, f func(u float64) float64) []float32 {
			v := make([]float32, ly.Out)
			for j := range v {
				v[j] = float32(f(splitmix.Unit(key|1<<31|q<<24|uint64(j), mix)))
			}
			return v
		}
		c.Norm = BatchNorm{
			Gamma: bn(0, func(u float64) float64 { return 1 + 0.25*(2*u-1) }),
			Beta:  bn(1, func(u float64) float64 { return 0.1 * (2*u - 1) }),
			Mean:  bn(2, func(u float64) float64 { return 0.1 * (2*u - 1) }),
			Var:   bn(3, func(u float64) float64 { return 0.5 + u }),
		}
		out[l] = c
	}
	return out
}

// GenerateInput returns n generated images of 3 x h x w values, standing
// in for preprocessed photos: element i of the flat N,C,H,W batch is
// float32(2·(2u(0xFFFF<<32 | i) − 1)), in [−2, 2), with u of Generate.
func GenerateInput(seed uint64, n, h, w int) []float32 {
	mix := seed * splitmix.Golden
	x := make([]float32, n*3*h*w)
	for i := range x {
		x[i] = float32(2 * (2*splitmix.Unit(0xFFFF<<32|uint64(i), mix) - 1))
	}
	return x
}

// FoldAll folds every batch norm of convs with eps BNEps.
func FoldAll(convs []ConvBN) ([]Conv, error) {
	out := make([]Conv, len(convs))
	for i := range convs {
		c, err := convs[i].Fold(BNEps)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}
