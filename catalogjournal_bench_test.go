package style

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// BenchmarkCatalogCheckpoint measures a journaled checkpoint of 1,000 new
// 128-value items (records written and synced) in catalogues of
// different sizes, against rewriting the whole catalogue with Save (run
// first, on the catalogue as built): the checkpoint's cost does not grow
// with the catalogue.
func BenchmarkCatalogCheckpoint(b *testing.B) {
	const batch, dim = 1000, 128
	for _, n := range []int{1000, 100000} {
		c := randomCatalog(b, n, dim, false, 1)
		path := filepath.Join(b.TempDir(), "cat.stylecat")
		require.NoError(b, c.Save(path))
		vec := make([]float32, dim)
		b.Run(fmt.Sprintf("save/items=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				require.NoError(b, c.Save(path))
			}
		})
		b.Run(fmt.Sprintf("journal/items=%d", n), func(b *testing.B) {
			j, err := openJournal(c, path)
			require.NoError(b, err)
			defer j.close()
			b.ReportAllocs()
			next := 0
			for b.Loop() {
				for range batch {
					vec[0] = float32(next)
					require.NoError(b, c.put(Item{ID: "new" + strconv.Itoa(next), Embedding: vec}, itemKey{}, "bench"))
					j.put(c.Len() - 1)
					next++
				}
				require.NoError(b, j.checkpoint())
			}
			b.ReportMetric(float64(batch), "items/checkpoint")
		})
	}
}
