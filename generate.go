package style

import (
	"fmt"
	"math"

	"github.com/stylespace/style/internal/splitmix"
)

// GenerateWeights returns weights of architecture arch computed from a
// formula instead of read from a file: for demonstrations, tests and
// benchmarks on machines without the published weights. Every width of
// the architecture is divided by divisor (1 gives the full network; for
// VGG16 8 gives the narrow one of the golden tests), a power of two up to
// the narrowest width (64 for VGG16). ReadWeights reads such a network
// back from a file given the same divisor.
//
// For VGG16, conv layer l's weight i (OIHW order) is
// sqrt(6/fan_in)*(2u-1) and bias j is 0.1*(2u-1), where u is a splitmix64
// hash of l, i and seed mapped to [0, 1) — He-uniform initialisation; with
// seed 0 and divisor 1 these are exactly the weights of the vgg16_formula
// golden network, and they ask for PreprocessCaffe. For ResNet50 the
// convolutions are He-uniform by the same hash and each is followed by a
// batch norm near the identity (γ in [0.75, 1.25), β and the mean within
// ±0.1, the variance in [0.5, 1.5)), folded in as ReadWeights folds them;
// they ask for PreprocessTorch. The weights record seed and divisor (so
// does the Backbone of their network). Features of such a network are not
// ImageNet features, but they do respond to colour, texture and shape,
// which is enough to show the pipeline working.
//
// GenerateWeights returns an error for an unknown architecture or a
// divisor that is not a width divisor of it.
func GenerateWeights(arch Arch, seed uint64, divisor int) (*Weights, error) {
	spec, err := lookupArch("GenerateWeights", arch)
	if err != nil {
		return nil, err
	}
	if err := spec.checkDivisor("GenerateWeights", divisor); err != nil {
		return nil, err
	}
	w := &Weights{
		Arch:       arch,
		Divisor:    divisor,
		Seed:       seed,
		Preprocess: PreprocessCaffe,
		Metadata: map[string]string{
			"source": fmt.Sprintf("generated: seed %d, width divisor %d", seed, divisor),
		},
		layers: make([]ConvWeights, len(spec.layers)),
	}
	if spec.generate != nil {
		w.Preprocess = PreprocessTorch
		w.layers = spec.generate(seed, divisor)
		return w, nil
	}
	mix := seed * 0x9E3779B97F4A7C15
	for l := range spec.layers {
		in, out := spec.layerShape(l, divisor)
		cw := ConvWeights{In: in, Out: out, Weight: make([]float32, out*in*9), Bias: make([]float32, out)}
		scale := math.Sqrt(6 / float64(in*9))
		for i := range cw.Weight {
			cw.Weight[i] = float32(scale * (2*splitmix.Unit(uint64(l)<<32|uint64(i), mix) - 1))
		}
		for j := range cw.Bias {
			cw.Bias[j] = float32(0.1 * (2*splitmix.Unit(uint64(l)<<32|1<<31|uint64(j), mix) - 1))
		}
		w.layers[l] = cw
	}
	return w, nil
}
