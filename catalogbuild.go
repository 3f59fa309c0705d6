package style

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"math"
)

// Catalogue metadata keys written and checked by Catalog.AddImages. They
// record which model the embeddings come from, so that a catalogue is never
// extended, or searched, with vectors of another model by mistake.
const (
	// metaEmbedding is "head" when the items are embedded by a siamese
	// head and "features" when they hold the extractor's raw features.
	metaEmbedding = "style.embedding"
	// metaBackbone identifies the feature extractor: its Backbone, as JSON.
	metaBackbone = "style.backbone"
	// metaHead is the hex SHA-256 of the head's sizes, scale and weights,
	// or "none" without a head.
	metaHead = "style.head"
)

// AddImages indexes images into the catalogue: every distinct name of
// names that is not already an item ID is read from src, run through fx
// and, if head is not nil, embedded by head, and added as an item whose ID
// is the name and whose category is opts.Category(name). Without a head the
// items hold fx's raw features, so distances measure visual similarity
// under fx rather than a learned style compatibility. It reports progress
// with Stage "index".
//
// Items are added in the order of names whatever the number of workers, so
// the same names give the same catalogue. Images that fail to open, to
// decode or to go through fx, or whose item Add rejects (a NaN feature, an
// over-long name), are listed in the report and left out; the run goes on.
//
// The catalogue records where its embeddings come from in Meta, under the
// keys "style.embedding" ("head" or "features"), "style.backbone" (fx's
// Backbone, as JSON) and "style.head" (the hex SHA-256 of the head's sizes,
// scale and weights, or "none"). Before any image is read, AddImages checks
// that head takes fx's features (length and Backbone, see
// SiameseHead.CheckBackbone) and that the catalogue's embedding length and
// these keys match: a mismatch gives an error matching ErrBackboneMismatch
// and nothing is added. An empty catalogue takes the provenance of the
// call that adds its first item; a non-empty one without a
// "style.embedding" key (built with Add) is not checked.
//
// When ctx is cancelled the images in flight are finished and added, and
// ctx.Err() is returned with the report so far; calling AddImages again
// with the same names resumes. AddImages is not safe for concurrent use
// with any other method of c. fx must be safe for concurrent use.
func (c *Catalog) AddImages(ctx context.Context, src ImageSource, names []string, fx FeatureExtractor, head *SiameseHead, opts *ExtractOptions) (*ExtractReport, error) {
	o, err := extractSettings(opts, "Catalog.AddImages")
	if err != nil {
		return nil, err
	}
	dim := fx.FeatureLen()
	prov := map[string]string{
		metaEmbedding: "features",
		metaBackbone:  backboneProvenance(fx.Backbone()),
		metaHead:      "none",
	}
	if head != nil {
		if head.Dense.In != dim {
			return nil, fmt.Errorf("%w: head takes %d features, the extractor gives %d", ErrBackboneMismatch, head.Dense.In, dim)
		}
		if err := head.CheckBackbone(fx.Backbone()); err != nil {
			return nil, err
		}
		dim = head.Dense.Out
		prov[metaEmbedding] = "head"
		prov[metaHead] = headFingerprint(head)
	}
	if err := c.checkProvenance(prov, dim); err != nil {
		return nil, err
	}
	x := &extraction[[]float32]{
		workers:  o.Workers,
		stage:    "index",
		progress: o.Progress,
		compute: func(ctx context.Context, name string) ([]float32, error) {
			feat, err := extractImage(ctx, src, fx, name)
			if err == nil {
				err = finiteFeatures(feat, name)
			}
			if err != nil || head == nil {
				return feat, err
			}
			return head.Embed(feat), nil
		},
		commit: func(name string, vec []float32) (failed, fatal error) {
			it := Item{ID: name, Embedding: vec}
			if o.Category != nil {
				it.Category = o.Category(name)
			}
			first := c.Len() == 0
			if err := c.Add(it); err != nil {
				return err, nil
			}
			if first {
				// An empty catalogue takes this model's provenance.
				if c.Meta == nil {
					c.Meta = make(map[string]string, len(prov))
				}
				maps.Copy(c.Meta, prov)
			}
			return nil, nil
		},
	}
	return x.run(ctx, names, func(n string) bool {
		_, ok := c.byID[n]
		return ok
	})
}

// checkProvenance returns an error matching ErrBackboneMismatch if the
// catalogue's embeddings cannot come from the model described by prov.
func (c *Catalog) checkProvenance(prov map[string]string, dim int) error {
	if c.Len() == 0 {
		return nil
	}
	if c.Dim() != dim {
		return fmt.Errorf("%w: the catalogue holds %d-value embeddings, the model gives %d", ErrBackboneMismatch, c.Dim(), dim)
	}
	if _, ok := c.Meta[metaEmbedding]; !ok {
		return nil // built item by item with Add: nothing recorded to check
	}
	for _, k := range []string{metaEmbedding, metaBackbone, metaHead} {
		if have, want := c.Meta[k], prov[k]; have != want {
			return fmt.Errorf("%w: the catalogue's %s is %q, this model's is %q", ErrBackboneMismatch, k, have, want)
		}
	}
	return nil
}

// backboneProvenance is the metaBackbone value of b: every field, as JSON.
func backboneProvenance(b Backbone) string {
	j, err := json.Marshal(b)
	if err != nil {
		panic("style: backboneProvenance: " + err.Error()) // a struct of strings and numbers
	}
	return string(j)
}

// headFingerprint is the hex SHA-256 of a head's sizes, scale and weights.
func headFingerprint(h *SiameseHead) string {
	s := sha256.New()
	var b [8]byte
	put := func(u uint64) {
		binary.LittleEndian.PutUint64(b[:], u)
		s.Write(b[:])
	}
	put(uint64(h.Dense.In))
	put(uint64(h.Dense.Out))
	put(math.Float64bits(h.Scale))
	buf := make([]byte, 0, 4096)
	for _, part := range [][]float32{h.Dense.W, h.Dense.B} {
		for _, v := range part {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				s.Write(buf)
				buf = buf[:0]
			}
		}
	}
	s.Write(buf)
	return hex.EncodeToString(s.Sum(nil))
}
