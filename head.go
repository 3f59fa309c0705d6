package style

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/stylespace/style/internal/splitmix"
	"gonum.org/v1/gonum/blas"
)

// Default sizes of the study's siamese head (see HeadConfig).
const (
	defaultHeadIn  = 25088 // VGG16 pool5 features: 512 x 7 x 7
	defaultHeadOut = 128   // embedding size
)

// headFormat and headFormatVersion identify a saved SiameseHead.
const (
	headFormat        = "style.SiameseHead"
	headFormatVersion = "1"
	// headDeepVersion is the version of a head with hidden layers, whose
	// metadata "hidden" lists their widths; readers that know only
	// version 1 refuse it instead of misreading it.
	headDeepVersion = "2"
	headKernelName  = "dense.kernel"
	headBiasName    = "dense.bias"
)

// maxHeadLayers bounds the hidden layers of a head LoadHead reads.
const maxHeadLayers = 64

// hiddenKernelName and hiddenBiasName name the tensors of hidden layer k
// in a saved head.
func hiddenKernelName(k int) string { return "hidden." + strconv.Itoa(k) + ".kernel" }
func hiddenBiasName(k int) string   { return "hidden." + strconv.Itoa(k) + ".bias" }

// ErrBackboneMismatch is matched by errors.Is when features from one
// backbone are about to be used with a head trained on another.
var ErrBackboneMismatch = errors.New("style: backbone mismatch")

// HeadConfig configures NewSiameseHead. A nil *HeadConfig means all
// defaults.
type HeadConfig struct {
	// In is the feature length; zero means 25,088, the length of VGG16's
	// pool5 features (512 channels x 7 x 7).
	In int
	// Out is the embedding length; zero means 128, the study's.
	Out int
	// Hidden lists the widths of hidden Dense+ReLU layers between the
	// features and the embedding layer, in order; nil means none, the
	// study's one-layer head. Every width must be positive. Hidden layer
	// k gets Glorot-uniform weights from its own seed, derived from Seed
	// and k; the embedding layer's seed is Seed itself.
	Hidden []int
	// Margin is the contrastive-loss margin used to train the head; zero
	// means 1.
	Margin float64
	// Seed seeds the Glorot-uniform initial weights.
	Seed uint64
	// Scale divides every feature before the head (MinMax scaling by the
	// training maximum, see FeatureScale; the study's value for the
	// original Keras weights is study.KerasFeatureScale); zero means 1, no
	// scaling.
	Scale float64
	// Cutoff is the distance at or below which a pair is compatible; zero
	// means Margin/2 until a better one is chosen from an ROC curve.
	Cutoff float64
	// Backbone records the feature extractor the head is for.
	Backbone Backbone
	// BLAS computes the matrix products (it becomes Dense.BLAS); nil means
	// the package's BLAS. It sets the head's parallelism: PairDistances
	// reads features on as many goroutines as a BLAS of this package has
	// Workers.
	BLAS blas.Float32Level3
}

// SiameseHead maps a feature vector to an embedding in the style space
// with one Dense(In -> Out, ReLU) layer, shared by both items of a pair; the
// Euclidean distance between two embeddings is their style score, smaller
// meaning more compatible. The head takes Dense.In features and gives
// embeddings of Dense.Out values.
//
// A deeper head has hidden Dense+ReLU layers before Dense: the features go
// through Hidden[0], Hidden[1], ... and then Dense, so the head takes
// Hidden[0].In features and Dense.In is the width of the last hidden layer.
// Each layer's Out must be the next one's In.
//
// Features are divided by Scale before the layer (the division is folded
// into the matrix product as a factor 1/Scale; it is the only place
// features are scaled). Embed, Compare, Verdict and
// PairDistances are safe for concurrent use; training modifies the head
// and must not run concurrently with them.
type SiameseHead struct {
	Hidden   []*Dense // hidden layers before Dense, in order; nil for the one-layer head
	Dense    *Dense   // the embedding layer: Dense.In values in, Dense.Out values out
	Scale    float64  // features are divided by Scale (> 0)
	Margin   float64  // contrastive-loss margin the head is trained with (> 0)
	Cutoff   float64  // distances <= Cutoff are compatible
	Backbone Backbone // feature extractor the head was trained on
}

// NewSiameseHead returns an untrained head configured by cfg (nil means
// defaults). It returns an error for negative sizes or a negative, NaN or
// infinite margin, scale or cutoff.
func NewSiameseHead(cfg *HeadConfig) (*SiameseHead, error) {
	var c HeadConfig
	if cfg != nil {
		c = *cfg
	}
	if c.In == 0 {
		c.In = defaultHeadIn
	}
	if c.Out == 0 {
		c.Out = defaultHeadOut
	}
	if c.Margin == 0 {
		c.Margin = 1
	}
	if c.Scale == 0 {
		c.Scale = 1
	}
	if c.Cutoff == 0 {
		c.Cutoff = c.Margin / 2
	}
	if c.In < 0 || c.Out < 0 {
		return nil, fmt.Errorf("style: NewSiameseHead: invalid size %d -> %d", c.In, c.Out)
	}
	for k, w := range c.Hidden {
		if w <= 0 {
			return nil, fmt.Errorf("style: NewSiameseHead: hidden layer %d has width %d, want a positive width", k, w)
		}
	}
	if err := checkHeadParams(c.Scale, c.Margin, c.Cutoff); err != nil {
		return nil, fmt.Errorf("style: NewSiameseHead: %v", err)
	}
	h := &SiameseHead{Scale: c.Scale, Margin: c.Margin, Cutoff: c.Cutoff, Backbone: c.Backbone}
	in := c.In
	for k, w := range c.Hidden {
		l := NewDense(in, w, hiddenSeed(c.Seed, k))
		l.BLAS = c.BLAS
		h.Hidden = append(h.Hidden, l)
		in = w
	}
	h.Dense = NewDense(in, c.Out, c.Seed)
	h.Dense.BLAS = c.BLAS
	return h, nil
}

// hiddenSeed derives the initialisation seed of hidden layer k from the
// head's seed with the SplitMix64 finaliser, so that every layer draws
// from its own generator.
func hiddenSeed(seed uint64, k int) uint64 {
	return splitmix.Mix(seed ^ uint64(k+1)*splitmix.Golden)
}

// layers returns the head's layers in order, the embedding layer last.
func (h *SiameseHead) layers() []*Dense {
	if len(h.Hidden) == 0 {
		return []*Dense{h.Dense}
	}
	return append(slices.Clip(h.Hidden), h.Dense)
}

// inputLen returns the number of features the head takes.
func (h *SiameseHead) inputLen() int {
	if len(h.Hidden) > 0 {
		return h.Hidden[0].In
	}
	return h.Dense.In
}

// checkLayers panics unless every layer is consistent and each layer's Out
// is the next one's In.
func (h *SiameseHead) checkLayers(fn string) {
	ls := h.layers()
	for k, l := range ls {
		l.checkShape(fn)
		if k > 0 && ls[k-1].Out != l.In {
			panic(fmt.Sprintf("style: SiameseHead.%s: layer %d gives %d values, layer %d takes %d", fn, k-1, ls[k-1].Out, k, l.In))
		}
	}
}

// forward embeds the n rows of x (scaled by alpha) into dst, with the
// outputs of hidden layer k in acts[k] (at least n times its width).
func (h *SiameseHead) forward(bl blas.Float32Level3, dst, x []float32, n int, alpha float32, acts [][]float32) {
	for k, l := range h.Hidden {
		y := acts[k][:n*l.Out]
		l.forward(bl, y, x, n, alpha)
		x, alpha = y, 1
	}
	h.Dense.forward(bl, dst, x, n, alpha)
}

// hiddenBuffers allocates one buffer of rows times its width per hidden layer.
func (h *SiameseHead) hiddenBuffers(rows int) [][]float32 {
	var b [][]float32
	for _, l := range h.Hidden {
		b = append(b, make([]float32, rows*l.Out))
	}
	return b
}

// checkHeadParams checks that scale and margin are positive and finite,
// with 1/scale a positive finite float32 (the factor folded into the
// matrix product), and cutoff finite and not negative.
func checkHeadParams(scale, margin, cutoff float64) error {
	switch alpha := float32(1 / scale); {
	case !(scale > 0) || math.IsInf(scale, 0):
		return fmt.Errorf("scale %v is not a positive finite number", scale)
	case alpha == 0 || math.IsInf(float64(alpha), 0):
		return fmt.Errorf("scale %v is out of range: 1/scale must be a positive finite float32", scale)
	case !(margin > 0) || math.IsInf(margin, 0):
		return fmt.Errorf("margin %v is not a positive finite number", margin)
	case !(cutoff >= 0) || math.IsInf(cutoff, 0):
		return fmt.Errorf("cutoff %v is not a finite number >= 0", cutoff)
	}
	return nil
}

func (h *SiameseHead) alpha() float32 { return float32(1 / h.Scale) }

// Embed returns the embeddings of the n = len(features)/in feature
// vectors stored as the rows of features (row-major), where in is the
// number of features the head takes (h.Dense.In, or h.Hidden[0].In with
// hidden layers): n rows of h.Dense.Out values, in a new slice. One vector
// gives one embedding; embedding many in one call is much faster than one
// at a time (a single matrix product per layer).
//
// Embed panics if len(features) is not a multiple of in or the layers are
// inconsistent.
func (h *SiameseHead) Embed(features []float32) []float32 {
	h.checkLayers("Embed")
	in := h.inputLen()
	if len(features)%in != 0 {
		panic(fmt.Sprintf("style: SiameseHead.Embed: %d features are not rows of %d", len(features), in))
	}
	n := len(features) / in
	dst := make([]float32, n*h.Dense.Out)
	h.forward(h.Dense.blas(), dst, features, n, h.alpha(), h.hiddenBuffers(n))
	return dst
}

// Compare embeds two feature vectors and returns their distance and the
// verdict against the head's cutoff.
//
// It returns an error instead of a verdict (with distance 0 and
// Incompatible) if a feature is NaN or infinite (the error names the item,
// first or second, and the position), or if the distance is not finite:
// finite features so large that the embedding overflows. It panics if
// len(a) or len(b) is not the number of features the head takes.
func (h *SiameseHead) Compare(a, b []float32) (float64, Verdict, error) {
	in := h.inputLen()
	if len(a) != in || len(b) != in {
		panic(fmt.Sprintf("style: SiameseHead.Compare: %d and %d features, want %d", len(a), len(b), in))
	}
	for k, f := range [2][]float32{a, b} {
		for i, v := range f {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return 0, Incompatible, fmt.Errorf("style: SiameseHead.Compare: feature %d of the %s item is %v", i, [2]string{"first", "second"}[k], v)
			}
		}
	}
	x := make([]float32, 0, 2*in)
	x = append(append(x, a...), b...)
	e := h.Embed(x)
	out := h.Dense.Out
	d := pairDistance(e[:out], e[out:])
	if math.IsNaN(d) || math.IsInf(d, 0) {
		return 0, Incompatible, fmt.Errorf("style: SiameseHead.Compare: the distance is %v: the features overflow the head (largest magnitudes %v and %v, scale %v)",
			d, maxAbs(a), maxAbs(b), h.Scale)
	}
	return d, h.Verdict(d), nil
}

// maxAbs returns the largest magnitude in v.
func maxAbs(v []float32) float32 {
	var m float32
	for _, x := range v {
		m = max(m, x, -x)
	}
	return m
}

// Verdict returns Compatible if distance <= h.Cutoff and Incompatible
// otherwise.
func (h *SiameseHead) Verdict(distance float64) Verdict {
	if distance <= h.Cutoff {
		return Compatible
	}
	return Incompatible
}

// Verdict is the answer to "do these go well together?".
type Verdict int

const (
	// Incompatible means the styles do not match: the distance is above
	// the cutoff.
	Incompatible Verdict = iota
	// Compatible means the items go well together: the distance is at or
	// below the cutoff.
	Compatible
)

// String returns the verdict as the study phrased it.
func (v Verdict) String() string {
	switch v {
	case Compatible:
		return "Nice, this looks good together!"
	case Incompatible:
		return "Sorry, these styles do not match."
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// CheckBackbone returns an error matching ErrBackboneMismatch, naming both
// backbones, unless b is the backbone the head was trained on (same
// architecture, preprocessing, weight-file SHA-256, seed and width
// divisor). Use it before embedding features from an extractor.
func (h *SiameseHead) CheckBackbone(b Backbone) error {
	if b != h.Backbone {
		return fmt.Errorf("%w: head trained on %s, features from %s", ErrBackboneMismatch,
			describeBackbone(h.Backbone), describeBackbone(b))
	}
	return nil
}

func describeBackbone(b Backbone) string {
	sha := b.SHA256
	if sha == "" {
		sha = "none"
	} else if len(sha) > 12 {
		sha = sha[:12]
	}
	return fmt.Sprintf("%q (preprocess %q, weights sha256 %s, seed %d, width divisor %d)", b.Arch, b.Preprocess, sha, b.Seed, b.Divisor)
}

// Save writes the head to path as a safetensors file, atomically: the
// tensors "dense.kernel" [In, Out] and "dense.bias" [Out] in F32, and
// metadata recording the format version, sizes, scale, margin, cutoff and
// backbone (architecture, preprocessing, weight-file SHA-256, seed and
// width divisor). A head with hidden layers is written as format version
// 2, with the widths in the metadata "hidden" (comma-separated), "in" the
// number of features, and hidden layer k's tensors "hidden.k.kernel" and
// "hidden.k.bias"; a one-layer head is written as version 1, as before
// hidden layers existed. It returns an error, writing nothing, for a head
// LoadHead would refuse: more than 64 hidden layers or 2^27 weights in
// all, a weight or bias that is not finite or beyond ±1e6, a scale or
// margin that is not positive and finite, or a cutoff that is not finite
// and >= 0. It panics if the layers are inconsistent.
func (h *SiameseHead) Save(path string) error {
	h.checkLayers("Save")
	d := h.Dense
	widths := make([]int, 0, len(h.Hidden))
	for _, l := range h.Hidden {
		widths = append(widths, l.Out)
	}
	if err := checkHeadShape(h.inputLen(), widths, d.Out); err != nil {
		return fmt.Errorf("style: SiameseHead.Save %s: %v", path, err)
	}
	if err := checkHeadParams(h.Scale, h.Margin, h.Cutoff); err != nil {
		return fmt.Errorf("style: SiameseHead.Save %s: %v", path, err)
	}
	var ts []tensor
	for k, l := range h.Hidden {
		ts = append(ts,
			tensor{name: hiddenKernelName(k), shape: []int{l.In, l.Out}, data: l.W},
			tensor{name: hiddenBiasName(k), shape: []int{l.Out}, data: l.B})
	}
	ts = append(ts,
		tensor{name: headKernelName, shape: []int{d.In, d.Out}, data: d.W},
		tensor{name: headBiasName, shape: []int{d.Out}, data: d.B})
	for _, t := range ts {
		if i, v, ok := checkBounded(t.data, maxHeadValue); !ok {
			return fmt.Errorf("style: SiameseHead.Save %s: %s element %d is %v, %s", path, t.name, i, v, valueProblem(v, maxHeadValue))
		}
	}
	meta := map[string]string{
		"format":          headFormat,
		"format_version":  headFormatVersion,
		"in":              strconv.Itoa(h.inputLen()),
		"out":             strconv.Itoa(d.Out),
		"scale":           strconv.FormatFloat(h.Scale, 'g', -1, 64),
		"margin":          strconv.FormatFloat(h.Margin, 'g', -1, 64),
		"cutoff":          strconv.FormatFloat(h.Cutoff, 'g', -1, 64),
		"backbone":        string(h.Backbone.Arch),
		"preprocess":      string(h.Backbone.Preprocess),
		"backbone_sha256": h.Backbone.SHA256,
	}
	meta["backbone_seed"] = strconv.FormatUint(h.Backbone.Seed, 10)
	meta["backbone_divisor"] = strconv.Itoa(h.Backbone.Divisor)
	if len(widths) > 0 {
		meta["format_version"] = headDeepVersion
		meta["hidden"] = formatWidths(widths)
	}
	return writeSafetensors(path, ts, meta)
}

// formatWidths joins layer widths with commas.
func formatWidths(w []int) string {
	b := make([]byte, 0, 8*len(w))
	for k, v := range w {
		if k > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return string(b)
}

// checkHeadShape checks a head of in features, hidden layers of the given
// widths and out embedding values against the limits LoadHead enforces: at
// most maxHeadLayers hidden layers and maxHeadWeights weights in all. It
// does its arithmetic without overflow for any positive sizes.
func checkHeadShape(in int, hidden []int, out int) error {
	if len(hidden) > maxHeadLayers {
		return fmt.Errorf("%d hidden layers exceed the limit of %d", len(hidden), maxHeadLayers)
	}
	var total int64
	prev := in
	for _, w := range append(slices.Clip(hidden), out) {
		if prev > maxHeadWeights || w > maxHeadWeights || int64(prev)*int64(w) > maxHeadWeights-total {
			if len(hidden) == 0 {
				return fmt.Errorf("head of %d x %d weights exceeds the limit of %d weights", in, out, maxHeadWeights)
			}
			return fmt.Errorf("head of layers %d -> %v -> %d exceeds the limit of %d weights", in, hidden, out, maxHeadWeights)
		}
		total += int64(prev) * int64(w)
		prev = w
	}
	return nil
}

// maxHeadWeights caps the weights of a head LoadHead reads: 2^27
// (512 MiB of float32), 40 times the study's 25,088 x 128.
const maxHeadWeights = 1 << 27

// maxHeadValue bounds the magnitude of a head's weights and biases. A head
// trained on features divided by their maximum (HeadConfig.Scale) has
// weights of Glorot scale, about ±0.02 for 25,088 -> 128, moved by
// training steps of about the learning rate (RMSProp's 0.001): values
// beyond 1e6 can only come from a broken or hostile file.
const maxHeadValue = 1e6

// headParams are the sizes and numbers a saved head's metadata holds.
type headParams struct {
	in, out               int
	hidden                []int // widths of the hidden layers, nil for version 1
	scale, margin, cutoff float64
}

// parseHeadMeta checks the metadata of a saved head; bad makes the error.
func parseHeadMeta(meta map[string]string, bad func(format string, args ...any) error) (headParams, error) {
	var p headParams
	if meta["format"] != headFormat {
		return p, bad("not a saved siamese head (metadata format %q)", meta["format"])
	}
	version := meta["format_version"]
	if version != headFormatVersion && version != headDeepVersion {
		return p, bad("unsupported head format version %q (want %q or %q)", version, headFormatVersion, headDeepVersion)
	}
	for _, f := range []struct {
		key string
		dst *int
	}{{"in", &p.in}, {"out", &p.out}} {
		n, err := strconv.Atoi(meta[f.key])
		if err != nil || n <= 0 {
			return p, bad("metadata %q = %q is not a positive integer", f.key, meta[f.key])
		}
		*f.dst = n
	}
	hidden, ok := meta["hidden"]
	switch {
	case version == headFormatVersion && ok:
		return p, bad("metadata %q in a head of format version %q, which has no hidden layers", "hidden", version)
	case version == headDeepVersion:
		if !ok || hidden == "" {
			return p, bad("metadata %q is missing: a head of format version %q lists its hidden layers", "hidden", version)
		}
		// Count before splitting so that a huge list allocates nothing.
		if c := strings.Count(hidden, ",") + 1; c > maxHeadLayers {
			return p, bad("metadata %q lists %d hidden layers, more than the limit of %d", "hidden", c, maxHeadLayers)
		}
		for k, f := range strings.Split(hidden, ",") {
			w, err := strconv.Atoi(f)
			if err != nil || w <= 0 {
				return p, bad("metadata %q = %q: width %d (%q) is not a positive integer", "hidden", hidden, k, f)
			}
			p.hidden = append(p.hidden, w)
		}
	}
	if err := checkHeadShape(p.in, p.hidden, p.out); err != nil {
		return p, bad("%v", err)
	}
	for _, f := range []struct {
		key string
		dst *float64
	}{{"scale", &p.scale}, {"margin", &p.margin}, {"cutoff", &p.cutoff}} {
		v, err := strconv.ParseFloat(meta[f.key], 64)
		if err != nil {
			return p, bad("metadata %q = %q is not a number", f.key, meta[f.key])
		}
		*f.dst = v
	}
	if err := checkHeadParams(p.scale, p.margin, p.cutoff); err != nil {
		return p, bad("%v", err)
	}
	return p, nil
}

// headTensor is the name and expected shape of one tensor of a saved head.
type headTensor struct {
	name  string
	shape []int
}

// tensors lists the tensors a head with parameters p holds, in layer
// order: for each layer its kernel, then its bias.
func (p headParams) tensors() []headTensor {
	var ts []headTensor
	in := p.in
	for k, w := range p.hidden {
		ts = append(ts, headTensor{hiddenKernelName(k), []int{in, w}}, headTensor{hiddenBiasName(k), []int{w}})
		in = w
	}
	return append(ts, headTensor{headKernelName, []int{in, p.out}}, headTensor{headBiasName, []int{p.out}})
}

// LoadHead reads a head written by SiameseHead.Save. It returns a
// *FormatError naming the file for a file that is not a saved head, has an
// unsupported format version, or whose metadata or tensor shapes are
// inconsistent, or that holds more than 64 hidden layers or 2^27 weights
// (all checked before any weight is read); whose scale or margin is not
// positive and finite or cutoff not finite and >= 0; or with a weight or
// bias that is not finite or beyond ±1e6 (the error names the tensor and
// the element). Files written before heads recorded the backbone's seed
// and width divisor load with seed 0 and divisor 1, the backbone of a
// published weight file; files written before heads could have hidden
// layers (format version 1) load as one-layer heads.
func LoadHead(path string) (*SiameseHead, error) {
	bad := func(format string, args ...any) error {
		return &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf(format, args...)}
	}
	var p headParams
	var want []headTensor
	plan := &tensorPlan{
		keep: func(name string) bool {
			return name == headKernelName || name == headBiasName || strings.HasPrefix(name, "hidden.")
		},
		check: func(shapes map[string][]int, meta map[string]string) error {
			var err error
			if p, err = parseHeadMeta(meta, bad); err != nil {
				return err
			}
			want = p.tensors()
			for _, t := range want {
				s, ok := shapes[t.name]
				if !ok {
					return bad("missing tensor %q", t.name)
				}
				if !slices.Equal(s, t.shape) {
					return bad("tensor %q has shape %v, want %v", t.name, s, t.shape)
				}
			}
			for name := range shapes {
				if strings.HasPrefix(name, "hidden.") && !slices.ContainsFunc(want, func(t headTensor) bool { return t.name == name }) {
					return bad("tensor %q is not a layer of a head with hidden layers %v", name, p.hidden)
				}
			}
			return nil
		},
	}
	ts, meta, err := readSafetensors(path, plan)
	if err != nil {
		return nil, err
	}
	for _, t := range want {
		if err := checkTensorValues(ts[t.name], maxHeadValue, path); err != nil {
			return nil, err
		}
	}
	seed, divisor, err := headSeedDivisor(meta, bad)
	if err != nil {
		return nil, err
	}
	h := &SiameseHead{
		Scale:  p.scale,
		Margin: p.margin,
		Cutoff: p.cutoff,
		Backbone: Backbone{
			Arch:       Arch(meta["backbone"]),
			Preprocess: Preprocess(meta["preprocess"]),
			SHA256:     meta["backbone_sha256"],
			Seed:       seed,
			Divisor:    divisor,
		},
	}
	for i := 0; i < len(want); i += 2 {
		k, b := want[i], want[i+1]
		l := &Dense{In: k.shape[0], Out: k.shape[1], W: ts[k.name].data, B: ts[b.name].data}
		if i == len(want)-2 {
			h.Dense = l
		} else {
			h.Hidden = append(h.Hidden, l)
		}
	}
	return h, nil
}

// storedMaxima is implemented by feature sources that keep the largest
// value of each stored vector (*FeatureStore, in its index), so that
// FeatureScale reads no vector. Both methods return 0 for no vectors;
// maxOf panics on an index out of range.
type storedMaxima interface {
	maxAll() float32
	maxOf(idx []int) float32
}

// headSeedDivisor reads the seed and width divisor of a saved head's
// backbone from its metadata, 0 and 1 when not recorded; bad makes the
// error.
func headSeedDivisor(meta map[string]string, bad func(format string, args ...any) error) (seed uint64, divisor int, err error) {
	divisor = 1
	if v, ok := meta["backbone_seed"]; ok {
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			return 0, 0, bad("metadata %q = %q is not a seed", "backbone_seed", v)
		}
	}
	if v, ok := meta["backbone_divisor"]; ok {
		if divisor, err = strconv.Atoi(v); err != nil || divisor < 0 {
			return 0, 0, bad("metadata %q = %q is not a width divisor", "backbone_divisor", v)
		}
	}
	return seed, divisor, nil
}

// FeatureScale returns the MinMax scale for a head: the largest feature
// value over the entries of src referenced by pairs (all entries if pairs
// is nil). Compute it on the training pairs only and pass it as
// HeadConfig.Scale. It is the one place features are scaled from; the
// head divides by the scale (SiameseHead.Scale).
//
// From a *FeatureStore it takes the per-vector maxima the store keeps in
// its index, the same values as reading the vectors, after checking the
// referenced records' checksums; from other sources it reads each
// referenced vector once.
//
// It returns an error if a record is damaged, the maximum is not positive and finite, an index
// is out of range, or ctx is cancelled (ctx.Err()).
func FeatureScale(ctx context.Context, src FeatureSource, pairs []LabeledPair) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := src.Len()
	all := pairs == nil
	var idx []int // the entries to read unless all
	if !all {
		seen := make(map[int]bool, 2*len(pairs))
		for k, p := range pairs {
			for _, i := range [2]int{p.A, p.B} {
				if i < 0 || i >= n {
					return 0, fmt.Errorf("style: FeatureScale: pair %d refers to entry %d of %d", k, i, n)
				}
				if !seen[i] {
					seen[i] = true
					idx = append(idx, i)
				}
			}
		}
	}
	// A damaged record is an error even though the store's maxima need
	// no read: the scale must not hide what training will meet.
	var err error
	if all {
		err = checkAllEntries(ctx, src)
	} else {
		err = checkEntries(ctx, src, idx)
	}
	if err != nil {
		return 0, err
	}
	var m float32
	if sm, ok := src.(storedMaxima); ok {
		if all {
			m = sm.maxAll()
		} else {
			m = sm.maxOf(idx)
		}
	} else {
		m = float32(math.Inf(-1))
		count := len(idx)
		if all {
			count = n
		}
		buf := make([]float32, src.Dim())
		for k := range count {
			if k%64 == 0 {
				if err := ctx.Err(); err != nil {
					return 0, err
				}
			}
			i := k
			if !all {
				i = idx[k]
			}
			for _, v := range src.FeatureTo(buf, i) {
				if v > m || v != v {
					m = v
				}
			}
		}
	}
	s := float64(m)
	if !(s > 0) || math.IsInf(s, 0) {
		return 0, fmt.Errorf("style: FeatureScale: maximum feature %v is not a positive finite number", s)
	}
	return s, nil
}
