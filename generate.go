package style

import (
	"fmt"
	"math"
)

// vgg16FullWidths are the output channels of the 13 convolution layers of VGG16.
var vgg16FullWidths = [13]int{64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512}

// GenerateVGG16Weights returns VGG16 convolution weights computed from a
// formula instead of read from a file: for demonstrations, tests and
// benchmarks on machines without the published weights. The widths of
// VGG16 (64 ... 512) are divided by divisor (1 gives the full network, 8
// the narrow one of the golden tests); each must stay a whole number.
// ReadVGG16Weights reads such a network back from a file given the same
// divisor.
//
// Layer l's weight i (OIHW order) is sqrt(6/fan_in)*(2u-1) and bias j is
// 0.1*(2u-1), where u is a splitmix64 hash of l, i and seed mapped to
// [0, 1) — He-uniform initialisation. With seed 0 and divisor 1 these are
// exactly the weights of the vgg16_formula golden network. The weights ask
// for PreprocessCaffe. Features of such a network are not ImageNet
// features, but they do respond to colour, texture and shape, which is
// enough to show the pipeline working.
//
// GenerateVGG16Weights panics if divisor is not a positive divisor of 64.
func GenerateVGG16Weights(seed uint64, divisor int) *VGG16Weights {
	if divisor <= 0 || 64%divisor != 0 {
		panic(fmt.Sprintf("style: GenerateVGG16Weights: divisor %d does not divide 64", divisor))
	}
	w := &VGG16Weights{
		Preprocess: PreprocessCaffe,
		Layers:     make([]ConvWeights, len(vgg16FullWidths)),
		Metadata: map[string]string{
			"source": fmt.Sprintf("generated: seed %d, width divisor %d", seed, divisor),
		},
	}
	mix := seed * 0x9E3779B97F4A7C15
	in := 3
	for l, out := range vgg16Widths(divisor) {
		cw := ConvWeights{In: in, Out: out, Weight: make([]float32, out*in*9), Bias: make([]float32, out)}
		scale := math.Sqrt(6 / float64(in*9))
		for i := range cw.Weight {
			cw.Weight[i] = float32(scale * (2*hashUnit(uint64(l)<<32|uint64(i), mix) - 1))
		}
		for j := range cw.Bias {
			cw.Bias[j] = float32(0.1 * (2*hashUnit(uint64(l)<<32|1<<31|uint64(j), mix) - 1))
		}
		w.Layers[l] = cw
		in = out
	}
	return w
}

// hashUnit maps key, mixed with a seed, to [0, 1) with 24 bits.
func hashUnit(key, mix uint64) float64 {
	x := (key ^ mix) + 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	x ^= x >> 31
	return float64(x>>40) / (1 << 24)
}
