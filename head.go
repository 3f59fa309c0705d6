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

// Default sizes of the study's siamese head (see HeadConfig).
const (
	defaultHeadIn  = 25088 // VGG16 pool5 features: 512 x 7 x 7
	defaultHeadOut = 128   // embedding size
)

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
	// In is the feature length; zero means 25,088, the length of VGG16's
	// pool5 features (512 channels x 7 x 7).
	In int
	// Out is the embedding length; zero means 128, the study's.
	Out int
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
// Features are divided by Scale before the layer (the division is folded
// into the matrix product as a factor 1/Scale; it is the only place
// features are scaled). Embed, Compare, Verdict and
// PairDistances are safe for concurrent use; training modifies the head
// and must not run concurrently with them.
type SiameseHead struct {
	Dense    *Dense   // the shared layer: Dense.In features in, Dense.Out values out
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

func (h *SiameseHead) alpha() float32 { return float32(1 / h.Scale) }

// Embed returns the embeddings of the n = len(features)/h.Dense.In
// feature vectors stored as the rows of features (row-major): n rows of
// h.Dense.Out values, in a new slice. One vector gives one embedding;
// embedding many in one call is much faster than one at a time (a single
// matrix product).
//
// Embed panics if len(features) is not a multiple of h.Dense.In.
func (h *SiameseHead) Embed(features []float32) []float32 {
	d := h.Dense
	d.checkShape("Embed")
	if len(features)%d.In != 0 {
		panic(fmt.Sprintf("style: SiameseHead.Embed: %d features are not rows of %d", len(features), d.In))
	}
	n := len(features) / d.In
	dst := make([]float32, n*d.Out)
	d.forward(d.blas(), dst, features, n, h.alpha())
	return dst
}

// Compare embeds two feature vectors and returns their distance and the
// verdict against the head's cutoff.
//
// It returns an error instead of a verdict (with distance 0 and
// Incompatible) if a feature is NaN or infinite (the error names the item,
// first or second, and the position), or if the distance is not finite:
// finite features so large that the embedding overflows. It panics if
// len(a) or len(b) is not h.Dense.In.
func (h *SiameseHead) Compare(a, b []float32) (float64, Verdict, error) {
	in := h.Dense.In
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
// width divisor). It returns an error, writing nothing, for a head
// LoadHead would refuse: more than 2^27 weights, a weight or bias that is
// not finite or beyond ±1e6, a scale or margin that is not positive and
// finite, or a cutoff that is not finite and >= 0.
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
		"backbone":        string(h.Backbone.Arch),
		"preprocess":      string(h.Backbone.Preprocess),
		"backbone_sha256": h.Backbone.SHA256,
	}
	meta["backbone_seed"] = strconv.FormatUint(h.Backbone.Seed, 10)
	meta["backbone_divisor"] = strconv.Itoa(h.Backbone.Divisor)
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
// or beyond ±1e6 (the error names the tensor and the element). Files
// written before heads recorded the backbone's seed and width divisor load
// with seed 0 and divisor 1, the backbone of a published weight file.
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
	seed, divisor, err := headSeedDivisor(meta, bad)
	if err != nil {
		return nil, err
	}
	return &SiameseHead{
		Dense:  &Dense{In: p.in, Out: p.out, W: ts[headKernelName].data, B: ts[headBiasName].data},
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
	}, nil
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
