package style

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBackboneOfGeneratedNetworks: a head trained on the generated network
// of seed 1 and divisor 8, saved and loaded, is accepted by a network
// built the same way and refused, naming both backbones, by the networks
// of seed 2 or divisor 4 and by one read from a file of the same weights.
func TestBackboneOfGeneratedNetworks(t *testing.T) {
	net := func(seed uint64, divisor int) *Network { return testNetwork(t, seed, divisor, nil) }
	trained := net(1, 8)
	require.Equal(t, Backbone{Arch: VGG16, Preprocess: PreprocessCaffe, Seed: 1, Divisor: 8}, trained.Backbone())
	h, err := NewSiameseHead(&HeadConfig{In: trained.FeatureLen(), Out: 4, Backbone: trained.Backbone()})
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "head.safetensors")
	require.NoError(t, h.Save(p))
	h, err = LoadHead(p)
	require.NoError(t, err)
	assert.Equal(t, trained.Backbone(), h.Backbone)

	assert.NoError(t, h.CheckBackbone(net(1, 8).Backbone()), "the same generated network")
	for _, other := range []struct {
		net  *Network
		want string
	}{
		{net(2, 8), "seed 2, width divisor 8"},
		{net(1, 4), "seed 1, width divisor 4"},
	} {
		err := h.CheckBackbone(other.net.Backbone())
		require.ErrorIs(t, err, ErrBackboneMismatch)
		assert.ErrorContains(t, err, "head trained on \"vgg16\" (preprocess \"caffe\", weights sha256 none, seed 1, width divisor 8)")
		assert.ErrorContains(t, err, "features from \"vgg16\" (preprocess \"caffe\", weights sha256 none, "+other.want+")")
	}

	// The same weights from a file: identified by the file, not the seed.
	w := testWeights(t, 1, 8)
	wp := filepath.Join(t.TempDir(), "w.safetensors")
	require.NoError(t, w.WriteSafetensors(wp))
	w, err = ReadWeights(wp, VGG16, 8)
	require.NoError(t, err)
	fromFile, err := NewNetwork(w, nil)
	require.NoError(t, err)
	assert.Equal(t, Backbone{Arch: VGG16, Preprocess: PreprocessCaffe, SHA256: mustSHA256(t, wp), Divisor: 8}, fromFile.Backbone())
	assert.ErrorIs(t, h.CheckBackbone(fromFile.Backbone()), ErrBackboneMismatch)
}

// TestLoadHeadBackboneMetadata: heads saved before the backbone's seed and
// divisor were recorded load as seed 0 and divisor 1, the backbone of a
// published weight file; a malformed seed or divisor is a *FormatError.
func TestLoadHeadBackboneMetadata(t *testing.T) {
	b := Backbone{Arch: VGG16, Preprocess: PreprocessTorch, SHA256: strings.Repeat("ab", 32), Seed: 0, Divisor: 1}
	h, err := NewSiameseHead(&HeadConfig{In: 6, Out: 2, Backbone: b})
	require.NoError(t, err)
	dir := t.TempDir()
	p := filepath.Join(dir, "head.safetensors")
	require.NoError(t, h.Save(p))
	ts, meta, err := readSafetensors(p, nil)
	require.NoError(t, err)
	assert.Equal(t, "0", meta["backbone_seed"])
	assert.Equal(t, "1", meta["backbone_divisor"])
	tensors := []tensor{ts[headKernelName], ts[headBiasName]}

	rewrite := func(change func(meta map[string]string)) string {
		m := make(map[string]string, len(meta))
		for k, v := range meta {
			m[k] = v
		}
		change(m)
		q := filepath.Join(dir, "changed.safetensors")
		require.NoError(t, writeSafetensors(q, tensors, m))
		return q
	}
	old := rewrite(func(m map[string]string) {
		delete(m, "backbone_seed")
		delete(m, "backbone_divisor")
	})
	g, err := LoadHead(old)
	require.NoError(t, err)
	assert.Equal(t, b, g.Backbone)
	assert.NoError(t, g.CheckBackbone(b))

	for key, v := range map[string]string{"backbone_seed": "-1", "backbone_divisor": "x"} {
		bad := rewrite(func(m map[string]string) { m[key] = v })
		_, err := LoadHead(bad)
		require.ErrorIs(t, err, ErrFormat, key)
		assert.ErrorContains(t, err, key)
	}
}

// TestFeatureStoreLegacyBackbone: a feature store index written before
// Backbone had Arch, Seed and Divisor (the architecture under "Name")
// opens with the backbone of the same published weight file.
func TestFeatureStoreLegacyBackbone(t *testing.T) {
	dir := t.TempDir()
	b := Backbone{Arch: VGG16, Preprocess: PreprocessTorch, SHA256: "00ff", Divisor: 1}
	s, err := OpenFeatureStore(dir, &StoreOptions{Dim: 3, Backbone: b})
	require.NoError(t, err)
	_, err = s.Put("a.jpg", []float32{1, 2, 3})
	require.NoError(t, err)
	require.NoError(t, s.Close())

	idxPath := filepath.Join(dir, storeIndexFile)
	data, err := os.ReadFile(idxPath)
	require.NoError(t, err)
	var idx map[string]any
	require.NoError(t, json.Unmarshal(data, &idx))
	assert.Equal(t, map[string]any{"Arch": "vgg16", "Preprocess": "torch", "SHA256": "00ff", "Seed": 0.0, "Divisor": 1.0}, idx["backbone"])
	idx["backbone"] = map[string]any{"Name": "vgg16", "Preprocess": "torch", "SHA256": "00ff"}
	data, err = json.Marshal(idx)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(idxPath, data, 0o644))

	s, err = OpenFeatureStore(dir, &StoreOptions{Backbone: b, ReadOnly: true})
	require.NoError(t, err, "an old index")
	assert.Equal(t, b, s.Backbone())
	assert.Equal(t, 1, s.Len())
	require.NoError(t, s.Close())
	_, err = OpenFeatureStore(dir, &StoreOptions{Backbone: Backbone{Arch: VGG16, Preprocess: PreprocessTorch, SHA256: "00ff", Seed: 1, Divisor: 8}, ReadOnly: true})
	assert.Error(t, err, "another backbone")
}
