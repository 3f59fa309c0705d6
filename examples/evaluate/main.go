// Command evaluate answers "do these go well together?" for product
// photos, given as file paths or http(s) URLs, with a head trained by
// examples/train (or examples/demo) and the backbone it was trained with.
//
// Usage:
//
//	go run ./examples/evaluate [flags] IMAGE1 IMAGE2
//	go run ./examples/evaluate [flags] -pairs FILE [-images DIR|URL] [-json] [-out FILE]
//
// For two images it prints the style distance of the two items, the head's
// cutoff and the verdict; -json prints the same as a JSON object.
//
// With -pairs it scores every pair of a pair list (the study's
// image1;image2;label rows, or the same with commas or tabs) in one
// process: the model is loaded once, and the images are read and run
// through the network in parallel (-workers at once). It writes one row
// per pair, in the order of the list, as CSV (or JSON lines with -json),
// with the distance, cutoff, compatibility and verdict, or the error of a
// pair whose image failed, and ends with a summary on the standard error.
//
// The backbone flags must be those the head was trained with: the same
// -weights file, or for a generated network the same -weights-seed and
// -weights-divisor (the defaults are those of examples/demo). A head
// trained on another backbone is refused.
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
)

func main() { cli.Main("evaluate", run) }

// Result is what -json prints for two images.
type Result struct {
	Image1     string  `json:"image1"`
	Image2     string  `json:"image2"`
	Distance   float64 `json:"distance"`
	Cutoff     float64 `json:"cutoff"`
	Compatible bool    `json:"compatible"`
	Verdict    string  `json:"verdict"`
}

// Row is one scored pair of -pairs: a JSON line, or a CSV row of the same
// fields. Distance, Compatible and Verdict are absent (empty in CSV) when
// Error is set.
type Row struct {
	Line       int      `json:"line"`
	Image1     string   `json:"image1"`
	Image2     string   `json:"image2"`
	Label      int      `json:"label"`
	Distance   *float64 `json:"distance,omitempty"`
	Cutoff     float64  `json:"cutoff"`
	Compatible *bool    `json:"compatible,omitempty"`
	Verdict    string   `json:"verdict,omitempty"`
	Error      string   `json:"error,omitempty"`
}

// csvHeader are the columns of the -pairs CSV output.
var csvHeader = []string{"line", "image1", "image2", "label", "distance", "cutoff", "compatible", "verdict", "error"}

func (r *Row) csv() []string {
	rec := []string{strconv.Itoa(r.Line), r.Image1, r.Image2, strconv.Itoa(r.Label), "",
		strconv.FormatFloat(r.Cutoff, 'g', -1, 64), "", r.Verdict, r.Error}
	if r.Distance != nil {
		rec[4] = strconv.FormatFloat(*r.Distance, 'g', -1, 64)
		rec[6] = strconv.FormatBool(*r.Compatible)
	}
	return rec
}

type options struct {
	model   cli.ModelFlags
	asJSON  bool
	timeout time.Duration
	pairs   string
	images  string
	out     string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var o options
	o.model.Register(fl, cli.RequiredHead)
	fl.BoolVar(&o.asJSON, "json", false, "print JSON: one object for two images, JSON lines with -pairs")
	fl.DurationVar(&o.timeout, "timeout", 30*time.Second, "timeout of each image download")
	fl.StringVar(&o.pairs, "pairs", "", "pair list `file or URL` to score in one go: image1;image2;label rows (commas or tabs also work)")
	fl.StringVar(&o.images, "images", "", "with -pairs: `folder or URL prefix` the image names are relative to (default: names are paths or URLs)")
	fl.StringVar(&o.out, "out", "", "with -pairs: write the rows to this `file` instead of the standard output")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "Usage: evaluate [flags] IMAGE1 IMAGE2\n       evaluate [flags] -pairs FILE [-images DIR|URL] [-json] [-out FILE]\n\nTells whether product photos (file paths or http(s) URLs) go well together.\n\n")
		fl.PrintDefaults()
	}
	pos, err := cli.Parse(fl, args)
	if err != nil {
		return err
	}
	if o.timeout <= 0 {
		return cli.Usagef("-timeout %v: must be positive", o.timeout)
	}
	if err := o.model.Check(); err != nil {
		return err
	}
	if o.pairs != "" {
		if len(pos) != 0 {
			return cli.Usagef("-pairs scores a pair list: no image arguments expected, got %q", pos)
		}
		return runPairs(ctx, &o, stdout, stderr)
	}
	if o.images != "" || o.out != "" {
		return cli.Usagef("-images and -out go with -pairs")
	}
	if len(pos) != 2 {
		return cli.Usagef("want two images (or -pairs FILE), got %d arguments", len(pos))
	}
	return runTwo(ctx, &o, pos[0], pos[1], stdout, stderr)
}

func runTwo(ctx context.Context, o *options, img1, img2 string, stdout, stderr io.Writer) error {
	head, err := cli.ReadHead(o.model.Head) // before anything slow: a typo fails fast
	if err != nil {
		return err
	}
	// Read the images before the weights: a typo fails fast.
	var imgs [2]image.Image
	for i, name := range []string{img1, img2} {
		lctx, cancel := context.WithTimeout(ctx, o.timeout)
		imgs[i], err = style.LoadImage(lctx, name)
		cancel()
		if err != nil {
			return fmt.Errorf("cannot read image %s: %w", name, err)
		}
	}
	net, err := network(ctx, o, head, o.model.Quiet || o.asJSON, stderr)
	if err != nil {
		return err
	}
	var feats [2][]float32
	for i, img := range imgs {
		if feats[i], err = net.Features(img); err != nil {
			return fmt.Errorf("image %s: %w", []string{img1, img2}[i], err)
		}
	}
	d, v, err := head.Compare(feats[0], feats[1])
	if err != nil {
		return fmt.Errorf("comparing %s and %s: %w", img1, img2, err)
	}
	res := Result{Image1: img1, Image2: img2, Distance: d, Cutoff: head.Cutoff, Compatible: v == style.Compatible, Verdict: v.String()}
	if o.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, "Distance: %.4f (cutoff %.4f: compatible at or below)\n%s\n", d, head.Cutoff, v)
	return nil
}

// network loads the network of the model flags and checks that head was
// trained on it. What it is goes to stderr unless quiet: stdout holds the
// results only.
func network(ctx context.Context, o *options, head *style.SiameseHead, quiet bool, stderr io.Writer) (*style.Network, error) {
	info := stderr
	if quiet {
		info = io.Discard
	}
	net, err := o.model.Network(ctx, info, cli.NewBars(stderr, quiet))
	if err != nil {
		return nil, err
	}
	if err := cli.CheckHead(o.model.Head, head, net); err != nil {
		return nil, err
	}
	return net, nil
}

// opener reads an image of the pair list.
type opener func(ctx context.Context, name string) (image.Image, error)

// newOpener returns the image reader for -images: names relative to a
// folder or URL prefix, or paths and URLs as they are.
func newOpener(o *options) (opener, func(), error) {
	switch {
	case o.images == "":
		return style.LoadImage, func() {}, nil
	case cli.IsURL(o.images):
		src, err := style.NewURLSource(o.images, &style.URLOptions{Timeout: o.timeout})
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context, name string) (image.Image, error) { return style.OpenImage(ctx, src, name) }, func() {}, nil
	}
	if err := cli.CheckImageFolder(o.images); err != nil {
		return nil, nil, err
	}
	src, err := style.NewDirSource(o.images)
	if err != nil {
		return nil, nil, err
	}
	return func(ctx context.Context, name string) (image.Image, error) {
		return style.OpenImage(ctx, src, name)
	}, func() { src.Close() }, nil
}

// feature is an image's features, or why there are none.
type feature struct {
	f   []float32
	err error
}

func runPairs(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	if err := cli.CheckFile(o.out); err != nil {
		return err
	}
	head, err := cli.ReadHead(o.model.Head) // before anything slow: a typo fails fast
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, o.timeout)
	pairs, err := style.ReadPairs(rctx, o.pairs)
	cancel()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pair list %s does not exist", o.pairs)
		}
		return err
	}
	open, closeSrc, err := newOpener(o)
	if err != nil {
		return err
	}
	defer closeSrc()
	bars := cli.NewBars(stderr, o.model.Quiet)
	net, err := network(ctx, o, head, o.model.Quiet, stderr)
	if err != nil {
		return err
	}

	// Every distinct image once, -workers at once.
	start := time.Now()
	names := style.UniqueNames(pairs)
	feats := make([]feature, len(names))
	workers := o.model.Workers
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var (
		wg   sync.WaitGroup
		next = make(chan int)
		mu   sync.Mutex
		done int64
	)
	for range min(workers, len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				lctx, cancel := context.WithTimeout(ctx, o.timeout)
				img, err := open(lctx, names[i])
				cancel()
				if err == nil {
					feats[i].f, err = net.Features(img)
				}
				feats[i].err = err
				mu.Lock()
				done++
				bars.Update(style.Progress{Stage: "features", Done: done, Total: int64(len(names)), Elapsed: time.Since(start)})
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range names {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	bars.Finish()
	if err := ctx.Err(); err != nil {
		return err
	}
	index := make(map[string]int, len(names))
	for i, n := range names {
		index[n] = i
	}

	// The rows, in the order of the list.
	var (
		w       = stdout
		file    *os.File
		tmpName string
	)
	if o.out != "" {
		if file, err = os.CreateTemp(filepath.Dir(o.out), "."+filepath.Base(o.out)+".*"); err != nil {
			return fmt.Errorf("cannot write %s: %w", o.out, err)
		}
		tmpName = file.Name()
		defer func() {
			if file != nil {
				file.Close()
				os.Remove(tmpName)
			}
		}()
		w = file
	}
	var (
		cw     *csv.Writer
		enc    *json.Encoder
		scored int
		compat int
		agree  int
		failed int
	)
	if o.asJSON {
		enc = json.NewEncoder(w)
	} else {
		cw = csv.NewWriter(w)
		cw.Write(csvHeader)
	}
	for _, p := range pairs {
		row := Row{Line: p.Line, Image1: p.A, Image2: p.B, Label: p.Label, Cutoff: head.Cutoff}
		fa, fb := feats[index[p.A]], feats[index[p.B]]
		switch {
		case fa.err != nil:
			row.Error = fmt.Sprintf("image %s: %s", p.A, cli.Message(fa.err))
		case fb.err != nil:
			row.Error = fmt.Sprintf("image %s: %s", p.B, cli.Message(fb.err))
		default:
			d, v, err := head.Compare(fa.f, fb.f)
			if err != nil {
				row.Error = cli.Message(err)
				break
			}
			c := v == style.Compatible
			row.Distance, row.Compatible, row.Verdict = &d, &c, v.String()
		}
		if row.Error != "" {
			failed++
		} else {
			scored++
			if *row.Compatible {
				compat++
			}
			if *row.Compatible == (p.Label == 1) {
				agree++
			}
		}
		if enc != nil {
			err = enc.Encode(&row)
		} else {
			err = cw.Write(row.csv())
		}
		if err != nil {
			return fmt.Errorf("writing the rows: %w", err)
		}
	}
	if cw != nil {
		if cw.Flush(); cw.Error() != nil {
			return fmt.Errorf("writing the rows: %w", cw.Error())
		}
	}
	if file != nil {
		err := file.Close()
		if err == nil {
			err = os.Rename(tmpName, o.out)
		}
		file = nil
		if err != nil {
			os.Remove(tmpName)
			return fmt.Errorf("cannot write %s: %w", o.out, err)
		}
	}

	var bad []style.ImageFailure
	for i, f := range feats {
		if f.err != nil {
			bad = append(bad, style.ImageFailure{Name: names[i], Err: f.err})
		}
	}
	badImages := len(bad)
	fmt.Fprintf(stderr, "scored %s of %s pairs (%s distinct images, %s failed) in %s: %s compatible",
		cli.Count(scored), cli.Count(len(pairs)), cli.Count(len(names)), cli.Count(badImages), time.Since(start).Round(time.Millisecond), cli.Count(compat))
	if scored > 0 {
		fmt.Fprintf(stderr, "; the verdict agrees with the label for %.1f%%", 100*float64(agree)/float64(scored))
	}
	fmt.Fprintln(stderr)
	if failed > 0 {
		for _, line := range cli.Summary(bad, len(names), o.images) {
			fmt.Fprintf(stderr, "failed: %s\n", line)
		}
		fmt.Fprintf(stderr, "%s pairs not scored: their rows give the error\n", cli.Count(failed))
	}
	if o.out != "" {
		fmt.Fprintf(stderr, "wrote %s\n", o.out)
	}
	return nil
}
