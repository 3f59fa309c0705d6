// Command evaluate answers "do these go well together?" for two product
// photos, given as file paths or http(s) URLs, with a head trained by
// examples/train and the VGG16 weights it was trained with.
//
// Usage:
//
//	go run ./examples/evaluate [flags] IMAGE1 IMAGE2
//
// It prints the style distance of the two items, the head's cutoff and the
// verdict; -json prints the same as a JSON object.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"io/fs"
	"time"

	"github.com/stylespace/style"
	"github.com/stylespace/style/examples/internal/cli"
)

func main() { cli.Main("evaluate", "", run) }

// Result is what -json prints.
type Result struct {
	Image1     string  `json:"image1"`
	Image2     string  `json:"image2"`
	Distance   float64 `json:"distance"`
	Cutoff     float64 `json:"cutoff"`
	Compatible bool    `json:"compatible"`
	Verdict    string  `json:"verdict"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	flags.SetOutput(stderr)
	var (
		headPath     = flags.String("head", "style-study/head.safetensors", "trained head `file` (written by examples/train)")
		weights      = flags.String("weights", "", "VGG16 weight `file` the head was trained with (default: torchvision's VGG16, downloaded once into the cache)")
		weightsCache = flags.String("weights-cache", "", "`folder` for the downloaded weights (default: the user cache folder)")
		asJSON       = flags.Bool("json", false, "print the result as JSON")
		timeout      = flags.Duration("timeout", 30*time.Second, "timeout of each image download")
		quiet        = flags.Bool("quiet", false, "no progress bars")
		conv         = flags.String("conv", "auto", cli.ConvUsage)
		divisor      = flags.Int("weights-divisor", 1, "width divisor of the -weights network: 1 for VGG16, 2 to 64 for a narrow test network")
	)
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "Usage: evaluate [flags] IMAGE1 IMAGE2\n\nTells whether two product photos (file paths or http(s) URLs) go well together.\n\n")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() != 2 {
		flags.Usage()
		return fmt.Errorf("want two images, got %d arguments", flags.NArg())
	}
	img1, img2 := flags.Arg(0), flags.Arg(1)

	head, err := style.LoadHead(*headPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no trained head at %s: train one with examples/train or pass -head FILE", *headPath)
		}
		return fmt.Errorf("head: %w", err)
	}
	// Read the images before the weights: a typo fails fast.
	var imgs [2]image.Image
	for i, name := range []string{img1, img2} {
		lctx, cancel := context.WithTimeout(ctx, *timeout)
		imgs[i], err = style.LoadImage(lctx, name)
		cancel()
		if err != nil {
			return fmt.Errorf("cannot read image %s: %w", name, err)
		}
	}
	bars := cli.NewBars(stderr, *quiet || *asJSON)
	wpath, err := cli.Weights(ctx, *weights, *weightsCache, bars)
	if err != nil {
		return err
	}
	vgg, err := cli.LoadNetwork(wpath, *conv, *divisor)
	if err != nil {
		return err
	}
	if err := head.CheckBackbone(vgg.Backbone()); err != nil {
		return fmt.Errorf("the head %s cannot be used with the weights %s: %w\n(pass the weight file the head was trained with, or train a head for these weights)", *headPath, wpath, err)
	}
	if head.Dense.In != vgg.FeatureLen() {
		return fmt.Errorf("the head %s takes %d features but the weights %s give %d", *headPath, head.Dense.In, wpath, vgg.FeatureLen())
	}

	var feats [2][]float32
	for i, img := range imgs {
		if feats[i], err = vgg.Features(img); err != nil {
			return fmt.Errorf("image %s: %w", flags.Arg(i), err)
		}
	}
	d, v, err := head.Compare(feats[0], feats[1])
	if err != nil {
		return fmt.Errorf("comparing %s and %s: %w", flags.Arg(0), flags.Arg(1), err)
	}
	res := Result{Image1: img1, Image2: img2, Distance: d, Cutoff: head.Cutoff, Compatible: v == style.Compatible, Verdict: v.String()}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, "Distance: %.4f (cutoff %.4f: compatible at or below)\n%s\n", d, head.Cutoff, v)
	return nil
}
