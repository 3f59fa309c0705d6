package style

import "strconv"

// vgg16Spec is the convolutional part of VGG16, with torchvision's tensor
// names: conv layer i is features.N of its "features" sequence, whose
// other entries (ReLU, max-pool) have no weights. Max-pools follow the
// last layer of each of the five blocks.
var vgg16Spec = &archSpec{
	arch: VGG16,
	name: "VGG16",
	layers: []layerSpec{
		torchvisionConv(0, 3, 64, false), torchvisionConv(2, 64, 64, true),
		torchvisionConv(5, 64, 128, false), torchvisionConv(7, 128, 128, true),
		torchvisionConv(10, 128, 256, false), torchvisionConv(12, 256, 256, false), torchvisionConv(14, 256, 256, true),
		torchvisionConv(17, 256, 512, false), torchvisionConv(19, 512, 512, false), torchvisionConv(21, 512, 512, true),
		torchvisionConv(24, 512, 512, false), torchvisionConv(26, 512, 512, false), torchvisionConv(28, 512, 512, true),
	},
	// torchvision's ImageNet weights, in the legacy PyTorch format; 397923af
	// is the start of the file's SHA-256.
	downloads: []downloadSource{{
		url:          "https://download.pytorch.org/models/vgg16-397923af.pth",
		sha256Prefix: "397923af",
		size:         553433881,
	}},
}

// torchvisionConv is the layer features.n of a torchvision VGG: a 3x3
// convolution from in to out channels, followed by a max-pool if pool.
func torchvisionConv(n, in, out int, pool bool) layerSpec {
	p := "features." + strconv.Itoa(n)
	return layerSpec{weight: p + ".weight", bias: p + ".bias", in: in, out: out, kernel: 3, pool: pool}
}
