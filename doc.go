// Package style answers "do these go well together?" for clothing and
// accessory product photos.
//
// It turns a product photo into convolutional features of an
// ImageNet-trained backbone (VGG16, as the study, or ResNet50), maps the
// features with a siamese head into a 128-dimensional style space where
// the Euclidean distance between two items is their style score, trains
// that head on labelled pairs with a contrastive loss, evaluates it with
// ROC curves, recommends compatible items from a catalogue, and projects
// the style space to 2-D with t-SNE.
// It reproduces, in pure Go, the study "Do these go well together? —
// Learning a Clothing Style Evaluator" (a Keras/Theano project) and checks
// every numeric stage against reference implementations (PyTorch,
// scikit-learn).
//
// It does not train the backbone (it is frozen, as in the study), run on
// GPUs, or ship the published weights: DownloadWeights fetches them, and
// GenerateWeights makes a seeded network for demonstrations and tests.
//
// # A tour
//
//	net, err := style.LoadNetwork("vgg16.safetensors", nil) // see DownloadWeights
//	head, err := style.LoadHead("head.safetensors")
//	if err := head.CheckBackbone(net.Backbone()); err != nil { ... }
//	a, err := style.LoadImage(ctx, "shirt.jpg") // a file or an http(s) URL
//	fa, err := net.Features(a)                 // 25,088 floats, C,H,W order
//	fb, err := net.Features(b)
//	d, verdict, err := head.Compare(fa, fb)
//	fmt.Println(d, verdict) // 0.41 Nice, this looks good together!
//
// Training goes through ReadPairs, an ImageSource (DirSource or URLSource),
// ExtractFeatures into a FeatureStore, StratifiedSplit, FeatureScale,
// NewSiameseHead, Trainer.Fit and ROCFromDistances. Catalog answers top-k
// queries, and TSNE projects embeddings to 2-D.
//
// # The packages
//
// This package is the core: what a program imports to score pairs, build
// a catalogue or train a head. It compiles no plotting, font or
// progress-bar package. Around it:
//
//   - package github.com/stylespace/style/picture draws the pictures:
//     learning curves, ROC curves, distance densities, scatter plots, the
//     t-SNE map of product thumbnails and contact sheets. It brings in
//     gonum/plot and its fonts.
//   - package github.com/stylespace/style/study runs the whole study in one
//     call (study.Run) and writes the head, the pictures and a report.
//   - internal/engine holds everything hardware-specific: the SGEMM, the
//     convolution engines, the distance and optimizer kernels, CPU feature
//     detection and the worker pool. internal/resnet is ResNet-50's
//     forward pass (batch norms folded into the convolutions at load).
//     internal/ann is the approximate
//     nearest-neighbour index (HNSW), internal/atomicfile the
//     temp-file-and-rename writer.
//   - examples/ holds the programs: demo, evaluate, train, recommend, tsne
//     and serve (an HTTP service with a web page), and examples/beam, an
//     Apache Beam pipeline in its own module.
//
// # Data layout
//
// All tensors are float32 slices in row-major order. Images are C,H,W
// (channels first, as the original Theano model and PyTorch), batches
// N,C,H,W. Convolution weights are Out,In,3,3 (PyTorch's OIHW). Dense
// kernels are In,Out (Keras' layout). VGG16 features are 512x7x7 = 25,088
// floats flattened in C,H,W order. Sets of feature rows (catalogues, feature
// stores, t-SNE inputs and outputs) are passed as a FeatureSource; Matrix
// is the in-memory one.
//
// # Preprocessing
//
// Network.Features resizes a photo to 224x224 exactly as Keras' load_img
// does (PIL's nearest neighbour: source index floor((dst+0.5)*src/dst) per
// axis), then normalises it as the weights expect: PreprocessCaffe for the
// original Oxford/Keras weights the study used (RGB to BGR, minus the
// ImageNet mean, no scaling), PreprocessTorch for torchvision and timm
// weights (divide by 255, minus mean, divided by std). The mode comes from
// the weight file and can be overridden in NetworkOptions. Grey, paletted,
// CMYK, 16-bit and translucent images are accepted; alpha is ignored by
// default, as PIL's convert("RGB") ignores it, or composited over
// NetworkOptions.Matte.
//
// # Convolution and CPU acceleration
//
// Conv computes a 3x3, stride-1, pad-1 convolution with bias and optional
// fused ReLU and 2x2 max-pool, as im2col plus SGEMM (ConvIm2col) or as
// Winograd F(2x2,3x3) or F(4x4,3x3) (ConvWinograd, ConvWinograd4x4; their
// errors against a float64 reference stay at float32 rounding level: 8e-7
// and 1.9e-6 relative on the golden VGG16, against 9e-7 for im2col). The
// default, ConvAuto, picks per layer. Conv chooses its engine once, in
// NewConv. The work is split by output in a way that depends only on the
// shapes, so results are bit-identical for any Workers value and any
// batching. Conv and Network values are immutable and safe for concurrent
// use.
//
// Matrix products go through a gonum blas.Float32Level3, by default BLAS:
// gonum's implementation with Sgemm replaced by a packed, cache-blocked
// SGEMM. On amd64 its micro-kernels are assembly generated with avo by the
// separate module in _gen (regenerate with "go generate -run _gen
// ./internal/engine"): AVX-512F or AVX2+FMA, chosen once at start-up with
// golang.org/x/sys/cpu. On other architectures, or when built with -tags
// purego, pure-Go kernels with the same blocking are used; they are also
// the reference the assembly is tested against. GODEBUG=cpu.avx512f=off
// (AVX2) or cpu.avx512f=off,cpu.avx2=off (pure Go) switches paths off at
// run time. Any other gonum BLAS can be passed wherever a
// blas.Float32Level3 is accepted; the package never calls the
// process-global blas32.Use.
//
// # Weight files
//
// ReadWeights and LoadNetwork read the convolutional part of a backbone
// from safetensors files (our own converted files and timm's
// model.safetensors) and from PyTorch checkpoints in both the legacy and
// the zip torch.save formats (torchvision's vgg16-397923af.pth), with
// float32, float16 or bfloat16 values. The format is told from the content,
// and only the backbone's tensors are read, so the 500 MB classifier is
// never loaded. Names, shapes and a byte budget are checked before any data
// is read, so a hostile file cannot make a reader allocate more than twice
// the weights it keeps plus 64 MB; values must be finite and in range.
// Pickles are never executed. Malformed files give a *FormatError naming
// the file and byte offset. Weights.WriteSafetensors writes the 58.9 MB
// float32 conv stack with metadata (arch, preprocess, source,
// source_sha256). DownloadWeights fetches torchvision's file into
// os.UserCacheDir()/style with resumption, a stall timeout, a size cap and
// a SHA-256 check, converts it, and from then on serves the cached
// conversion without network access.
//
// # The style space and training
//
// A SiameseHead is one Dense(25,088 -> 128, ReLU) layer applied to both
// items of a pair, after dividing the features by the head's Scale (MinMax
// scaling by the training maximum, from FeatureScale; 844.34 for the
// study's Keras weights). The Euclidean distance between the two
// embeddings, floored at sqrt(1e-7), is the style score: smaller means more
// compatible, and a pair is compatible when the distance is at or below the
// head's Cutoff. ROCFromDistances keeps that direction, so AUCs are never
// inverted and cutoffs come back as distances. HeadConfig.Hidden adds
// hidden Dense+ReLU layers before the embedding layer, for deeper heads;
// package study selects a head's setting by stratified k-fold
// cross-validation. A head records the Backbone
// it was trained on (for a generated network, its seed and width divisor
// too), and CheckBackbone refuses features from another one.
//
// Trainer.Fit minimises the contrastive loss (margin 1) plus 1.25e-4·ΣW² on
// the kernel only, using RMSProp with Keras' defaults (learning rate 1e-3,
// rho 0.9, epsilon 1e-7 outside the square root, accumulators from 0), in
// mini-batches of 128 pairs reshuffled every epoch from Trainer.Seed, with
// early stopping on the validation loss. Features are read from a
// FeatureSource one batch at a time.
//
// # Data sets, caches and memory
//
// ReadPairs reads the study's "pic1;pic2;score" file (35,000 pairs, 2,040
// compatible, 55,566 distinct image names) or any comma-separated file with
// a header, from a file or a URL; a malformed row gives a *FormatError with
// its line. ReadMetadata reads a product table (categories, names). Images
// come from an ImageSource: a local folder (DirSource, which lists its
// images and refuses names that escape it) or a URL prefix (URLSource, with
// bounded concurrent downloads, timeouts, retries with backoff, a size cap
// and an on-disk cache). ExtractFeatures runs each distinct image through a
// FeatureExtractor once and appends the result to a FeatureStore, a folder
// that survives interruption: a restarted run skips finished images, a
// half-written record is dropped, and every record's checksum is verified
// before it is used. Features are stored as float16 (relative error at most
// 2^-11), so the study's 55,566 x 25,088 features take 2.8 GB; on Unix the
// file is memory-mapped. OpenFeatureStore and LoadCatalog also open the
// sharded output of an extraction split over many machines (a manifest
// listing self-contained stores and catalogues, as examples/beam writes
// it) as one read-only store and one catalogue. StratifiedSplit makes the seeded 60/20/20 split:
// 21,000, 7,000 and 7,000 pairs with 5.8% compatible in each.
//
// # Recommendations
//
// A Catalog holds embedded items (ID, category, style vector) contiguously
// and answers exact top-k queries: the items nearest in Euclidean distance
// are the most compatible. Catalog.AddImages indexes images with the same
// resumable extraction loop as ExtractFeatures. Results can be filtered by
// a predicate, an excluded ID or category, or "not the query's category".
// The scan runs in parallel with per-worker bounded heaps merged by
// (distance, index), so results are identical for any number of workers.
// Catalogues are saved atomically in a checksummed binary format.
//
// Big catalogues can carry an approximate index (Catalog.BuildIndex, an
// HNSW graph saved next to the catalogue file): from 50,000 items on,
// queries go through it, with the same filters, distances and ordering,
// at about 97% recall@10 and a fraction of a millisecond per query for
// 1,000,000 items; RecommendOptions.Approximate forces either search. An
// index that does not match the catalogue's embeddings is never used.
//
// # t-SNE
//
// TSNE embeds feature rows, such as 128-D style vectors, in 2-D or 3-D
// with t-distributed stochastic neighbour embedding. Its zero value uses
// scikit-learn's defaults: perplexity 30, 1,000 iterations, early
// exaggeration 12 for the first 250, learning rate max(N/48, 50), PCA
// initialisation. The repulsive forces use a Barnes-Hut quadtree or octree,
// FFT-accelerated interpolation for large inputs, or the exact O(N²) sum
// (TSNEMethod). The embedding depends only on the input and Seed, never on
// Workers. Package picture draws it as a map of product thumbnails.
//
// # Errors and panics
//
// Anything that depends on data or I/O returns an error: weight files,
// images, pair lists, caches, downloads, numerical failure, cancellation
// and invalid configuration. Malformed data gives a *FormatError
// (errors.Is(err, ErrFormat)) naming the file and the line or byte offset;
// other sentinels are ErrImageTooLarge, ErrBackboneMismatch,
// ErrInvalidName and ErrUnknownItem. A NaN or infinite feature or distance
// is an error, never a verdict. Programmer errors panic with a message
// starting "style: ": a slice of the wrong length, a negative size, a
// wrong-size destination (functions with a To suffix write into a dst the
// caller sizes). Each such panic is documented on its function.
//
// Files the package writes (converted weights, heads, catalogues, stores'
// indexes) are written to a temporary file and renamed, so a crash leaves
// the old file or the new one, never half of one. New files get mode 0666
// less the umask; a replaced file keeps its mode.
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
// Network, SiameseHead (for embedding and distances), Catalog (for
// queries), FeatureStore (for reads) and the ImageSources are safe for
// concurrent use by many goroutines. Work is split over Workers goroutines
// (zero means runtime.GOMAXPROCS(0), negative is an error) by partitioning
// outputs, never reductions, so results are bit-identical for any number
// of workers. No goroutine outlives the call that started it.
//
// # Reproducibility
//
// Every random choice (weight initialisation, shuffling, splits, t-SNE)
// comes from an explicit seed through math/rand/v2's PCG. Results are
// identical from run to run on one machine and across worker counts; they
// can differ in the last bits across CPUs and build tags, because the
// assembly kernels use fused multiply-adds and the pure-Go ones may not.
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
