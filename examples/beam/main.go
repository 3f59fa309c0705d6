// Command beam extracts VGG16 features (and, with a trained head, style
// embeddings) for a whole catalogue of product images as an Apache Beam
// pipeline: locally on the embedded Prism runner, or on Dataflow, Flink or
// Spark.
//
//	go run . -input=images.txt -output=out -weights=vgg16.safetensors [-head=head.safetensors]
//
// It reads a list of images (a text file of paths and URLs, or a directory
// or glob), loads each worker's model once, runs the forward pass in
// batches, and writes the results in shards (each by one worker) and a
// dead-letter report of the images that failed (failures.jsonl) to the
// output directory: per shard, the features as a style.FeatureStore and
// the embeddings as a style.Catalog; and a manifest (manifest.json)
// through which style.OpenFeatureStore and style.LoadCatalog open all
// shards as one store and one catalogue. A rerun into the same output
// keeps the shards that are complete and rewrites the others. Every Beam flag
// (-runner, -project, -region, -endpoint, -environment_type, ...) is
// accepted; see README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/x/beamx"
)

var (
	input       = flag.String("input", "", "image list: a text file of paths/URLs (one per line), or a directory or glob of images (required)")
	output      = flag.String("output", "", "output directory for the results and failures.jsonl (required)")
	weights     = flag.String("weights", "", "VGG16 weight file (safetensors or .pth), local or gs://...; or generated:narrow:SEED for a generated test network (required)")
	head        = flag.String("head", "", "optional trained siamese head file: adds style embeddings")
	batchSize   = flag.Int("batch_size", 16, "images per forward pass")
	modelWork   = flag.Int("model_workers", 0, "goroutines per forward pass in each worker process (0: all cores)")
	features    = flag.Bool("feature_store", true, "write the features to a feature store (output/features); -feature_store=false keeps only the head's catalogue")
	httpTimeout = flag.Duration("http_timeout", 30*time.Second, "timeout for fetching one image by URL")
	shards      = flag.Int("shards", defaultShards, "number of shards of the output, each written by one worker (at least the number of workers)")
)

func main() {
	flag.Parse()
	beam.Init()
	if *input == "" || *output == "" || *weights == "" {
		fmt.Fprintln(os.Stderr, "beam: -input, -output and -weights are required")
		flag.Usage()
		os.Exit(2)
	}
	if *shards <= 0 {
		fmt.Fprintln(os.Stderr, "beam: -shards must be positive")
		os.Exit(2)
	}
	if !*features && *head == "" {
		fmt.Fprintln(os.Stderr, "beam: -feature_store=false without -head would write nothing")
		os.Exit(2)
	}
	spec := ModelSpec{Weights: *weights, Head: *head, Workers: *modelWork}
	if err := spec.Check(); err != nil {
		fmt.Fprintln(os.Stderr, "beam:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	p, s := beam.NewPipelineWithRoot()
	Build(s, Config{
		Input:          *input,
		Output:         *output,
		Model:          spec,
		BatchSize:      *batchSize,
		HTTPTimeout:    *httpTimeout,
		NoFeatureStore: !*features,
		Shards:         *shards,
	})
	start := time.Now()
	if err := beamx.Run(ctx, p); err != nil {
		fmt.Fprintln(os.Stderr, "beam:", err)
		os.Exit(1)
	}
	fmt.Printf("done in %v; results in %s\n", time.Since(start).Round(time.Millisecond), *output)
}
