// Package style answers "do these go well together?" for clothing and
// accessory product photos.
//
// It turns a product photo into VGG16 convolutional features, maps the
// features with a siamese head into a 128-dimensional style space where the
// Euclidean distance between two items is their style score, trains that
// head on labelled pairs with a contrastive loss, evaluates it with ROC
// curves, recommends compatible items from a catalogue, and draws the style
// space as a map of product thumbnails with t-SNE. It reproduces, in pure
// Go, the study "Do these go well together? — Learning a Clothing Style
// Evaluator" (a Keras/Theano project) and checks every numeric stage
// against reference implementations (PyTorch, scikit-learn).
//
// It does not train VGG16 itself (the backbone is frozen, as in the study),
// run on GPUs, or ship the published weights: DownloadVGG16 fetches them,
// and GenerateVGG16Weights makes a seeded network for demonstrations.
//
// # A tour
//
//	net, err := style.LoadVGG16("vgg16.safetensors") // or DownloadVGG16
//	head, err := style.LoadHead("head.safetensors")
//	if err := head.CheckBackbone(net.Backbone()); err != nil { ... }
//	fa, err := net.Features(imgA) // 25,088 floats, C,H,W order
//	fb, err := net.Features(imgB)
//	d, verdict := head.Compare(fa, fb)
//	fmt.Println(d, verdict) // 0.41 Nice, this looks good together!
//
// Training goes through ReadPairs, an ImageSource (DirSource or URLSource),
// ExtractFeatures into a FeatureStore, StratifiedSplit, Trainer.Fit and
// ROCFromDistances; Study runs all of it and writes the plots and a report.
// Catalog answers top-k queries; TSNE projects embeddings to 2-D and
// WriteTSNEMap draws them as a map of thumbnails.
//
// # Data layout
//
// All tensors are float32 slices in row-major order. Images are C,H,W
// (channels first, as the original Theano model and PyTorch), batches
// N,C,H,W. Convolution weights are Out,In,3,3 (PyTorch's OIHW). Dense
// kernels are In,Out (Keras' layout). VGG16 features are 512x7x7 = 25,088
// floats flattened in C,H,W order. Matrices for t-SNE are gonum *mat.Dense,
// one row per point.
//
// # Preprocessing
//
// Features resizes a photo to 224x224 exactly as Keras' load_img does (PIL's
// nearest neighbour: source index floor((dst+0.5)*src/dst) per axis), then
// normalises it as the weights expect: PreprocessCaffe for the original
// Oxford/Keras weights the study used (RGB to BGR, minus the ImageNet mean,
// no scaling), PreprocessTorch for torchvision and timm weights (divide by
// 255, minus mean, divided by std). The mode comes from the weight file and
// can be overridden in VGG16Options. Grey, paletted, CMYK, 16-bit and
// translucent images are accepted; alpha is ignored by default, as PIL's
// convert("RGB") ignores it, or composited over VGG16Options.Matte.
//
// # Convolution
//
// Conv computes a 3x3, stride-1, pad-1 convolution with bias and optional
// fused ReLU and 2x2 max-pool, as im2col plus SGEMM (ConvIm2col) or as
// Winograd F(2x2,3x3) or F(4x4,3x3) (ConvWinograd and ConvWinograd4x4,
// whose errors against a float64 reference stay at float32 rounding level:
// 8e-7 and 1.9e-6 relative on the golden VGG16, against 9e-7 for im2col);
// the default, ConvAuto, picks per layer. With this package's BLAS the
// im2col path is an implicit GEMM: each band of output rows is copied
// once into a zero-bordered slab, and an indirect micro-kernel reads the
// rows of the im2col matrix in place from it and adds the bias and ReLU as
// it stores its tile. The work is split by output (bands of rows, chunks of
// channels) in a way that depends only on the shapes, so results are
// bit-identical for any Workers value and any batching. Conv and VGG16
// values are immutable and safe for concurrent use; scratch buffers come
// from pools, so a steady stream of calls does not allocate in proportion
// to the image.
//
// # CPU acceleration and the purego tag
//
// Convolution and dense layers multiply matrices through a gonum
// blas.Float32Level3, by default BLAS: gonum's implementation with Sgemm
// replaced by a packed, cache-blocked SGEMM (panels of A and B packed for
// the caches, a register-tiled micro-kernel, work split over output
// blocks). On amd64 the micro-kernel is assembly generated with avo by the
// separate module in _gen (regenerate with "go generate -run _gen ."): a
// 14x32 AVX-512F kernel or a 6x16 AVX2+FMA kernel, chosen once at start-up
// with golang.org/x/sys/cpu. On other architectures, or when built with
// -tags purego, a pure-Go kernel with the same blocking is used; it is also
// the reference the assembly is tested against. GODEBUG=cpu.avx512f=off
// (AVX2 kernel) or cpu.avx512f=off,cpu.avx2=off (pure Go) switches paths
// off at run time. Any other gonum BLAS (a cgo OpenBLAS binding, say) can
// be passed wherever a blas.Float32Level3 is accepted; the package never
// calls the process-global blas32.Use.
//
// # Weight files
//
// ReadVGG16Weights and LoadVGG16 read the convolutional part of VGG16 from
// safetensors files (https://github.com/huggingface/safetensors; our own
// converted files and timm's model.safetensors) and from PyTorch checkpoints
// in both the legacy and the zip torch.save formats (torchvision's
// vgg16-397923af.pth), with float32, float16 or bfloat16 values converted to
// float32. The format is told from the content, and only the 26 tensors
// features.N.weight and features.N.bias are read, so the 500 MB classifier
// is never loaded. Headers are parsed with strict limits, and malformed
// files give a *FormatError naming the file and byte offset. Pickles are
// never executed: they are scanned, then decoded with a resolver that
// accepts only the globals a state dict of tensors needs. The preprocessing
// comes from the safetensors metadata key "preprocess" ("caffe" or
// "torch"); files without it mean "torch". ConvertVGG16 writes the 58.9 MB
// float32 conv stack to a safetensors file with metadata (format,
// preprocess, source, source_sha256). DownloadVGG16 fetches torchvision's
// file into os.UserCacheDir()/style, resumes interrupted downloads with
// HTTP Range, checks the SHA-256 prefix, converts it, and from then on
// serves the cached conversion without network access.
//
// # The style space and training
//
// A SiameseHead is one Dense(25,088 -> 128, ReLU) layer applied to both
// items of a pair, after dividing the features by the head's Scale (MinMax
// scaling by the training maximum; 844.34 for the study's Keras weights).
// The Euclidean distance between the two embeddings, floored at sqrt(1e-7),
// is the style score: smaller means more compatible, and a pair is
// compatible when the distance is at or below the head's Cutoff.
// ROCFromDistances keeps that direction, so AUCs are never inverted and
// cutoffs come back as distances. A head records the Backbone it was
// trained on, and CheckBackbone refuses features from another one.
//
// Trainer.Fit minimises the contrastive loss (margin 1) plus
// 1.25e-4·ΣW² on the kernel only, using RMSProp with Keras' defaults
// (learning rate 1e-3, rho 0.9, epsilon 1e-7 outside the square root,
// accumulators from 0), in mini-batches of 128 pairs reshuffled every epoch
// from Trainer.Seed, with early stopping on the validation loss. Features
// are read from a FeatureSource one batch at a time. Training and inference
// run in float32 through BLAS; the loss, penalty and optimizer also exist as
// float64 code that matches the float64 reference to 1e-9.
//
// # Data sets, caches and memory
//
// ReadPairs reads the study's "pic1;pic2;score" file (35,000 pairs, 2,040
// compatible, 55,566 distinct image names) or any comma-separated file with
// a header; a malformed row gives a *FormatError with its line. Images come
// from an ImageSource: a local folder (DirSource, which refuses names that
// escape it) or a URL prefix (URLSource, with bounded concurrent downloads,
// timeouts, retries with backoff, a size cap and an on-disk cache).
// ExtractFeatures runs each distinct image through a FeatureExtractor once
// and appends the result to a FeatureStore, a folder that survives
// interruption: a restarted run skips finished images, and a half-written
// record is detected by its checksum and dropped. Images that fail to load
// are reported and their pairs dropped. Features are stored as float16
// (relative error at most 2^-11, well below what moves a distance), so the
// study's 55,566 x 25,088 features take 2.8 GB instead of 5.6 GB; on Unix
// the file is memory-mapped, so they sit in the page cache rather than on
// the Go heap. StratifiedSplit makes the seeded 60/20/20 split: 21,000,
// 7,000 and 7,000 pairs with 5.8% compatible in each.
//
// # Recommendations and pictures
//
// A Catalog holds embedded items (ID, category, style vector) contiguously
// and answers exact top-k queries: the items nearest in Euclidean distance
// are the most compatible. Results can be filtered by a predicate, an
// excluded ID or category, or "not the query's category". The scan runs in
// parallel with per-worker bounded heaps merged by (distance, index), so
// results are identical for any number of workers. Catalogues are saved
// atomically in a checksummed binary format. PlotLearningCurves, PlotROC,
// PlotDistanceDensities and PlotScatter draw the study's pictures with
// gonum/plot; ContactSheet and Thumbnail draw a query and its matches.
//
// # t-SNE
//
// TSNE embeds high-dimensional rows, such as 128-D style vectors, in 2-D or
// 3-D with t-distributed stochastic neighbour embedding. Its zero value uses
// scikit-learn's defaults: perplexity 30, 1,000 iterations, early
// exaggeration 12 for the first 250, learning rate max(N/48, 50), PCA
// initialisation. The input affinities come from exact nearest neighbours
// found with a ball tree, with each point's bandwidth found by bisection.
// Below TSNEFFTThreshold points the repulsive forces use a Barnes-Hut
// quadtree or octree; above it, FFT-accelerated interpolation; TSNEExact
// gives the exact O(N²) sum. The embedding depends only on the input and
// Seed, never on Workers. DrawTSNEMap and WriteTSNEMap draw an embedding as
// a map of product thumbnails that keeps their proportions and never
// overlaps them.
//
// # Errors and panics
//
// Anything that depends on data or I/O returns an error: weight files, images,
// pair lists, caches, downloads, numerical failure, cancellation and invalid
// configuration. Malformed data gives a *FormatError (errors.Is(err,
// ErrFormat)) naming the file and the line or byte offset; other sentinels
// are ErrImageTooLarge, ErrBackboneMismatch, ErrOneClass, ErrInvalidName and
// ErrUnknownItem. Programmer errors panic with a message starting "style: ":
// a slice of the wrong length, a negative size, a wrong-size destination.
// Each such panic is documented on its function.
//
// Files the package writes (converted weights, heads, catalogues, stores'
// indexes, plots) are written to a temporary file and renamed, so a crash
// leaves the old file or the new one, never half of one.
//
// # Long work, progress and cancellation
//
// Anything that can run for seconds takes a context.Context and returns
// ctx.Err() soon after it is cancelled: downloads, feature extraction,
// training, t-SNE, catalogue indexing. Progress is reported through an
// optional Progress func(Progress) field or option; the package never
// prints.
//
// # Concurrency
//
// VGG16, SiameseHead (for embedding and distances), Catalog (for queries),
// FeatureStore (for reads) and the ImageSources are safe for concurrent use
// by many goroutines. Work is split over Workers goroutines (zero means
// runtime.GOMAXPROCS(0)) by partitioning outputs, never reductions, so
// results are bit-identical for any number of workers. No goroutine
// outlives the call that started it.
//
// # Reproducibility
//
// Every random choice (weight initialisation, shuffling, splits, t-SNE) comes
// from an explicit seed through math/rand/v2's PCG. Results are identical
// from run to run on one machine and across worker counts; they can differ
// in the last bits across CPUs and build tags, because the assembly kernels
// use fused multiply-adds and the pure-Go ones may not.
//
// # References
//
//   - K. Simonyan, A. Zisserman. Very Deep Convolutional Networks for
//     Large-Scale Image Recognition. ICLR 2015. https://arxiv.org/abs/1409.1556
//   - A. Veit et al. Learning Visual Clothing Style with Heterogeneous Dyadic
//     Co-occurrences. ICCV 2015 (the Amazon co-purchase pairs).
//   - R. Hadsell, S. Chopra, Y. LeCun. Dimensionality Reduction by Learning
//     an Invariant Mapping. CVPR 2006 (the contrastive loss).
//   - L. van der Maaten. Accelerating t-SNE using Tree-Based Algorithms.
//     JMLR 15, 2014 (Barnes-Hut t-SNE).
//   - G. Linderman et al. Fast interpolation-based t-SNE for improved
//     visualization of single-cell RNA-seq data. Nature Methods 16, 2019
//     (FIt-SNE).
//   - A. Lavin, S. Gray. Fast Algorithms for Convolutional Neural Networks.
//     CVPR 2016 (Winograd convolution).
//   - The safetensors format: https://github.com/huggingface/safetensors
package style
