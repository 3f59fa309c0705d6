package cli

import (
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stylespace/style"
)

// FashionDir is the product catalogue of the reference data, relative to a
// package folder under examples/ (tests run in their package's folder).
const FashionDir = "../../../shared/fashion"

// NarrowWeights is a VGG16-shaped weight file with every width divided by 8,
// relative to a package folder under examples/.
const NarrowWeights = "../../../shared/golden/vgg16_narrow_tv.safetensors"

// FashionPairs builds a labelled pair list from the first n usable products
// of the catalogue in dir (its styles.csv): a pair of products is compatible
// (1) when they share usage, season and gender but belong to different
// sub-categories, the catalogue's notion of items worn together, and
// incompatible (0) when they differ in usage. Every compatible pair is kept
// and about as many incompatible ones, chosen deterministically. It returns
// the rows "image1;image2;label" (image names are "<id>.jpg" in
// dir/images) and the distinct image names. It is meant for tests and
// quick demonstrations.
func FashionPairs(dir string, n int) (rows []string, names []string, err error) {
	f, err := os.Open(filepath.Join(dir, "styles.csv"))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return nil, nil, err
	}
	type item struct{ id, gender, sub, season, usage string }
	var items []item
	for _, rec := range recs[1:] {
		if len(rec) < 9 || rec[8] == "" || rec[6] == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "images", rec[0]+".jpg")); err != nil {
			continue
		}
		items = append(items, item{id: rec[0], gender: rec[1], sub: rec[3], season: rec[6], usage: rec[8]})
		if len(items) == n {
			break
		}
	}
	var pos, neg []string
	for i := range items {
		for j := i + 1; j < len(items); j++ {
			a, b := items[i], items[j]
			row := fmt.Sprintf("%s.jpg;%s.jpg", a.id, b.id)
			switch {
			case a.usage == b.usage && a.season == b.season && a.gender == b.gender && a.sub != b.sub:
				pos = append(pos, row+";1")
			case a.usage != b.usage:
				neg = append(neg, row+";0")
			}
		}
	}
	if len(pos) == 0 || len(neg) == 0 {
		return nil, nil, fmt.Errorf("%s: no pairs of both labels among %d products", dir, len(items))
	}
	step := max(1, len(neg)/len(pos))
	for i := 0; i < len(neg); i += step {
		rows = append(rows, neg[i])
	}
	// Interleave so that any prefix has both labels.
	out := make([]string, 0, len(pos)+len(rows))
	for i := 0; i < max(len(pos), len(rows)); i++ {
		if i < len(rows) {
			out = append(out, rows[i])
		}
		if i < len(pos) {
			out = append(out, pos[i])
		}
	}
	seen := map[string]bool{}
	for _, row := range out {
		for _, nm := range strings.Split(row, ";")[:2] {
			if !seen[nm] {
				seen[nm] = true
				names = append(names, nm)
			}
		}
	}
	return out, names, nil
}

// LoadNetwork loads the weight file path, whose widths are the
// architecture's divided by divisor, computing convolutions with the
// algorithm named conv (see ParseConv). Tests use it to compute expected
// results through the library directly.
func LoadNetwork(path, conv string, divisor int) (*style.Network, error) {
	algo, err := ParseConv(conv)
	if err != nil {
		return nil, err
	}
	w, err := style.ReadWeights(path, "", divisor)
	if err != nil {
		return nil, err
	}
	return style.NewNetwork(w, &style.NetworkOptions{Algorithm: algo})
}
