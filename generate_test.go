package style

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGenerateWeightsFormula checks that seed 0, divisor 1 gives the
// formula network of ../shared/golden/vgg16_formula, against the first
// weights and biases that weights_check.json lists.
func TestGenerateWeightsFormula(t *testing.T) {
	w := testWeights(t, 0, 1)
	ref := formulaVGG16Weights()
	require.Len(t, w.layers, len(ref.layers))
	for l := range ref.layers {
		a, b := w.layers[l], ref.layers[l]
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
	require.NoError(t, err)
	var check map[string][]float64
	require.NoError(t, json.Unmarshal(raw, &check))
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
		require.NotEmpty(t, vals, "%s missing from the reference", c.key)
		got := w.layers[c.layer].Weight
		if c.bias {
			got = w.layers[c.layer].Bias
		}
		for i, f := range vals {
			require.Equal(t, float32(f), got[i], "%s[%d]", c.key, i)
			found++
		}
	}
	t.Logf("%d reference values checked", found)
}

func TestGenerateWeightsSeedsAndWidths(t *testing.T) {
	a := testWeights(t, 1, 8)
	b := testWeights(t, 2, 8)
	require.Equal(t, 8, a.layers[0].Out, "narrow widths")
	require.Equal(t, 64, a.layers[12].Out, "narrow widths")
	require.Equal(t, 64, a.layers[12].In, "narrow widths")
	assert.Equal(t, Weights{Arch: VGG16, Divisor: 8, Seed: 1, Preprocess: PreprocessCaffe,
		Metadata: map[string]string{"source": "generated: seed 1, width divisor 8"}}, Weights{Arch: a.Arch, Divisor: a.Divisor,
		Seed: a.Seed, Preprocess: a.Preprocess, Metadata: a.Metadata})
	same := 0
	for i := range a.layers[3].Weight {
		if a.layers[3].Weight[i] == b.layers[3].Weight[i] {
			same++
		}
	}
	assert.LessOrEqual(t, same, len(a.layers[3].Weight)/100, "seeds 1 and 2 share weights")
	_, err := NewNetwork(a, nil)
	require.NoError(t, err, "generated weights rejected")

	for _, d := range []int{0, 3, -8, 128} {
		_, err := GenerateWeights(VGG16, 0, d)
		assert.ErrorContains(t, err, "divisor", "divisor %d", d)
	}
	_, err = GenerateWeights("vgg19", 0, 1)
	assert.ErrorContains(t, err, `unknown architecture "vgg19"`)
}
