package style

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The kill loop's indexer, run in a child process (the test binary run
// again with this variable set to "images-folder|catalogue-file").
const killChildEnv = "STYLE_TEST_CATALOG_INDEXER"

// killCheckpointEvery is the child's checkpoint interval in items.
const killCheckpointEvery = 20

// TestCatalogIndexerChild is the body of the child process of
// TestCatalogIndexKillLoop; run directly, it does nothing.
func TestCatalogIndexerChild(t *testing.T) {
	arg := os.Getenv(killChildEnv)
	if arg == "" {
		return
	}
	imgs, path, _ := strings.Cut(arg, "|")
	catalogCheckpointEvery = killCheckpointEvery
	c, err := LoadCatalog(path)
	if errors.Is(err, fs.ErrNotExist) {
		c, err = &Catalog{}, nil
	}
	require.NoError(t, err)
	src, err := NewDirSource(imgs)
	require.NoError(t, err)
	names, err := src.Names()
	require.NoError(t, err)
	out := bufio.NewWriter(os.Stdout)
	fx := &fakeExtractor{dim: 64, onCall: func(int64) { time.Sleep(2 * time.Millisecond) }}
	_, err = c.AddImages(context.Background(), src, names, fx, nil, &ExtractOptions{
		Workers: 2, Category: testCategory, CatalogPath: path,
		Progress: func(p Progress) {
			fmt.Fprintf(out, "done %d\n", p.Done)
			out.Flush()
		},
	})
	require.NoError(t, err)
	require.NoError(t, c.Save(path))
	fmt.Fprintln(out, "saved")
	out.Flush()
}

// TestCatalogIndexKillLoop indexes a folder in a child process killed with
// SIGKILL at random points, resuming after each kill, and checks that the
// result is the catalogue of a run without kills, and that each kill lost
// at most the items since the last checkpoint.
func TestCatalogIndexKillLoop(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("needs SIGKILL and subprocesses")
	}
	dir := t.TempDir()
	imgs := filepath.Join(dir, "images")
	require.NoError(t, os.Mkdir(imgs, 0o755))
	const n = 300
	makeImageFolder(t, imgs, n)
	path := filepath.Join(dir, "cat.stylecat")

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	durable, kills, lostTotal, lostMax := 0, 0, 0, 0
	for run := 0; ; run++ {
		require.Less(t, run, 40, "the indexer never finished")
		cmd := exec.Command(os.Args[0], "-test.run=^TestCatalogIndexerChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"="+imgs+"|"+path)
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		cmd.Stderr = os.Stderr
		require.NoError(t, cmd.Start())
		// Kill once the child has added a random number of further
		// items or, every third time, after a random time (which may
		// fall while it loads the catalogue or saves it); the last run
		// goes to the end.
		target := n + 1
		var killed atomic.Bool
		if kills < 12 {
			target = durable + 1 + rng.IntN((n-durable)/3+1)
			if kills%3 == 2 {
				target = n + 1
				tm := time.AfterFunc(time.Duration(rng.IntN(300))*time.Millisecond, func() {
					if killed.CompareAndSwap(false, true) {
						cmd.Process.Kill()
					}
				})
				defer tm.Stop()
			}
		}
		printed, saved := durable, false
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "saved" {
				saved = true
				continue
			}
			d, ok := strings.CutPrefix(line, "done ")
			if !ok {
				continue // the test framework's own output
			}
			printed, err = strconv.Atoi(d)
			require.NoError(t, err)
			if printed >= target && killed.CompareAndSwap(false, true) {
				require.NoError(t, cmd.Process.Kill()) // SIGKILL
			}
		}
		werr := cmd.Wait()
		if !killed.Load() {
			require.NoError(t, werr, "indexer run %d", run)
			require.True(t, saved, "indexer run %d ended without saving", run)
			break
		}
		kills++
		c, err := LoadCatalog(path)
		if errors.Is(err, fs.ErrNotExist) {
			c, err = &Catalog{}, nil
		}
		require.NoError(t, err, "after kill %d", kills)
		// printed counts the items added when the process died, but
		// for the one added and not yet reported.
		lost := printed - c.Len()
		if saved {
			lost = 0
		}
		t.Logf("kill %d: %d items added, %d on disk, %d lost", kills, printed, c.Len(), lost)
		require.GreaterOrEqual(t, c.Len(), durable, "kill %d: items that had reached the disk were lost", kills)
		require.GreaterOrEqual(t, lost, 0, "kill %d: more items on disk than added", kills)
		require.LessOrEqual(t, lost, killCheckpointEvery, "kill %d: more items lost than a checkpoint interval", kills)
		for i := range c.Len() {
			require.Equal(t, fmt.Sprintf("img%03d.png", i), c.Item(i).ID, "kill %d: item %d", kills, i)
		}
		durable = c.Len()
		lostTotal += lost
		lostMax = max(lostMax, lost)
	}
	t.Logf("%d kills, %d items lost in all, at most %d per kill (checkpoint every %d items)", kills, lostTotal, lostMax, killCheckpointEvery)
	require.Positive(t, kills)

	// The result is the catalogue of one uninterrupted run.
	src, err := NewDirSource(imgs)
	require.NoError(t, err)
	defer src.Close()
	names, err := src.Names()
	require.NoError(t, err)
	var clean Catalog
	_, err = clean.AddImages(context.Background(), src, names, &fakeExtractor{dim: 64}, nil, &ExtractOptions{Category: testCategory})
	require.NoError(t, err)
	got, err := LoadCatalog(path)
	require.NoError(t, err)
	require.Equal(t, n, got.Len())
	assert.Equal(t, encodeCatalog(t, &clean), encodeCatalog(t, got), "catalogue built across kills differs from an uninterrupted run's")
	_, err = os.Stat(journalPath(path))
	assert.ErrorIs(t, err, fs.ErrNotExist, "Save left the journal")
}

// journaledCatalog indexes n images into a journaled catalogue at path,
// checkpointing every 5 items, without saving it, and returns the source,
// the names and the catalogue in memory.
func journaledCatalog(t *testing.T, n int, path string) (*DirSource, []string, *Catalog) {
	t.Helper()
	every := catalogCheckpointEvery
	catalogCheckpointEvery = 5
	t.Cleanup(func() { catalogCheckpointEvery = every })
	dir := t.TempDir()
	names := makeImageFolder(t, dir, n)
	src, err := NewDirSource(dir)
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	var c Catalog
	_, err = c.AddImages(context.Background(), src, names, &fakeExtractor{dim: 8}, nil, &ExtractOptions{Category: testCategory, CatalogPath: path})
	require.NoError(t, err)
	return src, names, &c
}

func TestCatalogJournalTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cat.stylecat")
	src, names, c := journaledCatalog(t, 12, path)
	// Without Save, the file holds the empty catalogue and the journal
	// every item.
	got, err := LoadCatalog(path)
	require.NoError(t, err)
	require.Equal(t, encodeCatalog(t, c), encodeCatalog(t, got), "catalogue replayed from its journal")
	journal, err := os.ReadFile(journalPath(path))
	require.NoError(t, err)

	// Cut anywhere, the journal gives a prefix of the items, and resuming
	// from there gives the whole catalogue again.
	prev := 0
	for cut := range len(journal) {
		require.NoError(t, os.WriteFile(journalPath(path), journal[:cut], 0o644))
		d, err := LoadCatalog(path)
		require.NoError(t, err, "journal cut to %d bytes", cut)
		require.GreaterOrEqual(t, d.Len(), prev, "journal cut to %d bytes", cut)
		for i := range d.Len() {
			require.Equal(t, c.Item(i), d.Item(i), "journal cut to %d bytes: item %d", cut, i)
		}
		prev = d.Len()
	}
	require.Equal(t, 11, prev, "the last record cut short is dropped")

	// A damaged last record is dropped as well; the next run overwrites it.
	bad := []byte(string(journal))
	bad[len(bad)-3] ^= 0x40
	require.NoError(t, os.WriteFile(journalPath(path), bad, 0o644))
	d, err := LoadCatalog(path)
	require.NoError(t, err)
	require.Equal(t, 11, d.Len(), "a record failing its checksum is dropped")
	fx := &fakeExtractor{dim: 8}
	_, err = d.AddImages(context.Background(), src, names, fx, nil, &ExtractOptions{Category: testCategory, CatalogPath: path})
	require.NoError(t, err)
	assert.EqualValues(t, 1, fx.calls.Load(), "images made again after the damaged record")
	d, err = LoadCatalog(path)
	require.NoError(t, err)
	assert.Equal(t, encodeCatalog(t, c), encodeCatalog(t, d), "catalogue after resuming")

	// After Save, the journal is gone; one left over from before the
	// Save (a crash between the two) is ignored.
	require.NoError(t, d.Save(path))
	require.NoError(t, os.WriteFile(journalPath(path), journal, 0o644))
	d, err = LoadCatalog(path)
	require.NoError(t, err)
	assert.Equal(t, encodeCatalog(t, c), encodeCatalog(t, d), "stale journal replayed")

	// A valid record with invalid content is an error naming the journal.
	bad = []byte(string(journal[:journalHeaderSize]))
	payload := []byte{journalDelete, 1, 'x'}
	bad = binary.LittleEndian.AppendUint32(bad, uint32(len(payload)))
	bad = binary.LittleEndian.AppendUint32(bad, crc32.Checksum(payload, castagnoli))
	bad = append(bad, payload...)
	require.NoError(t, os.Remove(path))
	require.NoError(t, (&Catalog{}).Save(path))
	require.NoError(t, os.WriteFile(journalPath(path), bad, 0o644))
	_, err = LoadCatalog(path)
	var fe *FormatError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, journalPath(path), fe.Path)
	assert.EqualValues(t, journalHeaderSize, fe.Offset)
	assert.ErrorContains(t, err, `removes unknown item "x"`)
}

func TestCatalogJournalUnwritable(t *testing.T) {
	src, names := indexFolder(t, 4)
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o644))
	loaded := filepath.Join(dir, "loaded.stylecat")
	require.NoError(t, (&Catalog{}).Save(loaded))
	other := filepath.Join(dir, "other.stylecat")
	require.NoError(t, (&Catalog{}).Save(other))
	for _, tc := range []struct{ name, path, load, want string }{
		{"folder is a file", filepath.Join(notDir, "cat.stylecat"), "", filepath.Join(notDir, "cat.stylecat")},
		{"journal is a folder", loaded, loaded, journalPath(loaded)},
		{"another catalogue", other, "", other},
	} {
		c := &Catalog{}
		if tc.load != "" {
			var err error
			c, err = LoadCatalog(tc.load)
			require.NoError(t, err, tc.name)
			require.NoError(t, os.Mkdir(journalPath(tc.load), 0o755)) // the journal cannot be opened
		}
		fx := &fakeExtractor{dim: 4}
		_, err := c.AddImages(context.Background(), src, names, fx, nil, &ExtractOptions{CatalogPath: tc.path})
		require.Error(t, err, tc.name)
		assert.Contains(t, err.Error(), tc.want, tc.name)
		assert.Zero(t, fx.calls.Load(), "%s: images indexed before the error", tc.name)
		assert.Zero(t, c.Len(), tc.name)
	}
}

// TestCatalogAddImagesChangedFiles checks that an image replaced since it
// was indexed is indexed again, in place, and that Prune drops the items
// whose images are gone.
func TestCatalogAddImagesChangedFiles(t *testing.T) {
	dir := t.TempDir()
	names := makeImageFolder(t, dir, 6)
	src, err := NewDirSource(dir)
	require.NoError(t, err)
	defer src.Close()
	fx := &fakeExtractor{dim: 8}
	path := filepath.Join(t.TempDir(), "cat.stylecat")
	var c Catalog
	_, err = c.AddImages(context.Background(), src, names, fx, nil, nil)
	require.NoError(t, err)
	require.NoError(t, c.Save(path))

	// img002.png replaced by another picture of the same size and an
	// older modification time: only the size and time are compared.
	p2 := filepath.Join(dir, names[2])
	fi, err := os.Stat(p2)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(p2, testPNG(t, 100), 0o644))
	require.NoError(t, os.Chtimes(p2, fi.ModTime(), fi.ModTime().Add(-time.Hour)))
	// img004.png deleted.
	require.NoError(t, os.Remove(filepath.Join(dir, names[4])))

	for _, journaled := range []bool{false, true} {
		d, err := LoadCatalog(path)
		require.NoError(t, err)
		opts := &ExtractOptions{}
		if journaled {
			opts.CatalogPath = path
		}
		before := fx.calls.Load()
		rep, err := d.AddImages(context.Background(), src, names, fx, nil, opts)
		require.NoError(t, err)
		assert.EqualValues(t, 1, fx.calls.Load()-before, "journaled %v: images indexed again", journaled)
		assert.Equal(t, 4, rep.Skipped, "journaled %v: report %+v", journaled, rep)
		// The deleted image's item failed to index again and is gone;
		// the replaced one holds its new embedding, at its place.
		require.Len(t, rep.Failed, 1, "journaled %v", journaled)
		assert.ErrorIs(t, rep.Failed[0].Err, fs.ErrNotExist)
		want := []string{names[0], names[1], names[2], names[3], names[5]}
		ids := make([]string, d.Len())
		for i := range ids {
			ids[i] = d.Item(i).ID
		}
		require.Equal(t, want, ids, "journaled %v", journaled)
		img, err := OpenImage(context.Background(), src, names[2])
		require.NoError(t, err)
		assert.Equal(t, fakeFeatures(img, 8), d.Item(2).Embedding, "journaled %v: replaced image", journaled)
		if journaled {
			r, err := LoadCatalog(path)
			require.NoError(t, err)
			assert.Equal(t, encodeCatalog(t, d), encodeCatalog(t, r), "journal replayed")
		}
	}

	// Prune: names is the whole listing; items not in it are removed.
	d, err := LoadCatalog(path)
	require.NoError(t, err)
	listing, err := src.Names()
	require.NoError(t, err)
	rep, err := d.AddImages(context.Background(), src, listing[1:], fx, nil, &ExtractOptions{Prune: true, CatalogPath: path})
	require.NoError(t, err)
	assert.Empty(t, rep.Failed)
	r, err := LoadCatalog(path)
	require.NoError(t, err)
	for _, x := range []*Catalog{d, r} {
		ids := make([]string, x.Len())
		for i := range ids {
			ids[i] = x.Item(i).ID
		}
		assert.Equal(t, []string{names[1], names[2], names[3], names[5]}, ids, "after pruning")
	}
}

func FuzzCatalogJournal(f *testing.F) {
	// Records after the header of a journal of an empty catalogue, or of
	// one with two items.
	var two Catalog
	require.NoError(f, two.Add(Item{ID: "a", Category: "x", Embedding: []float32{1, 2}}))
	require.NoError(f, two.Add(Item{ID: "b", Embedding: []float32{3, 4}}))
	files := map[bool][]byte{false: encodeCatalog(f, &Catalog{}), true: encodeCatalog(f, &two)}
	base := func(t testing.TB, withItems bool) *Catalog { return decodeForFuzz(t, files[withItems]) }
	journal := func(c *Catalog, ops func(j *catalogJournal)) []byte {
		path := filepath.Join(f.TempDir(), "cat.stylecat")
		require.NoError(f, c.Save(path))
		j, err := openJournal(c, path)
		require.NoError(f, err)
		ops(j)
		require.NoError(f, j.checkpoint())
		require.NoError(f, j.close())
		b, err := os.ReadFile(journalPath(path))
		require.NoError(f, err)
		return b[journalHeaderSize:]
	}
	f.Add(false, []byte{})
	f.Add(true, journal(base(f, true), func(j *catalogJournal) {
		require.NoError(f, j.c.put(Item{ID: "c", Category: "y", Embedding: []float32{5, 6}}, itemKey{3, 4}, "test"))
		j.put(2)
		j.c.Meta = map[string]string{"k": "v"}
		j.remove("a")
		j.c.removeWhere(func(i int) bool { return i == 0 })
	}))
	f.Add(true, []byte{5, 3, 0, journalDelete, 1, 'a'})       // a payload to frame
	f.Add(true, []byte{5, 3, 0, journalDelete, 1, 'a', 0, 0}) // then an empty frame, as zeros a crash left
	f.Fuzz(func(t *testing.T, withItems bool, records []byte) {
		c := base(t, withItems)
		if len(records) > 0 && records[0] == 5 {
			// Payloads, each after a 2-byte length, to frame with valid
			// checksums, so that the content is explored beyond them.
			var framed []byte
			for p := records[1:]; len(p) >= 2; {
				n := min(int(binary.LittleEndian.Uint16(p)), len(p)-2)
				payload := p[2 : 2+n]
				framed = binary.LittleEndian.AppendUint32(framed, uint32(n))
				framed = binary.LittleEndian.AppendUint32(framed, crc32.Checksum(payload, castagnoli))
				framed = append(framed, payload...)
				p = p[2+n:]
			}
			records = framed
		}
		hdr := make([]byte, journalHeaderSize)
		copy(hdr, journalMagic)
		binary.LittleEndian.PutUint32(hdr[8:], journalVersion)
		binary.LittleEndian.PutUint64(hdr[16:], uint64(c.disk.print.size))
		binary.LittleEndian.PutUint32(hdr[24:], c.disk.print.sum)
		binary.LittleEndian.PutUint32(hdr[28:], crc32.Checksum(hdr[:28], castagnoli))
		data := append(hdr, records...)
		err := c.replay(bytes.NewReader(data), int64(len(data)), "fuzz.journal")
		if err != nil {
			require.ErrorIs(t, err, ErrFormat, "not a format error")
			return
		}
		require.LessOrEqual(t, c.disk.jend, int64(len(data)))
		// What replays must save and load as the same catalogue.
		d := decodeForFuzz(t, encodeCatalog(t, c))
		require.Equal(t, encodeCatalog(t, c), encodeCatalog(t, d))
	})
}

func decodeForFuzz(t testing.TB, b []byte) *Catalog {
	c, err := decodeCatalog(bytes.NewReader(b), int64(len(b)), "fuzz")
	require.NoError(t, err)
	return c
}

// TestCatalogSaveFailsAfterWrite: when Save has written the file but fails
// afterwards (here: its index cannot be written), the catalogue knows the
// file it wrote, so indexing that resumes with a journal starts a journal
// of that file, and nothing journaled is lost or left unreadable.
func TestCatalogSaveFailsAfterWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cat.stylecat")
	dir := t.TempDir()
	names := makeImageFolder(t, dir, 12)
	src, err := NewDirSource(dir)
	require.NoError(t, err)
	defer src.Close()
	opts := &ExtractOptions{Category: testCategory, CatalogPath: path}
	var c Catalog
	_, err = c.AddImages(context.Background(), src, names[:10], &fakeExtractor{dim: 8}, nil, opts)
	require.NoError(t, err)
	require.NoError(t, c.BuildIndex(context.Background(), 1, nil))
	// A folder with a file in it where the index goes: the rename fails.
	require.NoError(t, os.MkdirAll(filepath.Join(path+".ann", "x"), 0o755))
	require.Error(t, c.Save(path), "index written over a folder")
	require.NoError(t, os.RemoveAll(path+".ann"))

	_, err = c.AddImages(context.Background(), src, names, &fakeExtractor{dim: 8}, nil, opts)
	require.NoError(t, err)
	require.Equal(t, 12, c.Len())
	got, err := LoadCatalog(path)
	require.NoError(t, err, "catalogue and journal after a failed Save")
	assert.Equal(t, encodeCatalog(t, &c), encodeCatalog(t, got))
}

// TestCatalogJournalDeleteRuns replays a journal holding a run of
// deletions (a pruned folder) followed by puts of the same IDs: the
// deletions are applied together, before the puts, and the replayed
// catalogue equals the one in memory.
func TestCatalogJournalDeleteRuns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cat.stylecat")
	src, names, c := journaledCatalog(t, 12, path)
	require.NoError(t, c.Save(path))
	fx := &fakeExtractor{dim: 8}
	opts := &ExtractOptions{Category: testCategory, CatalogPath: path, Prune: true}
	_, err := c.AddImages(context.Background(), src, names[6:], fx, nil, opts)
	require.NoError(t, err)
	require.Equal(t, 6, c.Len(), "pruned")
	_, err = c.AddImages(context.Background(), src, names[:3], fx, nil, &ExtractOptions{Category: testCategory, CatalogPath: path})
	require.NoError(t, err)
	require.Equal(t, 9, c.Len(), "three put back")
	got, err := LoadCatalog(path)
	require.NoError(t, err)
	assert.Equal(t, encodeCatalog(t, c), encodeCatalog(t, got), "replayed deletions and puts")
}

// TestCatalogJournalZeroTail replays journals that end in zeros, as a
// crash may leave them where records were to be written: a zero frame
// (length 0, and 0 the checksum of nothing) ends the journal like any
// other torn tail, after a deletion as after a put, instead of failing
// the load or panicking.
func TestCatalogJournalZeroTail(t *testing.T) {
	var two Catalog
	require.NoError(t, two.Add(Item{ID: "a", Category: "x", Embedding: []float32{1, 2}}))
	require.NoError(t, two.Add(Item{ID: "b", Embedding: []float32{3, 4}}))
	file := encodeCatalog(t, &two)
	frame := func(b, payload []byte) []byte {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(payload)))
		b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(payload, castagnoli))
		return append(b, payload...)
	}
	put := []byte{journalPut, 1, 'c', 0, 0, 0}
	for _, v := range []float32{5, 6} {
		put = binary.LittleEndian.AppendUint32(put, math.Float32bits(v))
	}
	for _, tc := range []struct {
		name    string
		payload []byte
		ids     []string
	}{
		{"after a deletion", []byte{journalDelete, 1, 'a'}, []string{"b"}},
		{"after a put", put, []string{"a", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := decodeForFuzz(t, file)
			hdr := make([]byte, journalHeaderSize)
			copy(hdr, journalMagic)
			binary.LittleEndian.PutUint32(hdr[8:], journalVersion)
			binary.LittleEndian.PutUint64(hdr[16:], uint64(c.disk.print.size))
			binary.LittleEndian.PutUint32(hdr[24:], c.disk.print.sum)
			binary.LittleEndian.PutUint32(hdr[28:], crc32.Checksum(hdr[:28], castagnoli))
			data := frame(hdr, tc.payload)
			end := int64(len(data))
			data = append(data, make([]byte, 3*journalFrameSize)...)
			require.NotPanics(t, func() {
				require.NoError(t, c.replay(bytes.NewReader(data), int64(len(data)), "zero.journal"))
			})
			var ids []string
			for i := range c.Len() {
				ids = append(ids, c.Item(i).ID)
			}
			assert.Equal(t, tc.ids, ids, "items replayed")
			assert.Equal(t, end, c.disk.jend, "the journal ends before the zeros")
		})
	}
}
