package style

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"

	"gonum.org/v1/gonum/blas"
)

// Default sizes of the study's siamese head.
const (
	DefaultHeadIn  = 25088 // VGG16 pool5 features: 512 x 7 x 7
	DefaultHeadOut = 128   // embedding size
)

// StudyFeatureScale is the feature scale of the study: the global maximum
// of the VGG16 pool5 features of its training images with the original
// Keras (caffe-preprocessed) VGG16 weights. Features from other weights or
// preprocessing have another maximum; compute it with FeatureScale.
const StudyFeatureScale = 844.34

// headFormat and headFormatVersion identify a saved SiameseHead.
const (
	headFormat        = "style.SiameseHead"
	headFormatVersion = "1"
	headKernelName    = "dense.kernel"
	headBiasName      = "dense.bias"
)

// ErrBackboneMismatch is matched by errors.Is when features from one
// backbone are about to be used with a head trained on another.
var ErrBackboneMismatch = errors.New("style: backbone mismatch")

// HeadConfig configures NewSiameseHead. A nil *HeadConfig means all
// defaults.
type HeadConfig struct {
	In  int // feature length; zero means DefaultHeadIn (25,088)
	Out int // embedding length; zero means DefaultHeadOut (128)
	// Margin is the contrastive-loss margin used to train the head; zero
	// means 1.
	Margin float64
	// Seed seeds the Glorot-uniform initial weights.
	Seed uint64
	// Scale divides every feature before the head (MinMax scaling by the
	// training maximum, see FeatureScale and StudyFeatureScale); zero means
	// 1, no scaling.
	Scale float64
	// Cutoff is the distance at or below which a pair is compatible; zero
	// means Margin/2 until a better one is chosen from an ROC curve.
	Cutoff float64
	// Backbone records the feature extractor the head is for.
	Backbone Backbone
	// BLAS computes the matrix products; nil means the package default.
	BLAS blas.Float32Level3
}

// SiameseHead maps a feature vector to an embedding in the style space
// with one Dense(In -> Out, ReLU) layer, shared by both items of a pair; the
// Euclidean distance between two embeddings is their style score, smaller
// meaning more compatible.
//
// Features are divided by Scale before the layer (the division is folded
// into the matrix product as a factor 1/Scale). Embed, Distance, Compare
// and Verdict are safe for concurrent use; training modifies the head and
// must not run concurrently with them.
type SiameseHead struct {
	Dense    *Dense   // the shared layer; Dense.In is the feature length
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
		c.In = DefaultHeadIn
	}
	if c.Out == 0 {
		c.Out = DefaultHeadOut
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
	if err := checkHeadParams(c.Scale, c.Margin, c.Cutoff); err != nil {
		return nil, fmt.Errorf("style: NewSiameseHead: %v", err)
	}
	d := NewDense(c.In, c.Out, c.Seed)
	d.BLAS = c.BLAS
	return &SiameseHead{Dense: d, Scale: c.Scale, Margin: c.Margin, Cutoff: c.Cutoff, Backbone: c.Backbone}, nil
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

// In returns the feature length the head expects.
func (h *SiameseHead) In() int { return h.Dense.In }

// Out returns the embedding length.
func (h *SiameseHead) Out() int { return h.Dense.Out }

func (h *SiameseHead) alpha() float32 { return float32(1 / h.Scale) }

// Embed returns the embedding of one feature vector.
// It panics if len(features) != h.In().
func (h *SiameseHead) Embed(features []float32) []float32 {
	return h.EmbedTo(nil, features)
}

// EmbedTo writes the embedding of one feature vector into dst (allocated if
// nil) and returns it.
// It panics if len(features) != h.In() or dst is not nil and
// len(dst) != h.Out().
func (h *SiameseHead) EmbedTo(dst, features []float32) []float32 {
	if len(features) != h.In() {
		panic(fmt.Sprintf("style: SiameseHead.Embed: %d features, want %d", len(features), h.In()))
	}
	return h.EmbedBatch(dst, features)
}

// EmbedBatch embeds n = len(features)/h.In() feature vectors stored as the
// rows of features (row-major) into the rows of dst (n x h.Out(), allocated
// if nil) and returns dst. Embedding many vectors at once is much faster
// than one at a time.
// It panics if len(features) is not a multiple of h.In() or dst has the
// wrong length.
func (h *SiameseHead) EmbedBatch(dst, features []float32) []float32 {
	d := h.Dense
	d.checkShape("Forward")
	n := d.batchOf("Forward", features)
	if dst == nil {
		dst = make([]float32, n*d.Out)
	}
	if len(dst) != n*d.Out {
		panic(fmt.Sprintf("style: SiameseHead.EmbedBatch: len(dst) = %d, want %d", len(dst), n*d.Out))
	}
	d.forward(dst, features, n, h.alpha())
	return dst
}

// Distance returns the Euclidean distance between two embeddings, floored
// as in training: sqrt(max(sum((a-b)²), 1e-7)). Smaller is more compatible.
// It panics if len(a) or len(b) is not h.Out().
func (h *SiameseHead) Distance(a, b []float32) float64 {
	if len(a) != h.Out() || len(b) != h.Out() {
		panic(fmt.Sprintf("style: SiameseHead.Distance: embeddings of length %d and %d, want %d", len(a), len(b), h.Out()))
	}
	return pairDistance(a, b)
}

// Compare embeds two feature vectors and returns their distance and the
// verdict against the head's cutoff.
// It panics if len(a) or len(b) is not h.In().
func (h *SiameseHead) Compare(a, b []float32) (float64, Verdict) {
	if len(a) != h.In() || len(b) != h.In() {
		panic(fmt.Sprintf("style: SiameseHead.Compare: %d and %d features, want %d", len(a), len(b), h.In()))
	}
	x := make([]float32, 0, 2*h.In())
	x = append(append(x, a...), b...)
	e := h.EmbedBatch(nil, x)
	d := pairDistance(e[:h.Out()], e[h.Out():])
	return d, h.Verdict(d)
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

// CheckBackbone returns an error matching ErrBackboneMismatch unless b is
// the backbone the head was trained on (same name, preprocessing and weight
// file SHA-256). Use it before embedding features from an extractor.
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
	return fmt.Sprintf("%q (preprocess %q, weights sha256 %s)", b.Name, b.Preprocess, sha)
}

// Save writes the head to path as a safetensors file, atomically: the
// tensors "dense.kernel" [In, Out] and "dense.bias" [Out] in F32, and
// metadata recording the format version, sizes, scale, margin, cutoff and
// backbone (name, preprocessing, weight-file SHA-256). It returns an error,
// writing nothing, for a head LoadHead would refuse: more than 2^27
// weights, a weight or bias that is not finite or beyond ±1e6, a scale or
// margin that is not positive and finite, or a cutoff that is not finite
// and >= 0.
func (h *SiameseHead) Save(path string) error {
	d := h.Dense
	d.checkShape("Save")
	if d.In > maxHeadWeights || d.Out > maxHeadWeights || int64(d.In)*int64(d.Out) > maxHeadWeights {
		return fmt.Errorf("style: SiameseHead.Save %s: %d x %d weights exceed the limit of %d", path, d.In, d.Out, maxHeadWeights)
	}
	if err := checkHeadParams(h.Scale, h.Margin, h.Cutoff); err != nil {
		return fmt.Errorf("style: SiameseHead.Save %s: %v", path, err)
	}
	for _, t := range []struct {
		name string
		data []float32
	}{{headKernelName, d.W}, {headBiasName, d.B}} {
		if i, v, ok := checkBounded(t.data, maxHeadValue); !ok {
			return fmt.Errorf("style: SiameseHead.Save %s: %s element %d is %v, %s", path, t.name, i, v, valueProblem(v, maxHeadValue))
		}
	}
	meta := map[string]string{
		"format":          headFormat,
		"format_version":  headFormatVersion,
		"in":              strconv.Itoa(d.In),
		"out":             strconv.Itoa(d.Out),
		"scale":           strconv.FormatFloat(h.Scale, 'g', -1, 64),
		"margin":          strconv.FormatFloat(h.Margin, 'g', -1, 64),
		"cutoff":          strconv.FormatFloat(h.Cutoff, 'g', -1, 64),
		"backbone":        h.Backbone.Name,
		"preprocess":      string(h.Backbone.Preprocess),
		"backbone_sha256": h.Backbone.SHA256,
	}
	ts := []tensor{
		{name: headKernelName, shape: []int{d.In, d.Out}, data: d.W},
		{name: headBiasName, shape: []int{d.Out}, data: d.B},
	}
	return writeSafetensors(path, ts, meta)
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
	scale, margin, cutoff float64
}

// parseHeadMeta checks the metadata of a saved head; bad makes the error.
func parseHeadMeta(meta map[string]string, bad func(format string, args ...any) error) (headParams, error) {
	var p headParams
	if meta["format"] != headFormat {
		return p, bad("not a saved siamese head (metadata format %q)", meta["format"])
	}
	if v := meta["format_version"]; v != headFormatVersion {
		return p, bad("unsupported head format version %q (want %q)", v, headFormatVersion)
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
	if p.in > maxHeadWeights || p.out > maxHeadWeights || int64(p.in)*int64(p.out) > maxHeadWeights {
		return p, bad("head of %d x %d weights exceeds the limit of %d weights", p.in, p.out, maxHeadWeights)
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

// LoadHead reads a head written by SiameseHead.Save. It returns a
// *FormatError naming the file for a file that is not a saved head, has an
// unsupported format version, or whose metadata or tensor shapes are
// inconsistent, or that holds more than 2^27 weights (all checked before
// any weight is read); whose scale or margin is not positive and finite or
// cutoff not finite and >= 0; or with a weight or bias that is not finite
// or beyond ±1e6 (the error names the tensor and the element).
func LoadHead(path string) (*SiameseHead, error) {
	bad := func(format string, args ...any) error {
		return &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf(format, args...)}
	}
	var p headParams
	plan := &tensorPlan{
		keep: func(name string) bool { return name == headKernelName || name == headBiasName },
		check: func(shapes map[string][]int, meta map[string]string) error {
			var err error
			if p, err = parseHeadMeta(meta, bad); err != nil {
				return err
			}
			for _, t := range []struct {
				name string
				want []int
			}{{headKernelName, []int{p.in, p.out}}, {headBiasName, []int{p.out}}} {
				s, ok := shapes[t.name]
				if !ok {
					return bad("missing tensor %q", t.name)
				}
				if !slices.Equal(s, t.want) {
					return bad("tensor %q has shape %v, want %v", t.name, s, t.want)
				}
			}
			return nil
		},
	}
	ts, meta, err := readSafetensors(path, plan)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{headKernelName, headBiasName} {
		if err := checkTensorValues(ts[name], maxHeadValue, path); err != nil {
			return nil, err
		}
	}
	return &SiameseHead{
		Dense:  &Dense{In: p.in, Out: p.out, W: ts[headKernelName].data, B: ts[headBiasName].data},
		Scale:  p.scale,
		Margin: p.margin,
		Cutoff: p.cutoff,
		Backbone: Backbone{
			Name:       meta["backbone"],
			Preprocess: Preprocess(meta["preprocess"]),
			SHA256:     meta["backbone_sha256"],
		},
	}, nil
}

// FeatureScale returns the MinMax scale for a head: the largest feature
// value over the entries of src referenced by pairs (all entries if pairs
// is nil). Compute it on the training pairs only and pass it as
// HeadConfig.Scale. It returns an error if the maximum is not positive and
// finite, an index is out of range, or ctx is cancelled (ctx.Err()).
func FeatureScale(ctx context.Context, src FeatureSource, pairs []LabeledPair) (float64, error) {
	n := src.Len()
	var idx []int
	if pairs == nil {
		idx = make([]int, n)
		for i := range idx {
			idx[i] = i
		}
	} else {
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
	if err := checkEntries(ctx, src, idx); err != nil {
		return 0, err
	}
	buf := make([]float32, src.Dim())
	m := float32(math.Inf(-1))
	for k, i := range idx {
		if k%64 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		for _, v := range src.FeatureTo(buf, i) {
			if v > m || v != v {
				m = v
			}
		}
	}
	s := float64(m)
	if !(s > 0) || math.IsInf(s, 0) {
		return 0, fmt.Errorf("style: FeatureScale: maximum feature %v is not a positive finite number", s)
	}
	return s, nil
}
