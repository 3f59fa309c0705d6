package style

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMatrix(t *testing.T) {
	m := &Matrix{Rows: 3, Cols: 2, Data: []float32{1, 2, 3, 4, 5, 6}}
	assert.Equal(t, 3, m.Len())
	assert.Equal(t, 2, m.Dim())

	dst := make([]float32, 2)
	got := m.FeatureTo(dst, 1)
	assert.Equal(t, []float32{3, 4}, got)
	assert.Same(t, &dst[0], &got[0], "FeatureTo returns dst")
	got = m.FeatureTo(dst, 2)
	assert.Equal(t, []float32{5, 6}, got)
	got[0] = 50 // a copy
	assert.Equal(t, float32(5), m.Data[4])

	var empty Matrix
	assert.Equal(t, 0, empty.Len())
	assert.Equal(t, 0, empty.Dim())

	mustPanic(t, "out of range", func() { m.FeatureTo(dst, 3) })
	mustPanic(t, "out of range", func() { m.FeatureTo(dst, -1) })
	mustPanic(t, "values for", func() { (&Matrix{Rows: 2, Cols: 2, Data: make([]float32, 3)}).FeatureTo(dst, 0) })
	mustPanic(t, "destination", func() { m.FeatureTo(make([]float32, 3), 0) })
	mustPanic(t, "out of range", func() { m.FeatureTo(dst, 5) })
}
