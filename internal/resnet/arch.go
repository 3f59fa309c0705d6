// Package resnet is the forward pass of ResNet-50 (torchvision's v1.5:
// the stride of a downsampling bottleneck is on its 3x3 convolution) as
// a feature extractor, on the kernels of internal/engine: the
// convolutional stages and the global average pool, without the final
// fully connected layer, so an image becomes 2,048 features (fewer for
// a narrow network).
//
// The package holds the layer description (Layers50), the folding of
// batch normalisation into the convolutions (ConvBN.Fold), weights
// computed from a formula for tests and benchmarks (Generate,
// GenerateInput) and the network itself (Net). The package style is its
// public face; reading weight files is style's job.
//
// # Data layout
//
// Tensors are float32 in N,C,H,W order, weights in PyTorch's O,I,H,W
// order. Net.ForwardTo takes preprocessed images (torchvision's
// normalisation is the caller's) of any size; the published weights
// expect 224x224.
//
// # Accuracy and reproducibility
//
// The 3x3 stride-1 convolutions run on the package engine's Winograd
// F(4x4, 3x3) or F(2x2, 3x3) or as implicit GEMMs, chosen per layer (see
// Options.Algorithm), the others as implicit GEMMs (engine.GEMMConv);
// products use fused multiply-adds where the CPU has them. Results are
// bit-identical for any number of workers and any batch composition on
// one machine and kernel; they differ from PyTorch's in the last bits
// (the tests bound the relative L2 error of the features by 1e-4).
package resnet

import "fmt"

// Layer is the shape of one convolution of the network, with the names
// torchvision gives its weight and the batch norm that follows it.
type Layer struct {
	// Name is the torchvision module of the convolution: "conv1",
	// "layer1.0.conv1", ..., "layer4.2.conv3", and
	// "layerN.0.downsample.0" for the shortcut of a layer's first block;
	// its weight is Name+".weight".
	Name string
	// BN is the torchvision module of the batch norm after it: "bn1",
	// "layer1.0.bn1", ..., "layerN.0.downsample.1".
	BN                  string
	In, Out             int
	Kernel, Stride, Pad int
	Block               int  // index of the bottleneck block (0..15), or -1 for the stem
	Shortcut            bool // the block's downsample convolution
}

// blocks50 is the number of bottleneck blocks in each of ResNet-50's
// four layers.
var blocks50 = [4]int{3, 4, 6, 3}

// widths50 are the (mid, out) channel widths of ResNet-50's four layers,
// and the stem's width is 64.
var widths50 = [4][2]int{{64, 256}, {128, 512}, {256, 1024}, {512, 2048}}

// NumLayers50 is the number of convolutions of ResNet-50: the stem, three
// per bottleneck block and four shortcuts.
const NumLayers50 = 1 + 3*16 + 4

// Layers50 returns the 53 convolutions of ResNet-50 (torchvision v1.5)
// in torchvision's module order (conv1; then, block by block, conv1,
// conv2, conv3 and, for the first block of each layer, downsample.0),
// with every width divided by divisor: 1 gives the published network,
// 8 a narrow one for tests (stem 8, layers (8, 32) ... (64, 256)).
//
// The stem is conv1, 7x7 stride 2 padding 3 from the 3 colour channels,
// followed (outside this list) by a 3x3 stride-2 padding-1 max-pool.
// Each bottleneck block is a 1x1 convolution (in to mid), a 3x3 one
// (mid to mid, padding 1, stride 2 in the first block of layers 2 to 4),
// a 1x1 one (mid to out), each followed by a batch norm, the first two
// by a ReLU; the block adds its input, or for the first block of each
// layer a strided 1x1 convolution of it with its batch norm, then
// applies a ReLU.
//
// Layers50 panics if divisor is not a positive divisor of 64.
func Layers50(divisor int) []Layer {
	if divisor <= 0 || 64%divisor != 0 {
		panic(fmt.Sprintf("style: resnet.Layers50: divisor %d does not divide 64", divisor))
	}
	stem := 64 / divisor
	ls := []Layer{{Name: "conv1", BN: "bn1", In: 3, Out: stem, Kernel: 7, Stride: 2, Pad: 3, Block: -1}}
	in, block := stem, 0
	for li, nb := range blocks50 {
		mid, out := widths50[li][0]/divisor, widths50[li][1]/divisor
		for b := range nb {
			stride := 1
			if b == 0 && li > 0 {
				stride = 2
			}
			p := fmt.Sprintf("layer%d.%d.", li+1, b)
			add := func(name, bn string, cin, cout, k, s, pad int, shortcut bool) {
				ls = append(ls, Layer{Name: p + name, BN: p + bn, In: cin, Out: cout, Kernel: k, Stride: s, Pad: pad, Block: block, Shortcut: shortcut})
			}
			add("conv1", "bn1", in, mid, 1, 1, 0, false)
			add("conv2", "bn2", mid, mid, 3, stride, 1, false)
			add("conv3", "bn3", mid, out, 1, 1, 0, false)
			if b == 0 {
				add("downsample.0", "downsample.1", in, out, 1, stride, 0, true)
			}
			in = out
			block++
		}
	}
	return ls
}
