package style

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// ConvWeights holds one 3x3 convolution layer. Weight is Out x In x 3 x 3 in
// row-major (PyTorch OIHW) order, Bias has Out entries.
type ConvWeights struct {
	Out, In int
	Weight  []float32
	Bias    []float32
}

// VGG16Weights is the convolutional part of a VGG16 checkpoint: 13 layers in
// order, with the preprocessing the weights expect.
type VGG16Weights struct {
	Layers     []ConvWeights     // the 13 convolution layers, in order
	Preprocess Preprocess        // from the file's metadata; PreprocessTorch for torchvision/timm files
	Source     string            // file the weights were read from; "" if built in memory
	SHA256     string            // hex SHA-256 of the source file; "" if built in memory
	Metadata   map[string]string // the file's metadata, if any
}

// vgg16ConvIndices are the positions of the 13 convolution layers in
// torchvision's VGG16 "features" sequence: weight files name layer i
// "features.N.weight" and "features.N.bias" with N = vgg16ConvIndices[i].
// Max-pooling follows layers 1, 3, 6, 9 and 12 (0-based).
var vgg16ConvIndices = [13]int{0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28}

// maxConvValue bounds the magnitude of the weights and biases of a VGG16
// file. Published ImageNet VGG16 weights (torchvision's, Keras') lie within
// about ±1 for weights and a few units for biases, the generated and golden
// networks within ±0.5 (He-uniform weights of at most sqrt(6/27) = 0.47,
// biases within ±0.1); even a convolution with batch normalisation folded
// in stays far below 1e4. Values beyond it can only come from a broken or
// hostile file.
const maxConvValue = 1e4

// checkBounded returns the index and value of the first element of data
// that is not finite or whose magnitude exceeds bound, and false; or true
// if there is none.
func checkBounded(data []float32, bound float32) (int, float32, bool) {
	for i, v := range data {
		if !(v >= -bound && v <= bound) { // also true for NaN
			return i, v, false
		}
	}
	return 0, 0, true
}

// valueProblem says what is wrong with a value checkBounded refused.
func valueProblem(v, bound float32) string {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return "not a finite number"
	}
	return fmt.Sprintf("beyond the bound of ±%g", bound)
}

// checkTensorValues returns a *FormatError naming path, the tensor and the
// element if a value of t is not finite or its magnitude exceeds bound.
func checkTensorValues(t tensor, bound float32, path string) error {
	if i, v, ok := checkBounded(t.data, bound); !ok {
		return &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf("tensor %s: element %d of %d is %v, %s", t.name, i, len(t.data), v, valueProblem(v, bound))}
	}
	return nil
}

// VGG16FormatName is the value of the "format" metadata key of the files
// ConvertVGG16 and VGG16Weights.WriteSafetensors write.
const VGG16FormatName = "style-vgg16-conv"

// weightFormat is the kind of a weight file, told by its first bytes.
type weightFormat int

const (
	formatUnknown     weightFormat = iota
	formatSafetensors              // 8-byte header length, then a JSON object
	formatPTHZip                   // torch.save since PyTorch 1.6: a zip archive
	formatPTHLegacy                // older torch.save: concatenated pickles
)

// sniffWeightFormat tells the format of a weight file from its content.
func sniffWeightFormat(r io.ReaderAt, path string) (weightFormat, error) {
	var b [10]byte
	n, _ := r.ReadAt(b[:], 0)
	switch {
	case n >= 9 && b[8] == '{' && b[6] == 0 && b[7] == 0: // header length < 2^48
		return formatSafetensors, nil
	case n >= 4 && string(b[:4]) == "PK\x03\x04":
		return formatPTHZip, nil
	case n >= 2 && b[0] == 0x80 && b[1] <= 5: // pickle PROTO opcode
		return formatPTHLegacy, nil
	}
	return formatUnknown, &FormatError{Path: path, Offset: 0, Msg: "unknown weight file format (want safetensors or a PyTorch .pth checkpoint)"}
}

// vgg16TensorNames returns the 26 tensor names of the VGG16 conv stack.
func vgg16TensorNames() map[string]bool {
	m := make(map[string]bool, 26)
	for _, i := range vgg16ConvIndices {
		m["features."+strconv.Itoa(i)+".weight"] = true
		m["features."+strconv.Itoa(i)+".bias"] = true
	}
	return m
}

// checkVGG16Divisor returns an error unless divisor is a width divisor
// ReadVGG16Weights accepts: 1, 2, 4, 8, 16, 32 or 64.
func checkVGG16Divisor(fn string, divisor int) error {
	if divisor <= 0 || divisor > 64 || divisor&(divisor-1) != 0 {
		return fmt.Errorf("style: %s: width divisor %d is not 1, 2, 4, 8, 16, 32 or 64", fn, divisor)
	}
	return nil
}

// vgg16Widths returns the output channels of the 13 layers of VGG16 with
// every width divided by divisor, which must divide 64.
func vgg16Widths(divisor int) [13]int {
	var w [13]int
	for i, full := range vgg16FullWidths {
		w[i] = full / divisor
	}
	return w
}

// vgg16Values returns the number of weights and biases of the 13 layers of
// VGG16 with every width divided by divisor.
func vgg16Values(divisor int) int64 {
	var n int64
	in := 3
	for _, out := range vgg16Widths(divisor) {
		n += int64(out*in*9 + out)
		in = out
	}
	return n
}

// checkVGG16Shapes checks that shapes (tensor name -> shape) hold the 26
// tensors of VGG16 with every width divided by divisor, each with exactly
// VGG16's shape. The error is a *FormatError naming path, the tensor and
// its shape.
func checkVGG16Shapes(shapes map[string][]int, path string, divisor int) error {
	ferr := func(format string, args ...any) error {
		return &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf(format, args...)}
	}
	widths := vgg16Widths(divisor)
	what := "VGG16's"
	if divisor != 1 {
		what = fmt.Sprintf("VGG16's divided by %d", divisor)
	}
	in := 3
	for i, idx := range vgg16ConvIndices {
		out := widths[i]
		wn := "features." + strconv.Itoa(idx) + ".weight"
		bn := "features." + strconv.Itoa(idx) + ".bias"
		for _, t := range []struct {
			name string
			want []int
		}{{wn, []int{out, in, 3, 3}}, {bn, []int{out}}} {
			s, ok := shapes[t.name]
			switch {
			case !ok:
				return ferr("tensor %s (VGG16 conv layer %d) is missing", t.name, i+1)
			case slices.Equal(s, t.want):
			case i == 0 && len(s) == 4 && s[1] != 3:
				return ferr("tensor %s has shape %v: the first layer must take 3 input channels", t.name, s)
			default:
				return ferr("tensor %s has shape %v, want %v (conv layer %d; widths %s)", t.name, s, t.want, i+1, what)
			}
		}
		in = out
	}
	return nil
}

// ReadVGG16Weights reads the convolutional layers of a VGG16 weight file.
//
// The format is told from the content, not the name: safetensors (our own
// converted files, timm's model.safetensors), or a PyTorch checkpoint in the
// legacy format (torchvision's vgg16-397923af.pth) or the zip format, with
// float32, float16 or bfloat16 values (converted to float32). Only the
// tensors features.N.weight [out,in,3,3] and features.N.bias [out] for N in
// 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28 (torchvision's names) are
// read; the classifier is skipped without being loaded.
//
// The layers must have exactly VGG16's shape with every width divided by
// divisor: 1 for VGG16 itself (widths 64, 64, 128, 128, 256, 256, 256,
// 512, ..., 512, the first layer taking 3 channels), or 2, 4, 8, 16, 32 or
// 64 for the narrow networks GenerateVGG16Weights makes (8 for the narrow
// network of the golden tests). A file of any other shape is a
// *FormatError naming the tensor and its shape; any other divisor is an
// error.
//
// Every weight and bias must be finite and within ±1e4 (published VGG16
// weights stay within a few units); any other value is a *FormatError
// naming the tensor and the element.
//
// Names, shapes and sizes are all checked against the file's header or
// pickle before any tensor data is read, a storage shared by several
// tensors is read once, and compressed storages are inflated no further
// than the tensors need: whatever the file, reading it allocates at most
// twice the bytes of the layers returned (58.9 MB for VGG16) plus 64 MB.
//
// Preprocess comes from the safetensors metadata key "preprocess" ("caffe"
// or "torch"); files without it (torchvision, timm) get PreprocessTorch.
// SHA256 is computed over the whole file. Malformed files give an error
// matching ErrFormat that names the file and, where known, the byte offset.
// Pickles are never executed: a checkpoint naming any Python global beyond
// the few a state dict of tensors needs is refused.
func ReadVGG16Weights(path string, divisor int) (*VGG16Weights, error) {
	return readVGG16Weights(path, divisor, "")
}

// readVGG16Weights is ReadVGG16Weights; a non-empty sum is used as the
// file's SHA-256 instead of hashing it again.
func readVGG16Weights(path string, divisor int, sum string) (*VGG16Weights, error) {
	if err := checkVGG16Divisor("ReadVGG16Weights", divisor); err != nil {
		return nil, err
	}
	f, size, err := openSized(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	w, err := decodeVGG16Weights(f, size, path, divisor)
	if err != nil {
		return nil, err
	}
	w.Source = path
	if w.SHA256 = sum; sum == "" {
		if w.SHA256, err = fileSHA256(path); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// decodeVGG16Weights reads the layers of the VGG16 with widths divided by
// divisor from a weight file of any format ReadVGG16Weights accepts, held
// in r. The names and shapes of the 26 tensors, the file's metadata and
// the total size are all checked before any tensor data is read, so that
// peak memory stays within the size of the layers (58.9 MB for VGG16) plus
// a few tens of MB of parsing, whatever the file.
func decodeVGG16Weights(r io.ReaderAt, size int64, path string, divisor int) (*VGG16Weights, error) {
	format, err := sniffWeightFormat(r, path)
	if err != nil {
		return nil, err
	}
	names := vgg16TensorNames()
	w := &VGG16Weights{Preprocess: PreprocessTorch}
	plan := &tensorPlan{
		keep: func(name string) bool { return names[name] },
		check: func(shapes map[string][]int, meta map[string]string) error {
			if p, ok := meta["preprocess"]; ok {
				if Preprocess(p) != PreprocessCaffe && Preprocess(p) != PreprocessTorch {
					return &FormatError{Path: path, Offset: -1, Msg: fmt.Sprintf("metadata preprocess %q is neither %q nor %q", p, PreprocessCaffe, PreprocessTorch)}
				}
				w.Preprocess = Preprocess(p)
			}
			return checkVGG16Shapes(shapes, path, divisor)
		},
		maxBytes: 4 * vgg16Values(divisor),
	}
	var ts map[string]tensor
	switch format {
	case formatSafetensors:
		ts, w.Metadata, err = decodeSafetensors(r, size, path, plan)
	case formatPTHZip:
		ts, err = readPTHZip(r, size, path, plan)
	default:
		ts, err = readPTHLegacy(r, size, path, plan)
	}
	if err != nil {
		return nil, err
	}
	for _, idx := range vgg16ConvIndices {
		for _, kind := range []string{".weight", ".bias"} {
			if err := checkTensorValues(ts["features."+strconv.Itoa(idx)+kind], maxConvValue, path); err != nil {
				return nil, err
			}
		}
	}
	w.Layers = vgg16Layers(ts)
	return w, nil
}

// vgg16Layers assembles the 13 layers from named tensors whose shapes
// checkVGG16Shapes has accepted.
func vgg16Layers(ts map[string]tensor) []ConvWeights {
	layers := make([]ConvWeights, len(vgg16ConvIndices))
	for i, idx := range vgg16ConvIndices {
		wt := ts["features."+strconv.Itoa(idx)+".weight"]
		bt := ts["features."+strconv.Itoa(idx)+".bias"]
		layers[i] = ConvWeights{Out: wt.shape[0], In: wt.shape[1], Weight: wt.data, Bias: bt.data}
	}
	return layers
}

// fileSHA256 returns the hex SHA-256 of a file, reading it as a stream.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("style: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("style: hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// WriteSafetensors writes the layers to a safetensors file at path, as F32
// tensors named like torchvision's (features.N.weight [out,in,3,3] and
// features.N.bias), atomically. The metadata holds "format"
// (VGG16FormatName), "preprocess" (PreprocessTorch if w.Preprocess is
// empty), and, when known, "source" (the base name of w.Source) and
// "source_sha256" (w.SHA256). It returns an error without writing anything
// if w does not hold 13 layers of consistent sizes, or holds a value that
// is not finite or beyond ±1e4 (which ReadVGG16Weights would refuse).
func (w *VGG16Weights) WriteSafetensors(path string) error {
	if len(w.Layers) != len(vgg16ConvIndices) {
		return fmt.Errorf("style: write %s: %d layers, VGG16 has %d", path, len(w.Layers), len(vgg16ConvIndices))
	}
	pre := w.Preprocess
	if pre == "" {
		pre = PreprocessTorch
	}
	if pre != PreprocessCaffe && pre != PreprocessTorch {
		return fmt.Errorf("style: write %s: unknown preprocess %q", path, pre)
	}
	meta := map[string]string{"format": VGG16FormatName, "preprocess": string(pre)}
	if w.Source != "" {
		meta["source"] = filepath.Base(w.Source)
	}
	if w.SHA256 != "" {
		meta["source_sha256"] = w.SHA256
	}
	ts := make([]tensor, 0, 2*len(w.Layers))
	in := 3
	for i, l := range w.Layers {
		if l.In != in || l.Out <= 0 || len(l.Weight) != l.Out*l.In*9 || len(l.Bias) != l.Out {
			return fmt.Errorf("style: write %s: layer %d (%d -> %d, %d weights, %d biases) does not continue a VGG16 chain from %d channels", path, i+1, l.In, l.Out, len(l.Weight), len(l.Bias), in)
		}
		for _, data := range [][]float32{l.Weight, l.Bias} {
			if j, v, ok := checkBounded(data, maxConvValue); !ok {
				return fmt.Errorf("style: write %s: layer %d: element %d is %v, %s", path, i+1, j, v, valueProblem(v, maxConvValue))
			}
		}
		in = l.Out
		n := strconv.Itoa(vgg16ConvIndices[i])
		ts = append(ts,
			tensor{name: "features." + n + ".weight", shape: []int{l.Out, l.In, 3, 3}, data: l.Weight},
			tensor{name: "features." + n + ".bias", shape: []int{l.Out}, data: l.Bias})
	}
	return writeSafetensors(path, ts, meta)
}

// ConvertVGG16 reads the VGG16 weight file src (any format ReadVGG16Weights
// accepts, with VGG16's full widths: divisor 1) and writes its
// convolutional layers to dst as a safetensors file with metadata (see
// VGG16Weights.WriteSafetensors), atomically. For torchvision's
// vgg16-397923af.pth the result is about 58.9 MB of float32 that loads
// without any pickle decoding.
func ConvertVGG16(dst, src string) error {
	return convertVGG16(dst, src, 1)
}

// convertVGG16 is ConvertVGG16 for the network with widths divided by
// divisor.
func convertVGG16(dst, src string, divisor int) error {
	w, err := ReadVGG16Weights(src, divisor)
	if err != nil {
		return err
	}
	return w.WriteSafetensors(dst)
}

// tensor is a named float32 tensor read from or written to a weight file.
type tensor struct {
	name  string
	shape []int
	data  []float32
}
