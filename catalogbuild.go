package style

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/stylespace/style/internal/engine"
)

// Catalogue metadata keys written and checked by Catalog.AddImages. They
// record which model the embeddings come from, so that a catalogue is never
// extended, or searched, with vectors of another model by mistake.
const (
	// MetaEmbedding is "head" when the items are embedded by a siamese
	// head and "features" when they hold the extractor's raw features.
	MetaEmbedding = "style.embedding"
	// MetaBackbone identifies the feature extractor: name, preprocessing
	// and the SHA-256 of its weight file ("none" if generated in memory).
	MetaBackbone = "style.backbone"
	// MetaHead is the hex SHA-256 of the head's sizes, scale and weights,
	// or "none" without a head.
	MetaHead = "style.head"
	// MetaModel is AddImagesOptions.Model, when given.
	MetaModel = "style.model"
)

// AddImagesOptions configures Catalog.AddImages. A nil *AddImagesOptions
// means the zero value.
type AddImagesOptions struct {
	// Category, if not nil, returns the category of the image called
	// name ("" for none). It is called on the goroutine that called
	// AddImages. Nil means no categories.
	Category func(name string) string
	// Model is a free-form description of the model, recorded under
	// MetaModel and checked like the other provenance keys, for what the
	// Backbone cannot tell apart: for example the seed and width divisor of
	// generated weights, whose Backbone carries no SHA-256. "" records
	// nothing.
	Model string
	// Workers is the number of images loaded and embedded at once; 0
	// means runtime.GOMAXPROCS(0). It does not change the result.
	Workers int
	// Progress, if not nil, is called with Stage "index", Done and Total
	// counted in distinct images (those already in the catalogue count as
	// done), after each image, on the goroutine that called AddImages.
	Progress func(Progress)
}

// AddImagesReport summarises a Catalog.AddImages run.
type AddImagesReport struct {
	Total   int            // distinct names asked for
	Skipped int            // already in the catalogue, not recomputed
	Added   int            // embedded and added by this run
	Failed  []ImageFailure // images left out, in the order of the names
	Elapsed time.Duration
}

// AddImages indexes images into the catalogue: every distinct name of
// names that is not already an item ID is read from src, run through fx
// and, if head is not nil, embedded by head, and added as an item whose ID
// is the name and whose category is opts.Category(name). Without a head the
// items hold fx's raw features, so distances measure visual similarity
// under fx rather than a learned style compatibility.
//
// Items are added in the order of names whatever the number of workers, so
// the same names give the same catalogue. Images that fail to open, to
// decode or to go through fx, or whose item Add rejects (a NaN feature, an
// over-long name), are listed in the report and left out; the run goes on.
//
// Before any image is read, AddImages checks that head takes fx's
// features (length and Backbone, see SiameseHead.CheckBackbone) and that
// the catalogue's embedding length and provenance metadata (MetaEmbedding,
// MetaBackbone, MetaHead, MetaModel) match: a mismatch gives an error
// matching ErrBackboneMismatch and nothing is added. An empty catalogue
// takes the provenance of this call; a non-empty one without a MetaEmbedding
// key (built with Add) is not checked.
//
// When ctx is cancelled the images in flight are finished and added, and
// ctx.Err() is returned with the report so far; calling AddImages again
// with the same names resumes. AddImages is not safe for concurrent use
// with any other method of c. fx must be safe for concurrent use.
func (c *Catalog) AddImages(ctx context.Context, src ImageSource, names []string, fx FeatureExtractor, head *SiameseHead, opts *AddImagesOptions) (*AddImagesReport, error) {
	start := time.Now()
	var o AddImagesOptions
	if opts != nil {
		o = *opts
	}
	o.Workers = engine.Workers(o.Workers)
	dim := fx.FeatureLen()
	prov := map[string]string{
		MetaEmbedding: "features",
		MetaBackbone:  backboneProvenance(fx.Backbone()),
		MetaHead:      "none",
	}
	if head != nil {
		if head.Dense.In != dim {
			return nil, fmt.Errorf("%w: head takes %d features, the extractor gives %d", ErrBackboneMismatch, head.Dense.In, dim)
		}
		if err := head.CheckBackbone(fx.Backbone()); err != nil {
			return nil, err
		}
		dim = head.Dense.Out
		prov[MetaEmbedding] = "head"
		prov[MetaHead] = headFingerprint(head)
	}
	if o.Model != "" {
		prov[MetaModel] = o.Model
	}
	if err := c.checkProvenance(prov, dim); err != nil {
		return nil, err
	}

	rep := &AddImagesReport{}
	todo, total := pendingNames(names, c.Index)
	rep.Total, rep.Skipped = total, total-len(todo)
	progress := func() {
		if o.Progress != nil {
			o.Progress(Progress{Stage: "index", Done: int64(rep.Skipped + rep.Added + len(rep.Failed)),
				Total: int64(rep.Total), Elapsed: time.Since(start)})
		}
	}
	progress()
	if len(todo) == 0 {
		rep.Elapsed = time.Since(start)
		return rep, ctx.Err()
	}
	if c.Len() == 0 {
		// An empty catalogue takes this model's provenance.
		if c.Meta == nil {
			c.Meta = make(map[string]string, len(prov))
		}
		for k, v := range prov {
			c.Meta[k] = v
		}
	}

	type result struct {
		pos int
		vec []float32
		err error
	}
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	// The workers run in the background while this goroutine adds their
	// results; no image is started once ctx2 is cancelled.
	results := make(chan result)
	go func() {
		defer close(results)
		engine.For(o.Workers, len(todo), func(_, pos int) {
			if ctx2.Err() != nil {
				return
			}
			vec, err := embedImage(ctx2, src, todo[pos], fx, head)
			if err != nil && ctx2.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
				return // interrupted, not failed: a later call retries it
			}
			results <- result{pos: pos, vec: vec, err: err}
		})
	}()

	// Results arrive in any order; they are added in the order of names
	// through a reorder buffer holding at most about Workers of them.
	pending := make(map[int]result)
	next := 0
	var failed []int
	failErr := make(map[int]error)
	add := func(r result) {
		err := r.err
		if err == nil {
			it := Item{ID: todo[r.pos], Embedding: r.vec}
			if o.Category != nil {
				it.Category = o.Category(it.ID)
			}
			err = c.Add(it)
		}
		if err != nil {
			failed = append(failed, r.pos)
			failErr[r.pos] = err
			rep.Failed = append(rep.Failed, ImageFailure{}) // counted now, filled below
		} else {
			rep.Added++
		}
	}
	for r := range results {
		pending[r.pos] = r
		for {
			p, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			add(p)
			progress()
		}
	}
	// After a cancellation some positions never ran: add what finished.
	rest := make([]int, 0, len(pending))
	for pos := range pending {
		rest = append(rest, pos)
	}
	sort.Ints(rest)
	for _, pos := range rest {
		add(pending[pos])
		progress()
	}
	sort.Ints(failed)
	for i, pos := range failed {
		rep.Failed[i] = ImageFailure{Name: todo[pos], Err: failErr[pos]}
	}
	rep.Elapsed = time.Since(start)
	return rep, ctx.Err()
}

// embedImage opens, decodes and embeds one image.
func embedImage(ctx context.Context, src ImageSource, name string, fx FeatureExtractor, head *SiameseHead) ([]float32, error) {
	img, err := OpenImage(ctx, src, name)
	if err != nil {
		return nil, err
	}
	feat, err := fx.Features(img)
	if err != nil {
		return nil, err
	}
	if len(feat) != fx.FeatureLen() {
		return nil, fmt.Errorf("style: extractor returned %d features for %s, want %d", len(feat), name, fx.FeatureLen())
	}
	for _, v := range feat {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("style: extractor returned a non-finite feature for %s", name)
		}
	}
	if head == nil {
		return feat, nil
	}
	return head.Embed(feat), nil
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
	if _, ok := c.Meta[MetaEmbedding]; !ok {
		return nil // built item by item with Add: nothing recorded to check
	}
	for _, k := range []string{MetaEmbedding, MetaBackbone, MetaHead, MetaModel} {
		if have, want := c.Meta[k], prov[k]; have != want {
			return fmt.Errorf("%w: the catalogue's %s is %q, this model's is %q", ErrBackboneMismatch, k, have, want)
		}
	}
	return nil
}

// backboneProvenance is the MetaBackbone value of b.
func backboneProvenance(b Backbone) string {
	sha := b.SHA256
	if sha == "" {
		sha = "none"
	}
	return fmt.Sprintf("%s preprocess=%s sha256=%s", b.Arch, b.Preprocess, sha)
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

// ReadCategories reads item categories from a CSV file. See ParseCategories.
func ReadCategories(path, idColumn, categoryColumn string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseCategories(f, path, idColumn, categoryColumn)
}

// ParseCategories reads a comma-separated table with a header row (RFC
// 4180 quoting, an optional UTF-8 byte order mark) and returns, for every
// row, the value of the column named categoryColumn keyed by the value of
// the column named idColumn: for example "id" and "articleType" of a
// product catalogue's styles.csv. Column names are matched exactly, after
// trimming spaces; so are values. A row with an empty category maps to "".
// name is used in error messages only.
//
// Malformed input gives a *FormatError naming name and the 1-based line:
// a missing column, a row with another number of fields than the header,
// a stray quote, an empty ID, an ID or category longer than
// MaxCatalogIDLen, or an ID listed twice with different categories.
func ParseCategories(r io.Reader, name, idColumn, categoryColumn string) (map[string]string, error) {
	ferr := func(line int, err error, format string, args ...any) error {
		return &FormatError{Path: name, Line: line, Offset: -1, Msg: fmt.Sprintf(format, args...), Err: err}
	}
	cr := csv.NewReader(bufio.NewReader(r))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, ferr(1, nil, "empty file, expected a header row")
	}
	if err != nil {
		return nil, csvFormatError(name, err)
	}
	idCol, catCol := -1, -1
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		switch strings.TrimSpace(h) {
		case idColumn:
			if idCol < 0 {
				idCol = i
			}
		case categoryColumn:
			if catCol < 0 {
				catCol = i
			}
		}
	}
	switch {
	case idCol < 0:
		return nil, ferr(1, nil, "no column %q in the header", idColumn)
	case catCol < 0:
		return nil, ferr(1, nil, "no column %q in the header", categoryColumn)
	}
	cats := make(map[string]string)
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return cats, nil
		}
		if err != nil {
			return nil, csvFormatError(name, err)
		}
		line, _ := cr.FieldPos(0)
		id, cat := strings.TrimSpace(rec[idCol]), strings.TrimSpace(rec[catCol])
		switch {
		case id == "":
			return nil, ferr(line, nil, "empty %s", idColumn)
		case len(id) > MaxCatalogIDLen:
			return nil, ferr(line, nil, "%s of %d bytes, longer than %d", idColumn, len(id), MaxCatalogIDLen)
		case len(cat) > MaxCatalogIDLen:
			return nil, ferr(line, nil, "%s of %d bytes, longer than %d", categoryColumn, len(cat), MaxCatalogIDLen)
		}
		if old, dup := cats[id]; dup && old != cat {
			return nil, ferr(line, nil, "%s %q listed again with %s %q instead of %q", idColumn, id, categoryColumn, cat, old)
		}
		cats[id] = cat
	}
}

// csvFormatError converts an encoding/csv error into a *FormatError.
func csvFormatError(name string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &FormatError{Path: name, Line: pe.Line, Offset: -1, Msg: "malformed CSV", Err: pe.Err}
	}
	return fmt.Errorf("style: reading %s: %w", name, err)
}
