package style

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
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
// An item made from a DirSource records its file's size and modification
// time (the catalogue file stores them): when either changed, the image is
// indexed again and the item replaced in place, and if that fails (the
// file is gone, say) the item is removed and the failure reported. Items
// from other sources, or added with Add, are never indexed again. With
// opts.Prune, names is taken as the complete list of images and the items
// not in it are removed first.
//
// With opts.CatalogPath, the file c was loaded from (or is to be created,
// if there is none yet: c is then saved there first), AddImages makes its
// work durable as it goes: every 1,000 items and at least every 30
// seconds while items are added, and at the end, it appends the changes
// since the last checkpoint to the journal CatalogPath + ".journal" and
// syncs it, at a cost that depends on these changes only, never on the
// size of the catalogue. A process killed at any moment loses at most the
// items added since the last checkpoint: LoadCatalog replays the journal,
// and AddImages with the same names resumes. Save folds the journal into
// the file. A file or folder that cannot be written, or an existing file
// that c was not loaded from, is reported, naming the file, before any
// image is read.
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
		if head.inputLen() != dim {
			return nil, fmt.Errorf("%w: head takes %d features, the extractor gives %d", ErrBackboneMismatch, head.inputLen(), dim)
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
	var jr *catalogJournal
	if o.CatalogPath != "" {
		if jr, err = openJournal(c, o.CatalogPath); err != nil {
			return nil, err
		}
		defer jr.close()
	}
	if o.Prune {
		keep := make(map[string]struct{}, len(names))
		for _, n := range names {
			keep[n] = struct{}{}
		}
		c.removeWhere(func(i int) bool {
			_, ok := keep[c.ids[i]]
			if !ok && jr != nil {
				jr.remove(c.ids[i])
			}
			return !ok
		})
		if jr != nil {
			if err := jr.checkpoint(); err != nil {
				return nil, err
			}
		}
	}
	keyer, _ := src.(imageKeyer)
	// stale holds the items whose image changed since they were made;
	// it is only read once the workers run.
	stale := make(map[string]bool)
	done := func(n string) bool {
		i, ok := c.byID[n]
		if !ok || keyer == nil || c.keys[i] == (itemKey{}) {
			return ok
		}
		if k, err := keyer.imageKey(n); err == nil && k == c.keys[i] {
			return true
		}
		stale[n] = true
		return false
	}
	x := &extraction[indexedImage]{
		workers:  o.Workers,
		stage:    "index",
		progress: o.Progress,
		compute: func(ctx context.Context, name string) (indexedImage, error) {
			var r indexedImage
			var err error
			if keyer != nil {
				// Before reading: an image replaced in between gets a
				// key that differs from its file's, and is made again.
				r.key, err = keyer.imageKey(name)
			}
			var feat []float32
			if err == nil {
				feat, err = extractImage(ctx, src, fx, name)
			}
			if err == nil {
				err = finiteFeatures(feat, name)
			}
			switch {
			case err != nil && stale[name] && ctx.Err() == nil:
				r.err = err // the item is removed when committed
				return r, nil
			case err != nil:
				return r, err
			case head == nil:
				r.vec = feat
			default:
				r.vec = head.Embed(feat)
			}
			return r, nil
		},
		commit: func(name string, r indexedImage) (failed, fatal error) {
			if r.err != nil {
				// The image of an item changed and cannot be used: the
				// item no longer stands for it.
				if i, ok := c.byID[name]; ok {
					c.removeWhere(func(k int) bool { return k == i })
					if jr != nil {
						jr.remove(name)
					}
				}
				return r.err, nil
			}
			it := Item{ID: name, Embedding: r.vec}
			if o.Category != nil {
				it.Category = o.Category(name)
			}
			first := c.Len() == 0
			if err := c.put(it, r.key, "Catalog.Add"); err != nil {
				return err, nil
			}
			if jr != nil {
				jr.put(c.byID[name])
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
	if jr != nil {
		x.checkpoint = jr.checkpoint
		x.checkpointEvery = catalogCheckpointEvery
		x.checkpointInterval = catalogCheckpointInterval
	}
	rep, err := x.run(ctx, names, done)
	if jr != nil && (err == nil || errors.Is(err, ctx.Err())) {
		// Removals are not counted by the loop's checkpoints.
		if cerr := jr.checkpoint(); cerr != nil {
			err = cerr
		}
	}
	return rep, err
}

// indexedImage is what Catalog.AddImages computes for an image: its
// embedding and the key of its file, or, for an item whose image changed
// and can no longer be used, the error that removes the item.
type indexedImage struct {
	vec []float32
	key itemKey
	err error
}

// imageKeyer is implemented by the image sources that can tell the version
// of an image (DirSource): its size and modification time.
type imageKeyer interface {
	imageKey(name string) (itemKey, error)
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
// The widths of hidden layers enter only when there are some, so a
// one-layer head keeps the fingerprint it had before heads could have them.
func headFingerprint(h *SiameseHead) string {
	s := sha256.New()
	var b [8]byte
	put := func(u uint64) {
		binary.LittleEndian.PutUint64(b[:], u)
		s.Write(b[:])
	}
	put(uint64(h.inputLen()))
	put(uint64(h.Dense.Out))
	put(math.Float64bits(h.Scale))
	parts := make([][]float32, 0, 2*len(h.Hidden)+2)
	if len(h.Hidden) > 0 {
		put(uint64(len(h.Hidden)))
		for _, l := range h.Hidden {
			put(uint64(l.Out))
			parts = append(parts, l.W, l.B)
		}
	}
	parts = append(parts, h.Dense.W, h.Dense.B)
	buf := make([]byte, 0, 4096)
	for _, part := range parts {
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
