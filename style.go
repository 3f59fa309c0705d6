package style

import (
	"errors"
	"fmt"
	"image"
	"time"
)

// Preprocess names the input normalisation a backbone's weights were
// trained with.
type Preprocess string

const (
	// PreprocessCaffe is the normalisation of the original Oxford/Keras
	// VGG16 weights: RGB to BGR, subtract the ImageNet mean
	// (B 103.939, G 116.779, R 123.68), no scaling.
	PreprocessCaffe Preprocess = "caffe"
	// PreprocessTorch is the normalisation of torchvision and timm weights:
	// divide by 255, subtract mean (0.485, 0.456, 0.406) and divide by
	// std (0.229, 0.224, 0.225), in RGB order.
	PreprocessTorch Preprocess = "torch"
)

// Backbone identifies the feature extractor that features came from, so that
// a head trained on one backbone is never silently used with another. A
// network read from a file is identified by the file's SHA-256, a
// generated one (see GenerateWeights) by its seed and width divisor.
// Backbones are compared with ==.
type Backbone struct {
	Arch       Arch       // for example VGG16
	Preprocess Preprocess // input normalisation
	SHA256     string     // hex SHA-256 of the weight file; "" if generated
	Seed       uint64     // seed of generated weights; 0 for a weight file
	Divisor    int        // width divisor: 1 for the published network
}

// FeatureExtractor turns an image into a feature vector of FeatureLen
// floats. *Network implements it. Implementations must be safe for
// concurrent use.
type FeatureExtractor interface {
	Features(img image.Image) ([]float32, error)
	FeatureLen() int
	Backbone() Backbone
}

// Progress reports how far a long-running operation has got. It is passed to
// the optional Progress callbacks of downloads, feature extraction, training
// and t-SNE. Callbacks run on the goroutine doing the work and should return
// quickly; stopping early is the job of the context.
type Progress struct {
	Stage   string        // what is running: "download", "features", "train", "tsne", ...
	Done    int64         // units completed: bytes, images, epochs or iterations
	Total   int64         // units in all; 0 if unknown
	Loss    float64       // current training loss or KL divergence; 0 if not applicable
	ValLoss float64       // current validation loss; 0 if not applicable
	Elapsed time.Duration // time since the operation started
}

// ErrFormat is matched by errors.Is for every *FormatError.
var ErrFormat = errors.New("style: malformed input")

// FormatError reports malformed data in a file or stream: a weight file, an
// image, a pair list, a cache entry. It names the file and the position.
type FormatError struct {
	Path   string // file or URL; "" if unknown
	Line   int    // 1-based line for text formats; 0 if not applicable
	Offset int64  // byte offset for binary formats; -1 if not applicable
	Msg    string // what is wrong
	Err    error  // underlying error, may be nil
}

func (e *FormatError) Error() string {
	s := "style: "
	if e.Path != "" {
		s += e.Path + ": "
	}
	switch {
	case e.Line > 0:
		s += fmt.Sprintf("line %d: ", e.Line)
	case e.Offset >= 0:
		s += fmt.Sprintf("offset %d: ", e.Offset)
	}
	s += e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }

// Is reports whether target is ErrFormat.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// Pair is one row of a pair list: two image names and a label, 1 when the
// items go well together and 0 when they do not.
type Pair struct {
	A, B  string
	Label int
	Line  int // 1-based line of the row in its file; 0 if not from a file
}

// LabeledPair refers to two entries of a FeatureSource by index, with a
// label: 1 when the items go well together, 0 when they do not.
type LabeledPair struct {
	A, B  int
	Label int
}

// FeatureSource gives read access to stored feature vectors by index, for
// training and evaluation. Implementations must be safe for concurrent
// reads.
type FeatureSource interface {
	// Len returns the number of stored vectors.
	Len() int
	// Dim returns the length of each vector.
	Dim() int
	// FeatureTo copies vector i into dst, which must have length Dim, and
	// returns dst. It panics if i is out of range or len(dst) != Dim().
	FeatureTo(dst []float32, i int) []float32
}
