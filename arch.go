package style

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Arch names a backbone architecture: the layers that turn an image into
// features and the names of their tensors in weight files.
type Arch string

const (
	// VGG16 is the convolutional part of VGG16 (Simonyan and Zisserman,
	// "Very Deep Convolutional Networks for Large-Scale Image
	// Recognition", 2015, https://arxiv.org/abs/1409.1556): 13 3x3
	// convolutions with ReLU, a 2x2 max-pool after the 2nd, 4th, 7th,
	// 10th and 13th, turning a 224x224 image into 512 x 7 x 7 = 25,088
	// features. Weight files name its tensors as torchvision does:
	// features.N.weight [out, in, 3, 3] and features.N.bias [out] for N
	// in 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28.
	VGG16 Arch = "vgg16"
	// ResNet50 is ResNet-50 (He et al., "Deep Residual Learning for
	// Image Recognition", 2015, https://arxiv.org/abs/1512.03385) in
	// torchvision's version 1.5 (a downsampling block strides its 3x3
	// convolution) without its classifier: a 7x7 stride-2 convolution and
	// a 3x3 stride-2 max-pool, 16 bottleneck blocks and a global average
	// pool, turning a 224x224 image into 2,048 features (one per channel
	// of the last block; FeatureLen is 2,048 divided by the width
	// divisor). Weight files name its tensors as torchvision does:
	// conv1.weight [64, 3, 7, 7] with batch norm bn1.weight, bn1.bias,
	// bn1.running_mean and bn1.running_var [64], then layerL.B.convK and
	// layerL.B.bnK (K = 1, 2, 3) and, for B = 0,
	// layerL.B.downsample.0 (convolution) and layerL.B.downsample.1
	// (batch norm). Batch norms are folded into the convolutions when the
	// weights are read (w·γ/sqrt(var+1e-5), bias β − mean·γ/sqrt(var+1e-5),
	// in float64 rounded once); files WriteSafetensors writes hold the
	// folded convolutions, with biases named like the weights
	// (conv1.bias, ...).
	ResNet50 Arch = "resnet50"
)

// archSpec describes an architecture as data: its layers in order, the
// tensors holding their weights, and where its published weights are.
// Reading, checking, generating, writing and running weights all follow
// it, so another architecture is another archSpec (and the engine
// operations its layers need), not another set of functions.
type archSpec struct {
	arch   Arch
	name   string      // in messages, for example "VGG16"
	layers []layerSpec // in order; the first one takes the image
	// downloads are the published weight files; the first is
	// DownloadWeights' default.
	downloads []downloadSource
	// generate, if not nil, computes GenerateWeights' layers, which then
	// ask for PreprocessTorch; nil means VGG16's He-uniform formula of
	// GenerateWeights' documentation, asking for PreprocessCaffe.
	generate func(seed uint64, divisor int) []ConvWeights
}

// layerSpec is one convolution of an architecture with its bias. How the
// layers connect (strides, padding, pooling beyond VGG16's, shortcuts) is
// the architecture's network's business; the layer only says how its
// weights are stored.
type layerSpec struct {
	weight, bias string // tensor names in weight files
	// norm, if not "", is the module of a batch norm that follows the
	// convolution in published files (norm+".weight", ".bias",
	// ".running_mean", ".running_var"), which then have no bias tensor:
	// the batch norm is folded into the weights and the bias when read.
	norm string
	// in and out are the channels at full width. The first layer's in
	// (3, the image's RGB) is never divided by the width divisor.
	in, out int
	kernel  int  // the kernel is kernel x kernel
	pool    bool // VGG16: a 2x2 max-pool with stride 2 follows
}

// normSuffixes are the tensors of a batch norm, after its module name, in
// the order of resnet.BatchNorm's fields.
var normSuffixes = [4]string{".weight", ".bias", ".running_mean", ".running_var"}

// weightLen returns the number of weights of a layer of in and out
// channels.
func (l *layerSpec) weightLen(in, out int) int { return out * in * l.kernel * l.kernel }

// downloadSource is where DownloadWeights finds the published weights of
// an architecture by default.
type downloadSource struct {
	url          string
	sha256Prefix string // start of the file's hex SHA-256
	size         int64  // the file's size in bytes
}

// archSpecs lists every architecture.
var archSpecs = []*archSpec{vgg16Spec, resnet50Spec}

// lookupArch returns the description of arch; fn names the caller in the
// error for an unknown architecture.
func lookupArch(fn string, arch Arch) (*archSpec, error) {
	for _, s := range archSpecs {
		if s.arch == arch {
			return s, nil
		}
	}
	return nil, fmt.Errorf("style: %s: unknown architecture %q (want %s)", fn, arch, archNames())
}

// archNames lists the architectures for messages: "vgg16" or "resnet50".
func archNames() string {
	names := make([]string, len(archSpecs))
	for i, s := range archSpecs {
		names[i] = strconv.Quote(string(s.arch))
	}
	return strings.Join(names, " or ")
}

// maxDivisor returns the largest width divisor of s: its narrowest layer's
// width, so that every layer keeps at least one channel.
func (s *archSpec) maxDivisor() int {
	m := s.layers[0].out
	for _, l := range s.layers {
		m = min(m, l.out)
	}
	return m
}

// checkDivisor returns an error unless divisor is a width divisor of s: a
// power of two that divides every width (for VGG16 1, 2, 4, 8, 16, 32 or
// 64). fn names the caller.
func (s *archSpec) checkDivisor(fn string, divisor int) error {
	ok := divisor > 0 && divisor&(divisor-1) == 0 && divisor <= s.maxDivisor()
	for _, l := range s.layers {
		ok = ok && l.out%divisor == 0
	}
	if !ok {
		var valid []string
		for d := 1; d <= s.maxDivisor(); d *= 2 {
			valid = append(valid, strconv.Itoa(d))
		}
		last := len(valid) - 1
		return fmt.Errorf("style: %s: width divisor %d is not %s or %s, the divisors of %s's widths",
			fn, divisor, strings.Join(valid[:last], ", "), valid[last], s.name)
	}
	return nil
}

// layerShape returns the input and output channels of layer i with every
// width divided by divisor, which checkDivisor has accepted.
func (s *archSpec) layerShape(i, divisor int) (in, out int) {
	in = s.layers[i].in
	if i > 0 {
		in /= divisor
	}
	return in, s.layers[i].out / divisor
}

// values returns the number of values of the tensors of a weight file of
// s with every width divided by divisor: weights and biases, or weights
// and batch norms for layers published with one (whichever is more).
func (s *archSpec) values(divisor int) int64 {
	var n int64
	for i, l := range s.layers {
		in, out := s.layerShape(i, divisor)
		n += int64(l.weightLen(in, out) + out)
		if l.norm != "" {
			n += int64(3 * out)
		}
	}
	return n
}

// hasTensor reports whether name is one of the tensors of s, in either of
// the forms of a layer with a batch norm.
func (s *archSpec) hasTensor(name string) bool {
	return slices.ContainsFunc(s.layers, func(l layerSpec) bool {
		return l.weight == name || l.bias == name ||
			l.norm != "" && slices.ContainsFunc(normSuffixes[:], func(suf string) bool { return l.norm+suf == name })
	})
}

// folded reports whether a file whose tensors have the names of shapes
// stores s's layers with biases rather than batch norms: always for an
// architecture without batch norms, otherwise when the first layer's bias
// is present (files that WriteSafetensors wrote).
func (s *archSpec) folded(shapes map[string][]int) bool {
	_, ok := shapes[s.layers[0].bias]
	return s.layers[0].norm == "" || ok
}

// layerTensors returns the names and shapes of the tensors of layer i with
// every width divided by divisor: its weight, and its bias or, if not
// folded, its batch norm.
func (s *archSpec) layerTensors(i, divisor int, folded bool) []tensorShape {
	l := &s.layers[i]
	in, out := s.layerShape(i, divisor)
	ts := []tensorShape{{l.weight, []int{out, in, l.kernel, l.kernel}}}
	if folded || l.norm == "" {
		return append(ts, tensorShape{l.bias, []int{out}})
	}
	for _, suf := range normSuffixes {
		ts = append(ts, tensorShape{l.norm + suf, []int{out}})
	}
	return ts
}

// tensorShape is the name and shape of a tensor of a weight file.
type tensorShape struct {
	name  string
	shape []int
}

// widthsText describes the widths of s divided by divisor in messages.
func (s *archSpec) widthsText(divisor int) string {
	if divisor == 1 {
		return s.name + "'s"
	}
	return fmt.Sprintf("%s's divided by %d", s.name, divisor)
}

// checkShapes checks that shapes (tensor name -> shape) hold every tensor
// of s with every width divided by divisor, each with exactly its shape.
// The error is a *FormatError naming path, the tensor and its shape.
func (s *archSpec) checkShapes(shapes map[string][]int, path string, divisor int) error {
	ferr := func(format string, args ...any) error {
		return &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf(format, args...)}
	}
	folded := s.folded(shapes)
	for i := range s.layers {
		in, _ := s.layerShape(i, divisor)
		for _, t := range s.layerTensors(i, divisor, folded) {
			got, ok := shapes[t.name]
			switch {
			case !ok:
				return ferr("tensor %s (%s conv layer %d) is missing", t.name, s.name, i+1)
			case slices.Equal(got, t.shape):
			case i == 0 && len(got) == 4 && got[1] != in:
				return ferr("tensor %s has shape %v: the first layer must take %d input channels", t.name, got, in)
			default:
				return ferr("tensor %s has shape %v, want %v (conv layer %d; widths %s)", t.name, got, t.shape, i+1, s.widthsText(divisor))
			}
		}
	}
	return nil
}

// checkLayers returns an error unless layers are the layers of s with
// every width divided by divisor: as many, each with the channels and
// weight and bias lengths of its place.
func (s *archSpec) checkLayers(layers []ConvWeights, divisor int) error {
	if len(layers) != len(s.layers) {
		return fmt.Errorf("%d conv layers, %s has %d", len(layers), s.name, len(s.layers))
	}
	for i, l := range layers {
		in, out := s.layerShape(i, divisor)
		if l.In != in || l.Out != out || len(l.Weight) != s.layers[i].weightLen(in, out) || len(l.Bias) != out {
			return fmt.Errorf("conv layer %d (%d -> %d channels, %d weights, %d biases) is not %s (%d -> %d channels, widths %s)",
				i+1, l.In, l.Out, len(l.Weight), len(l.Bias), s.name+" conv layer "+strconv.Itoa(i+1), in, out, s.widthsText(divisor))
		}
	}
	return nil
}

// layersOf assembles the layers of s from named tensors whose shapes
// checkShapes has accepted, folding batch norms (whose variances must not
// be negative) into the weights they were read into.
func (s *archSpec) layersOf(ts map[string]tensor) []ConvWeights {
	layers := make([]ConvWeights, len(s.layers))
	for i, l := range s.layers {
		wt := ts[l.weight]
		cw := ConvWeights{Out: wt.shape[0], In: wt.shape[1], Weight: wt.data}
		if bt, ok := ts[l.bias]; ok || l.norm == "" {
			cw.Bias = bt.data
		} else {
			cw.Bias = foldNorm(l, cw.Weight, ts)
		}
		layers[i] = cw
	}
	return layers
}

// tensors names the weights and biases of layers, which checkLayers has
// accepted, as weight files do.
func (s *archSpec) tensors(layers []ConvWeights) []tensor {
	ts := make([]tensor, 0, 2*len(layers))
	for i, l := range layers {
		ts = append(ts,
			tensor{name: s.layers[i].weight, shape: []int{l.Out, l.In, s.layers[i].kernel, s.layers[i].kernel}, data: l.Weight},
			tensor{name: s.layers[i].bias, shape: []int{l.Out}, data: l.Bias})
	}
	return ts
}

// formatName is the "format" metadata of the safetensors files
// WriteSafetensors writes for s: "style-vgg16-conv" for VGG16.
func (s *archSpec) formatName() string { return "style-" + string(s.arch) + "-conv" }
