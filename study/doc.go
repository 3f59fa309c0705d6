// Package study runs the whole study of package style in one call: from
// labelled pairs of image names to a trained, evaluated and saved
// style.SiameseHead, with its charts and a Markdown report.
//
// It is orchestration only: every step is a function of package style
// (ReadPairs, ExtractFeatures into a FeatureStore, StratifiedSplit,
// FeatureScale, Trainer.Fit, ROCFromDistances), or Prefetch, which reads
// every image once with many downloads at once, and the charts come from
// package picture. Programs that only score pairs or build catalogues need
// neither this package nor the plotting libraries it brings in.
//
// # Use
//
//	pairs, err := style.ReadPairs(ctx, "amazon_pairs.csv")
//	net, err := style.LoadNetwork("vgg16.safetensors", nil)
//	res, err := study.Run(ctx, &study.Config{
//		Pairs: pairs, Images: src, Extractor: net,
//		StoreDir: "out/features", OutDir: "out",
//	})
//	fmt.Println(res.ROC.AUC(), res.Files[study.ReportFile])
//
// Config lists the steps and the defaults. Run reads its *Config and never
// modifies it (nor the Trainer it points to).
//
// # Outputs
//
// Run writes into Config.OutDir the files named by the *File constants: the
// trained head (HeadFile, a safetensors file that style.LoadHead reads,
// with its cutoff, scale and backbone), the learning curves, the test ROC
// curve and the distance densities before and after training (PNG), the
// list of images that failed (a tab-separated file, written only when some
// did, and removed otherwise) and the report tying them together. Every
// file is written to a temporary file and renamed, so a reader sees the
// previous version or the complete new one. New files get mode 0666 less
// the umask; replaced files keep their mode.
//
// # Interruption and resumption
//
// Features go into the feature store in Config.StoreDir as they are
// computed. Cancelling the context (or killing the process) keeps every
// feature already stored, and running the same study again computes only
// the images still missing; training and evaluation then give the same
// result as an uninterrupted run.
//
// # Errors, progress and concurrency
//
// A missing required field, an empty pair list, a feature store of
// another backbone, too few usable pairs and I/O failures are returned as
// errors whose messages start with "study: "; cancellation gives an error
// wrapping ctx.Err(). Images that cannot be read are not errors: they are
// listed in Result.Extraction.Failed and their pairs dropped. Progress is
// reported through Config.Progress, stage by stage ("download", "features",
// "train"); the package never prints. Work is spread over Config.Workers
// goroutines with results independent of their number, and Run may be
// called from several goroutines at once for different output folders and
// feature stores.
package study
