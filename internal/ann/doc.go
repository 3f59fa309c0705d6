// Package ann is an approximate nearest-neighbour index over float32
// vectors: a hierarchical navigable small-world graph (HNSW, Malkov &
// Yashunin, "Efficient and robust approximate nearest neighbor search
// using Hierarchical Navigable Small World graphs", IEEE TPAMI 2018,
// https://arxiv.org/abs/1603.09320) that answers top-k queries under the
// squared Euclidean distance in far fewer distance computations than an
// exact scan. It does not store the vectors, quantise them, or support
// deletions: the catalogue owns the vectors and rebuilds the index when
// they change.
//
// # Why not an existing module
//
// The pure-Go HNSW module on the module proxy, github.com/coder/hnsw
// (v0.6.1, June 2024, its only release), fails several requirements: no
// filtered search; neighbour lists are maps of pointers (several times
// the memory of a flat array) and both its pruning and its Export iterate
// them, so builds and files are not reproducible, and its level draws use
// a time-seeded math/rand source by default; the build is serial, with no
// context or progress; a search allocates a visited map; it keeps the
// vectors in every layer's nodes and writes them in each layer of the
// file; Euclidean distances are square-rooted (not the catalogue's
// squared float32 sums); pruning drops the farthest neighbour rather than
// applying the paper's selection heuristic; and Import sizes allocations
// from lengths read from the file without checking them. Hence this
// implementation, which follows the paper's Algorithms 1, 2 and 4 (the
// neighbour-selection heuristic) as hnswlib does.
//
// # Data layout
//
// The vectors are n = len(vecs)/dim rows of dim float32, row-major, the
// caller's slice: the index keeps it, so it must not change while the
// index is used. Items are their row numbers. Layer 0 holds 2M links per
// node, the upper layers M; node i reaches layer L with probability
// M^-L. The graph takes 4·(2M+1) + 5 bytes per item plus about
// 4·(M+1)/(M-1) bytes for the upper layers: 141 bytes for M = 16, on top
// of the 4·dim bytes of the vector (512 for dim 128).
//
// # Distances and results
//
// Distances are squared Euclidean, computed by engine.SqDistBounded, the
// loop of the root package's exact scan, so they are bit-identical to
// its. Results are sorted by (distance, index).
// NaN distances (a NaN query) count as +Inf.
//
// # Reproducibility
//
// The same vectors, Config and Seed give the same graph, byte for byte,
// whatever the number of workers: levels are hashed from the seed and the
// node's index; nodes are inserted in batches whose neighbour searches run
// in parallel against the graph frozen at the start of the batch (plus
// the earlier nodes of the batch, by exact distance), and the reverse
// links are then merged per target node in index order. Searches are
// deterministic too.
//
// # Filters
//
// Search takes an accept function (category exclusions, predicates).
// Rejected items are traversed but never returned, so with a fraction p
// of the items accepted a search looks at about 1/p times as many nodes,
// and recall falls when the accepted items are few and far from the
// query's neighbourhood in the graph. Once a filtered search has computed
// a quarter as many distances as an exact scan would, it gives up and
// says so; the caller then answers with an exact scan.
//
// # Performance
//
// BenchmarkANN, 1,000,000 × 128 clustered vectors, k = 10, one query at
// a time, on a shared 2-core AMD EPYC Zen 5 (pure Go, so there is no
// AVX2 or AVX-512 path to compare). With M = 16 and EfConstruction =
// 200, recall@10 against brute force is 0.955 at ef 48, 0.970 at ef 64
// (DefaultEf) and 0.995 at ef 96, for 0.16, 0.20 and 0.25 ms per query;
// the root package's exact scan takes 37 ms. The build takes 524 CPU
// seconds; its heap peaks 150 bytes per item above the vectors, the
// graph's 141 included. EfConstruction = 100 halves the build (254 CPU
// seconds) but recall at ef 64 drops to 0.954 and levels off at 0.975.
//
// # Errors, panics and concurrency
//
// Shape errors (dim < 1, a vector slice that is not whole rows, a query
// of the wrong length) panic with a message starting "style: ". Bad
// configurations, non-finite vectors, cancellation and malformed files
// return errors; file errors are *FormatError values with the byte
// offset, and an index built over other vectors wraps ErrMismatch. An
// Index is immutable: Search, Len, Dim and WriteTo are safe for
// concurrent use.
package ann
