package main

import (
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stylespace/style/examples/internal/cli"
	"github.com/stylespace/style/internal/atomicfile"
)

// comparisonFile is the Markdown table -compare writes into -out.
const comparisonFile = "comparison.md"

// perImage returns the extraction time per computed image, in
// milliseconds, or "reused" when this run computed no features (they were
// all in the store already).
func (s *summary) perImage() string {
	if s.images == 0 {
		return "reused"
	}
	return fmt.Sprintf("%.2f ms", float64(s.extraction/time.Duration(s.images))/float64(time.Millisecond))
}

// bytesPerItem returns the feature store's size on disk per stored image:
// the float16 features plus each record's name and header, and the
// store's index.
func (s *summary) bytesPerItem() float64 {
	if s.stored == 0 {
		return 0
	}
	return float64(s.storeBytes) / float64(s.stored)
}

// comparison returns the side-by-side table of runs, aligned for a
// terminal.
func comparison(runs []*summary) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "backbone\tfeatures\tstore bytes/item\textraction/image\ttest AUC untrained -> trained\ttraining")
	for _, s := range runs {
		fmt.Fprintf(w, "%s\t%d\t%.0f\t%s\t%.3f -> %.3f\t%s\n", cli.Describe(s.backbone), s.featureLen,
			s.bytesPerItem(), s.perImage(), s.untrained, s.trained,
			s.trainTime.Round(100*time.Millisecond))
	}
	w.Flush()
	return b.String()
}

// writeComparison writes the Markdown version of the table, with what it
// measures, to path, atomically.
func writeComparison(path string, runs []*summary, items, pairs int) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		var b strings.Builder
		p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
		p("# Backbones side by side\n\n")
		p("The same %d generated products and %d labelled pairs, split, trained and tested the same way with each backbone. ", items, pairs)
		p("Each backbone's full results (report, head, catalogue, pictures) are in the folder of its name.\n\n")
		p("| backbone | features per item | feature store bytes per item | extraction per image | test AUC untrained | test AUC trained | training |\n")
		p("|---|---|---|---|---|---|---|\n")
		for _, s := range runs {
			p("| %s | %d | %.0f | %s | %.3f | %.3f | %s |\n", cli.Describe(s.backbone), s.featureLen,
				s.bytesPerItem(), s.perImage(), s.untrained, s.trained,
				s.trainTime.Round(100*time.Millisecond))
		}
		p("\n- **Features per item**: floats per image out of the backbone; the store keeps them as float16.\n")
		p("- **Feature store bytes per item**: the store's files on disk divided by the images in it.\n")
		p("- **Extraction per image**: wall time of the extraction step (drawing and decoding the image, resizing, the forward pass) divided by the images computed, on this machine with the -workers given; \"reused\" when every image's features were already in the store (delete the features folders to measure again).\n")
		p("- With generated weights the features are not ImageNet features: the AUCs compare the pipelines, not the published backbones. Pass -download for those.\n")
		_, err := io.WriteString(w, b.String())
		return err
	})
}

// folderSize returns the total size of the regular files under dir.
func folderSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}
