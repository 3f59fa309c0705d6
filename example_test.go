package style_test

import (
	"context"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/stylespace/style"
)

// A weight file is converted once to safetensors and then loaded in a
// fraction of a second. Here the weights are generated, so the example
// runs offline; LoadNetwork tells the architecture from the file.
func ExampleLoadNetwork() {
	dir, err := os.MkdirTemp("", "style-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "vgg16.safetensors")
	w, err := style.GenerateWeights(style.VGG16, 1, 1)
	if err != nil {
		log.Fatal(err)
	}
	if err := w.WriteSafetensors(path); err != nil {
		log.Fatal(err)
	}

	net, err := style.LoadNetwork(path, nil)
	if err != nil {
		log.Fatal(err)
	}
	b := net.Backbone()
	fmt.Println(b.Arch, b.Preprocess, net.FeatureLen(), len(b.SHA256), b.Divisor)
	// Output: vgg16 caffe 25088 64 1
}

// Compare embeds two feature vectors and gives their style distance and the
// verdict against the head's cutoff.
func ExampleSiameseHead_Compare() {
	head, err := style.NewSiameseHead(&style.HeadConfig{In: 6, Out: 4, Seed: 1, Cutoff: 0.5})
	if err != nil {
		log.Fatal(err)
	}
	shirt := []float32{0.9, 0.1, 0.4, 0, 0.2, 0.7}
	similar := []float32{0.8, 0.1, 0.5, 0, 0.2, 0.6}
	other := []float32{0, 0.9, 0, 1, 0.8, 0}
	for _, item := range [][]float32{similar, other} {
		d, v, err := head.Compare(shirt, item)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%.3f %v\n", d, v)
	}
	// Output:
	// 0.162 Nice, this looks good together!
	// 1.627 Sorry, these styles do not match.
}

// The contrastive loss pulls compatible pairs together and pushes
// incompatible ones at least the margin apart. Here each batch holds one
// pair of 1-D embeddings, 0 and the distance.
func ExampleContrastiveLoss_EvalTo() {
	var loss style.ContrastiveLoss // margin 1, as in the study
	at := func(d float32, label int) float64 {
		return loss.EvalTo(nil, nil, []float32{0}, []float32{d}, []int{label})
	}
	fmt.Printf("compatible at 0.3:   %.2f\n", at(0.3, 1))
	fmt.Printf("incompatible at 0.3: %.2f\n", at(0.3, 0))
	fmt.Printf("incompatible at 1.5: %.2f\n", at(1.5, 0))
	// Output:
	// compatible at 0.3:   0.09
	// incompatible at 0.3: 0.49
	// incompatible at 1.5: 0.00
}

// RMSProp with Keras' defaults takes steps of a few times the learning rate
// at first, whatever the gradient's scale: 3.16e-3, 2.29e-3, 1.92e-3 here.
func ExampleRMSProp() {
	var opt style.RMSProp
	w := []float32{1, 1}
	for range 3 {
		opt.Step([][]float32{w}, [][]float32{{0.5, -200}})
	}
	fmt.Printf("%.4f %.4f\n", w[0], w[1])
	// Output: 0.9926 1.0074
}

// Pair lists are the study's "pic1;pic2;score" files or comma-separated
// files with a header, read from a file or an http(s) URL.
func ExampleReadPairs() {
	dir, err := os.MkdirTemp("", "style-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	good, bad := filepath.Join(dir, "pairs.csv"), filepath.Join(dir, "bad.csv")
	csv := "image1,image2,label\nshirt.jpg,shoes.jpg,1\nshirt.jpg,hat.jpg,0\n"
	if err := os.WriteFile(good, []byte(csv), 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("a.jpg;b.jpg;2\n"), 0o644); err != nil {
		log.Fatal(err)
	}
	pairs, err := style.ReadPairs(context.Background(), good)
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range pairs {
		fmt.Println(p.A, p.B, p.Label, "line", p.Line)
	}
	_, err = style.ReadPairs(context.Background(), bad)
	fmt.Println(strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""))
	// Output:
	// shirt.jpg shoes.jpg 1 line 2
	// shirt.jpg hat.jpg 0 line 3
	// style: bad.csv: line 1: label "2" is not 0 or 1
}

// Index finds an item by its product ID or by the file name of its photo.
func ExampleCatalog_Index() {
	var cat style.Catalog
	for _, id := range []string{"15970.jpg", "39386.jpg"} {
		if err := cat.Add(style.Item{ID: id, Embedding: []float32{0, 1}}); err != nil {
			log.Fatal(err)
		}
	}
	for _, name := range []string{"39386", "15970.jpg", "15970.png"} {
		i, ok := cat.Index(name)
		fmt.Println(name, i, ok)
	}
	// Output:
	// 39386 1 true
	// 15970.jpg 0 true
	// 15970.png 0 false
}

// TSNE maps style vectors to 2-D so that neighbours stay neighbours: here
// two well-separated groups of 10-D points, given as a Matrix (a catalogue
// or a feature store would do as well), stay apart on the map.
func ExampleTSNE_Fit() {
	const n, dim = 60, 10
	x := &style.Matrix{Rows: n, Cols: dim, Data: make([]float32, n*dim)}
	for i := range n {
		for j := range dim {
			v := math.Sin(float64(i*dim + j)) // deterministic jitter
			if i < n/2 && j == 0 {
				v += 20 // the first group is far along the first axis
			}
			x.Data[i*dim+j] = float32(v)
		}
	}
	res, err := style.TSNE{Perplexity: 10, Seed: 1}.Fit(context.Background(), x)
	if err != nil {
		log.Fatal(err)
	}
	y := res.Y
	// Mean distance on the map within the groups and between them.
	var within, between float64
	var nw, nb int
	for i := range n {
		for j := range i {
			a, b := y.Data[2*i:2*i+2], y.Data[2*j:2*j+2]
			d := math.Hypot(float64(a[0]-b[0]), float64(a[1]-b[1]))
			if (i < n/2) == (j < n/2) {
				within, nw = within+d, nw+1
			} else {
				between, nb = between+d, nb+1
			}
		}
	}
	fmt.Println(y.Rows, y.Cols, between/float64(nb) > 2*within/float64(nw))
	// Output: 60 2 true
}
