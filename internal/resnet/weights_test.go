package resnet

import (
	"math"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLayers50 checks the layer description against torchvision's
// resnet50: 53 convolutions holding 23,454,912 weights (its 25,557,032
// parameters less the fc layer's 2,049,000 and the batch norms' 2 x
// 26,560), and the shapes of a few named ones.
func TestLayers50(t *testing.T) {
	ls := Layers50(1)
	require.Len(t, ls, NumLayers50)
	var weights, bnChannels int
	for _, l := range ls {
		weights += l.Out * l.In * l.Kernel * l.Kernel
		bnChannels += l.Out
	}
	assert.Equal(t, 23_454_912, weights)
	assert.Equal(t, 26_560, bnChannels)
	byName := map[string]Layer{}
	for _, l := range ls {
		byName[l.Name] = l
	}
	for _, want := range []Layer{
		{Name: "conv1", BN: "bn1", In: 3, Out: 64, Kernel: 7, Stride: 2, Pad: 3, Block: -1},
		{Name: "layer1.0.downsample.0", BN: "layer1.0.downsample.1", In: 64, Out: 256, Kernel: 1, Stride: 1, Block: 0, Shortcut: true},
		{Name: "layer2.0.conv2", BN: "layer2.0.bn2", In: 128, Out: 128, Kernel: 3, Stride: 2, Pad: 1, Block: 3},
		{Name: "layer2.1.conv1", BN: "layer2.1.bn1", In: 512, Out: 128, Kernel: 1, Stride: 1, Block: 4},
		{Name: "layer3.0.downsample.0", BN: "layer3.0.downsample.1", In: 512, Out: 1024, Kernel: 1, Stride: 2, Block: 7, Shortcut: true},
		{Name: "layer4.2.conv3", BN: "layer4.2.bn3", In: 512, Out: 2048, Kernel: 1, Stride: 1, Block: 15},
	} {
		assert.Equal(t, want, byName[want.Name])
	}
	narrow := Layers50(8)
	assert.Equal(t, 8, narrow[0].Out)
	assert.Equal(t, 256, narrow[len(narrow)-1].Out)
	assert.Panics(t, func() { Layers50(3) })
}

// TestFold checks that the folded convolution equals the convolution
// followed by its batch norm, computed directly in float64, and that
// Fold rejects bad shapes and variances.
func TestFold(t *testing.T) {
	raw := Generate(3, 16)
	c := raw[8] // layer1.2.conv1, 1x1
	x := GenerateInput(4, 1, c.In/3+1, 1)[:c.In]
	f, err := c.Fold(BNEps)
	require.NoError(t, err)
	require.Len(t, f.Bias, c.Out)
	for o := range c.Out {
		var conv, folded float64
		for i, v := range x {
			conv += float64(c.Weight[o*c.In+i]) * float64(v)
			folded += float64(f.Weight[o*c.In+i]) * float64(v)
		}
		want := (conv-float64(c.Norm.Mean[o]))/math.Sqrt(float64(c.Norm.Var[o])+BNEps)*float64(c.Norm.Gamma[o]) + float64(c.Norm.Beta[o])
		// Folding rounds each weight and the bias once to float32.
		assert.InDelta(t, want, folded+float64(f.Bias[o]), 1e-6*(1+math.Abs(want)), "channel %d", o)
	}

	bad := c
	bad.Norm.Var = append([]float32(nil), c.Norm.Var...)
	bad.Norm.Var[2] = -1
	_, err = bad.Fold(BNEps)
	assert.ErrorContains(t, err, "layer1.2.bn1.running_var[2] = -1")
	bad = c
	bad.Norm.Beta = bad.Norm.Beta[1:]
	_, err = bad.Fold(BNEps)
	assert.ErrorContains(t, err, "layer1.2.bn1.bias has")
	bad = c
	bad.Weight = bad.Weight[1:]
	_, err = bad.Fold(BNEps)
	assert.ErrorContains(t, err, "layer1.2.conv1: weight has")
}

// TestFoldInPlace checks that FoldInPlace gives Fold's values, in the
// convolution's own weight slice, and leaves it alone on error.
func TestFoldInPlace(t *testing.T) {
	c := Generate(5, 16)[2] // layer1.0.conv2, 3x3
	want, err := c.Fold(BNEps)
	require.NoError(t, err)
	bad := c
	bad.Weight = slices.Clone(c.Weight)
	bad.Norm.Var = slices.Clone(c.Norm.Var)
	bad.Norm.Var[1] = -1
	_, err = bad.FoldInPlace(BNEps)
	require.ErrorContains(t, err, "layer1.0.bn2.running_var[1] = -1")
	assert.Equal(t, c.Weight, bad.Weight, "weights changed by a failed fold")

	got, err := c.FoldInPlace(BNEps)
	require.NoError(t, err)
	assert.Equal(t, want.Weight, got.Weight)
	assert.Equal(t, want.Bias, got.Bias)
	assert.Same(t, &c.Weight[0], &got.Weight[0], "FoldInPlace copied the weights")
}

// TestGenerateDivisor checks that widths follow the divisor and that the
// seed changes the values.
func TestGenerateDivisor(t *testing.T) {
	a, b := Generate(0, 32), Generate(1, 32)
	require.Len(t, a, NumLayers50)
	assert.Equal(t, 2, a[0].Out)
	assert.Len(t, a[0].Weight, 2*3*7*7)
	assert.NotEqual(t, a[0].Weight, b[0].Weight)
	for _, c := range a {
		for _, v := range c.Norm.Var {
			assert.True(t, v >= 0.5 && v < 1.5)
		}
		for _, v := range c.Norm.Gamma {
			assert.True(t, v >= 0.75 && v < 1.25)
		}
	}
}
