package resnet

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style/internal/engine"
)

// The ONNX Runtime reference: testdata/ort builds the generated network
// in JavaScript from the formula of Generate, as an ONNX model with
// explicit batch norms, and runs it with ONNX Runtime on the two
// generated 224x224 images of GenerateInput(0, 2, 224, 224); see
// testdata/ort/README.md to regenerate.

// readF32 reads a little-endian float32 file.
func readF32(t testing.TB, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Zero(t, len(b)%4, "%s: length %d", path, len(b))
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func widen(v []float32) []float64 {
	w := make([]float64, len(v))
	for i, x := range v {
		w[i] = float64(x)
	}
	return w
}

// TestGenerateMatchesJavaScript checks Generate and GenerateInput
// against the values the JavaScript implementation of the formula
// recorded (testdata/weights_check.json), bit for bit.
func TestGenerateMatchesJavaScript(t *testing.T) {
	b, err := os.ReadFile("testdata/weights_check.json")
	require.NoError(t, err)
	type layer struct {
		Name        string     `json:"name"`
		WeightFirst [3]float64 `json:"weight_first"`
		WeightLast  float64    `json:"weight_last"`
		GammaFirst  float64    `json:"gamma_first"`
		BetaFirst   float64    `json:"beta_first"`
		MeanFirst   float64    `json:"mean_first"`
		VarLast     float64    `json:"var_last"`
	}
	var check map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &check))
	var first [4]float64
	var last [2]float64
	require.NoError(t, json.Unmarshal(check["input_first"], &first))
	require.NoError(t, json.Unmarshal(check["input_last"], &last))
	x := GenerateInput(0, 2, 224, 224)
	for i, v := range first {
		assert.Equal(t, float32(v), x[i], "input %d", i)
	}
	for i, v := range last {
		assert.Equal(t, float32(v), x[len(x)-2+i], "input %d from the end", 2-i)
	}
	for _, d := range []int{8, 1} {
		raw, ok := check[fmt.Sprintf("d%d", d)]
		require.True(t, ok, "divisor %d missing", d)
		var want []layer
		require.NoError(t, json.Unmarshal(raw, &want))
		convs := Generate(0, d)
		for i, l := range []int{0, 10, NumLayers50 - 1} {
			c, w := convs[l], want[i]
			require.Equal(t, w.Name, c.Name)
			for j, v := range w.WeightFirst {
				assert.Equal(t, float32(v), c.Weight[j], "%s weight %d", c.Name, j)
			}
			assert.Equal(t, float32(w.WeightLast), c.Weight[len(c.Weight)-1], c.Name)
			assert.Equal(t, float32(w.GammaFirst), c.Norm.Gamma[0], c.Name)
			assert.Equal(t, float32(w.BetaFirst), c.Norm.Beta[0], c.Name)
			assert.Equal(t, float32(w.MeanFirst), c.Norm.Mean[0], c.Name)
			assert.Equal(t, float32(w.VarLast), c.Norm.Var[c.Out-1], c.Name)
		}
	}
}

// TestNetMatchesORT compares the features of the generated network, full
// size and narrow, with ONNX Runtime's, on every ISA for the narrow one
// (under the race detector, on the best ISA and the narrow network only).
func TestNetMatchesORT(t *testing.T) {
	x := GenerateInput(0, 2, 224, 224)
	divisors := []int{8, 1}
	if engine.RaceEnabled {
		divisors = divisors[:1]
	}
	for _, d := range divisors {
		want := widen(readF32(t, fmt.Sprintf("testdata/resnet50_d%d.features.f32", d)))
		isas := engine.ISAs()
		if d == 1 || engine.RaceEnabled {
			isas = isas[:1]
		}
		for _, isa := range isas {
			restore := engine.ForceISA(isa)
			net, _ := newGenerated(t, d, nil)
			restore()
			require.Len(t, want, 2*net.Features())
			got := forwardNew(net, x, 2, 224, 224)
			// Both are float32 computations of the same network; they
			// differ by rounding (ORT's im2col GEMMs against Winograd
			// here), ~1e-6 relative, far below the 1e-4 bound.
			e := relL2(got, want)
			t.Logf("divisor %d %s: relative L2 error against ONNX Runtime %.2e", d, isa, e)
			assert.Less(t, e, 1e-4, "divisor %d %s", d, isa)
		}
	}
}

// TestNetFullSizeFloat64 compares the full-size generated network, and
// ONNX Runtime's features, with the float64 reference pass (some 8
// GFLOP of naive loops) on the first generated image.
func TestNetFullSizeFloat64(t *testing.T) {
	if testing.Short() || engine.RaceEnabled {
		t.Skip("the full-size float64 reference takes tens of seconds; run without -short and -race")
	}
	x := GenerateInput(0, 1, 224, 224)
	net, raw := newGenerated(t, 1, nil)
	want := refForward(raw, x, 1, 224, 224)
	ortOut := readF32(t, "testdata/resnet50_d1.features.f32")[:net.Features()]
	for name, algo := range map[string]engine.Algorithm{"auto": engine.Auto, "im2col": engine.Im2col} {
		n := net
		if algo != engine.Auto {
			convs, err := FoldAll(raw)
			require.NoError(t, err)
			n, err = New(convs, &Options{Algorithm: algo})
			require.NoError(t, err)
		}
		e := relL2(forwardNew(n, x, 1, 224, 224), want)
		t.Logf("%s: relative L2 error against float64 %.2e", name, e)
		assert.Less(t, e, 1e-4, name)
	}
	e := relL2(ortOut, want)
	t.Logf("ONNX Runtime: relative L2 error against float64 %.2e", e)
	assert.Less(t, e, 1e-4)
}
