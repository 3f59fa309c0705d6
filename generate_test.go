package style

import (
	"encoding/json"
	"os"
	"testing"
)

// TestGenerateVGG16WeightsFormula checks that seed 0, divisor 1 gives the
// formula network of ../shared/golden/vgg16_formula, against the first
// weights and biases that weights_check.json lists.
func TestGenerateVGG16WeightsFormula(t *testing.T) {
	w := GenerateVGG16Weights(0, 1)
	ref := formulaVGG16Weights(vgg16FullWidths)
	for l := range ref.Layers {
		a, b := w.Layers[l], ref.Layers[l]
		if a.In != b.In || a.Out != b.Out {
			t.Fatalf("layer %d: %dx%d, want %dx%d", l, a.Out, a.In, b.Out, b.In)
		}
		for i := range b.Weight {
			if a.Weight[i] != b.Weight[i] {
				t.Fatalf("layer %d weight %d: %g, want %g", l, i, a.Weight[i], b.Weight[i])
			}
		}
		for i := range b.Bias {
			if a.Bias[i] != b.Bias[i] {
				t.Fatalf("layer %d bias %d: %g, want %g", l, i, a.Bias[i], b.Bias[i])
			}
		}
	}
	// The first values that the reference implementation wrote (copied
	// from ../shared/golden/vgg16_formula/weights_check.json); float32
	// values printed as float64, so equal to float32 rounding.
	raw, err := os.ReadFile("testdata/vgg16_formula_weights_check.json")
	if err != nil {
		t.Fatal(err)
	}
	var check map[string][]float64
	if err := json.Unmarshal(raw, &check); err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, c := range []struct {
		key   string
		layer int
		bias  bool
	}{
		{"layer0_weight_first8", 0, false},
		{"layer12_weight_first8", 12, false},
		{"layer0_bias_first4", 0, true},
		{"layer12_bias_first4", 12, true},
	} {
		vals := check[c.key]
		if len(vals) == 0 {
			t.Fatalf("%s missing from the reference", c.key)
		}
		got := w.Layers[c.layer].Weight
		if c.bias {
			got = w.Layers[c.layer].Bias
		}
		for i, f := range vals {
			if got[i] != float32(f) {
				t.Fatalf("%s[%d] = %g, want %g", c.key, i, got[i], f)
			}
			found++
		}
	}
	t.Logf("%d reference values checked", found)
}

func TestGenerateVGG16WeightsSeedsAndWidths(t *testing.T) {
	a := GenerateVGG16Weights(1, 8)
	b := GenerateVGG16Weights(2, 8)
	if a.Layers[0].Out != 8 || a.Layers[12].Out != 64 || a.Layers[12].In != 64 {
		t.Fatalf("narrow widths wrong: %d, %d", a.Layers[0].Out, a.Layers[12].Out)
	}
	same := 0
	for i := range a.Layers[3].Weight {
		if a.Layers[3].Weight[i] == b.Layers[3].Weight[i] {
			same++
		}
	}
	if same > len(a.Layers[3].Weight)/100 {
		t.Fatalf("seeds 1 and 2 share %d of %d weights", same, len(a.Layers[3].Weight))
	}
	if _, err := NewVGG16(a, nil); err != nil {
		t.Fatalf("generated weights rejected: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("divisor 3 did not panic")
		}
	}()
	GenerateVGG16Weights(0, 3)
}
