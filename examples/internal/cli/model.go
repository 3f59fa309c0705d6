package cli

// The model flags every program shares: the backbone network (a weight
// file, the published weights downloaded on request, or a generated
// network), the trained head, the convolution algorithm and the workers.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"

	"github.com/stylespace/style"
)

// HeadUse says whether a program takes a -head flag.
type HeadUse int

const (
	NoHead       HeadUse = iota // the program has no -head flag (it trains one)
	OptionalHead                // -head FILE, empty by default: raw features are compared
	RequiredHead                // -head FILE with a default path
)

// DefaultHead is the default -head of programs that need one: the head
// examples/train writes with its default -out.
const DefaultHead = "style-study/head.safetensors"

// GeneratedDivisor is the width divisor of the generated network when
// -weights-divisor is not given: 8 times narrower than VGG16, about 50
// times faster.
const GeneratedDivisor = 8

// ModelFlags are the flags choosing the network and the head, shared by
// every program so that a head trained by one is usable by the others with
// the same flags.
type ModelFlags struct {
	Weights      string // -weights: a weight file; "" for a generated network
	Download     bool   // -download: use the published weights, downloaded once
	WeightsCache string // -weights-cache: folder of downloaded weights
	Seed         uint64 // -weights-seed: seed of the generated network
	Divisor      int    // -weights-divisor: width divisor; 0 for the default
	Backbone     string // -backbone: the architecture
	Head         string // -head: a trained head file
	Conv         string // -conv: the convolution algorithm
	Workers      int    // -workers: images processed at once
	Quiet        bool   // -quiet: no progress bars

	head HeadUse
}

// Register defines the model flags on fl.
func (m *ModelFlags) Register(fl *flag.FlagSet, head HeadUse) {
	m.head = head
	fl.StringVar(&m.Weights, "weights", "", "backbone weight `file` (.safetensors or torchvision .pth); empty: a generated network (see -weights-seed), whose features are NOT ImageNet features")
	fl.BoolVar(&m.Download, "download", false, "use the published ImageNet weights of -backbone, downloaded once into -weights-cache (needs the internet the first time)")
	fl.StringVar(&m.WeightsCache, "weights-cache", "", "`folder` of downloaded weights (default: the user cache folder)")
	fl.Uint64Var(&m.Seed, "weights-seed", 1, "seed of the generated network (without -weights or -download)")
	fl.IntVar(&m.Divisor, "weights-divisor", 0, fmt.Sprintf("width divisor of the network: 1 is the published width, 2 to 64 narrower and faster (default %d for a generated network, 1 for a weight file)", GeneratedDivisor))
	fl.StringVar(&m.Backbone, "backbone", string(style.VGG16), "backbone `architecture`")
	switch head {
	case OptionalHead:
		fl.StringVar(&m.Head, "head", "", "trained siamese head `file` (from examples/train or demo); empty: compare raw features (visual similarity, not learned style)")
	case RequiredHead:
		fl.StringVar(&m.Head, "head", DefaultHead, "trained siamese head `file` (from examples/train or demo)")
	}
	fl.StringVar(&m.Conv, "conv", "auto", ConvUsage)
	fl.IntVar(&m.Workers, "workers", 0, "images processed at once (0: one per CPU)")
	fl.BoolVar(&m.Quiet, "quiet", false, "no progress bars")
}

// Check validates the flag values without loading anything, so that usage
// errors come before any long work.
func (m *ModelFlags) Check() error {
	if m.Weights != "" && m.Download {
		return Usagef("-weights and -download exclude each other")
	}
	if m.Divisor < 0 {
		return Usagef("-weights-divisor %d: must be positive", m.Divisor)
	}
	if m.Workers < 0 {
		return Usagef("-workers %d: must be 0 (one per CPU) or positive", m.Workers)
	}
	if _, err := ParseConv(m.Conv); err != nil {
		return &UsageError{err}
	}
	return nil
}

// Network returns the network the flags select, telling on stdout which
// one it is (and, for a generated network, that its features are not
// ImageNet features). A download shows its progress on bars.
func (m *ModelFlags) Network(ctx context.Context, stdout io.Writer, bars *Bars) (*style.Network, error) {
	if err := m.Check(); err != nil {
		return nil, err
	}
	algo, _ := ParseConv(m.Conv)
	opts := &style.NetworkOptions{Algorithm: algo, Workers: m.Workers}
	arch := style.Arch(m.Backbone)
	divisor := m.Divisor
	path := m.Weights
	if m.Download {
		p, err := style.DownloadWeights(ctx, arch, &style.DownloadOptions{CacheDir: m.WeightsCache, Progress: bars.Update})
		bars.Finish()
		if err != nil {
			return nil, fmt.Errorf("-download: %w (pass -weights FILE for a local weight file, or neither for a generated network)", err)
		}
		path = p
	}
	if path != "" {
		if divisor == 0 {
			divisor = 1
		}
		w, err := style.ReadWeights(path, arch, divisor)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("weight file %s does not exist", path)
			}
			return nil, err
		}
		net, err := style.NewNetwork(w, opts)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "model: %s weights %s (%d features per image)\n", arch, path, net.FeatureLen())
		return net, nil
	}
	if divisor == 0 {
		divisor = GeneratedDivisor
	}
	w, err := style.GenerateWeights(arch, m.Seed, divisor)
	if err != nil {
		return nil, &UsageError{fmt.Errorf("-backbone %s -weights-divisor %d: %w", m.Backbone, divisor, err)}
	}
	net, err := style.NewNetwork(w, opts)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "model: %s (%d features per image).\n", Describe(net.Backbone()), net.FeatureLen())
	fmt.Fprintln(stdout, "  NOTE: no -weights given, so the network's weights are generated from a formula, not")
	fmt.Fprintln(stdout, "  learned on ImageNet: its features respond to colour, texture and shape only.")
	return net, nil
}

// LoadHead reads the -head file and checks that it was trained on net's
// backbone; it returns nil, nil when -head is empty.
func (m *ModelFlags) LoadHead(net *style.Network) (*style.SiameseHead, error) {
	if m.Head == "" {
		return nil, nil
	}
	h, err := ReadHead(m.Head)
	if err != nil {
		return nil, err
	}
	if err := CheckHead(m.Head, h, net); err != nil {
		return nil, err
	}
	return h, nil
}

// ReadHead reads the head file path, telling how to make one when it does
// not exist. It does not check the backbone (see CheckHead), so that a
// program can read the head before the slow loading of the network.
func ReadHead(path string) (*style.SiameseHead, error) {
	h, err := style.LoadHead(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no trained head at %s: train one with examples/train (or examples/demo) or pass -head FILE", path)
	}
	return h, err
}

// CheckHead returns an error matching style.ErrBackboneMismatch, naming
// both backbones, unless the head read from path was trained on net's
// backbone, and an error if it takes another number of features.
func CheckHead(path string, h *style.SiameseHead, net *style.Network) error {
	if h.CheckBackbone(net.Backbone()) != nil {
		return fmt.Errorf("%w: head %s was trained on %s; these weights are %s (pass the -weights or -weights-seed/-weights-divisor it was trained with, or train a head for these)",
			style.ErrBackboneMismatch, path, Describe(h.Backbone), Describe(net.Backbone()))
	}
	if HeadIn(h) != net.FeatureLen() {
		return fmt.Errorf("head %s takes %d features but the network gives %d", path, HeadIn(h), net.FeatureLen())
	}
	return nil
}

// HeadIn is the number of features h takes: the input of its first hidden
// layer, or of its embedding layer when it has none.
func HeadIn(h *style.SiameseHead) int {
	if len(h.Hidden) > 0 {
		return h.Hidden[0].In
	}
	return h.Dense.In
}

// Describe names a backbone for a user: a generated network by its seed
// and width divisor, a weight file by the start of its SHA-256.
func Describe(b style.Backbone) string {
	arch := string(b.Arch)
	if arch == "" {
		arch = "an unknown architecture"
	}
	width := ""
	if b.Divisor > 1 {
		width = fmt.Sprintf(", width divisor %d", b.Divisor)
	}
	pre := ""
	if b.Preprocess != "" {
		pre = fmt.Sprintf(", %s preprocessing", b.Preprocess)
	}
	if b.SHA256 == "" {
		return fmt.Sprintf("generated %s (seed %d%s%s)", arch, b.Seed, width, pre)
	}
	sum := b.SHA256
	if len(sum) > 12 {
		sum = sum[:12]
	}
	return fmt.Sprintf("%s weight file with SHA-256 %s...%s%s", arch, sum, width, pre)
}
