package style

import (
	"fmt"

	"github.com/stylespace/style/internal/resnet"
)

// resnet50Spec is ResNet-50 (torchvision v1.5) with torchvision's tensor
// names, its 53 convolutions in torchvision's module order (see
// resnet.Layers50); the network itself is internal/resnet's.
var resnet50Spec = &archSpec{
	arch:   ResNet50,
	name:   "ResNet-50",
	layers: resnet50Layers(),
	// torchvision's ImageNet weights: the first is
	// IMAGENET1K_V1 (the original training recipe, what pretrained=True
	// loads), the second IMAGENET1K_V2 (torchvision's newer recipe, its
	// DEFAULT); the hex in each name is the start of the file's SHA-256.
	downloads: []downloadSource{{
		url:          "https://download.pytorch.org/models/resnet50-0676ba61.pth",
		sha256Prefix: "0676ba61",
		size:         102530333,
	}, {
		url:          "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
		sha256Prefix: "11ad3fa6",
		size:         102540417,
	}},
	generate: generateResNet50,
}

// resnet50Layers describes the tensors of the convolutions of
// resnet.Layers50 at full width.
func resnet50Layers() []layerSpec {
	ls := resnet.Layers50(1)
	out := make([]layerSpec, len(ls))
	for i, l := range ls {
		out[i] = layerSpec{weight: l.Name + ".weight", bias: l.Name + ".bias", norm: l.BN, in: l.In, out: l.Out, kernel: l.Kernel}
	}
	return out
}

// generateResNet50 is resnet.Generate (whose comment gives the formula)
// with the batch norms folded.
func generateResNet50(seed uint64, divisor int) []ConvWeights {
	raw := resnet.Generate(seed, divisor)
	layers := make([]ConvWeights, len(raw))
	for i := range raw {
		c, err := raw[i].FoldInPlace(resnet.BNEps)
		if err != nil {
			panic("style: generated ResNet-50 weights: " + err.Error()) // variances are at least 0.5
		}
		layers[i] = ConvWeights{Out: c.Out, In: c.In, Weight: c.Weight, Bias: c.Bias}
	}
	return layers
}

// foldNorm folds the batch norm of layer l, read into ts with the
// convolution's weights, into weights (in place) and returns the bias.
// decodeWeights has checked every value: finite, within ±1e4, variances
// not negative.
func foldNorm(l layerSpec, weights []float32, ts map[string]tensor) []float32 {
	w := ts[l.weight]
	c := resnet.ConvBN{
		Layer:  resnet.Layer{Name: l.weight, BN: l.norm, In: w.shape[1], Out: w.shape[0], Kernel: l.kernel},
		Weight: weights,
		Norm: resnet.BatchNorm{
			Gamma: ts[l.norm+normSuffixes[0]].data,
			Beta:  ts[l.norm+normSuffixes[1]].data,
			Mean:  ts[l.norm+normSuffixes[2]].data,
			Var:   ts[l.norm+normSuffixes[3]].data,
		},
	}
	f, err := c.FoldInPlace(resnet.BNEps)
	if err != nil {
		panic("style: folding checked batch norm: " + err.Error())
	}
	return f.Bias
}

// newResNet50 returns the network of layers, which checkLayers has
// accepted for ResNet50 with the given width divisor.
func newResNet50(layers []ConvWeights, divisor int, o *NetworkOptions) (*resnet.Net, error) {
	if o.Algorithm < 0 || int(o.Algorithm) >= len(engineAlgorithms) {
		return nil, fmt.Errorf("unknown algorithm %v", o.Algorithm)
	}
	alg := engineAlgorithms[o.Algorithm]
	ls := resnet.Layers50(divisor)
	convs := make([]resnet.Conv, len(ls))
	for i, l := range layers {
		convs[i] = resnet.Conv{Layer: ls[i], Weight: l.Weight, Bias: l.Bias}
	}
	return resnet.New(convs, &resnet.Options{Workers: o.Workers, Algorithm: alg})
}
