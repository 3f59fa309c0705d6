package style

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMatrix(t *testing.T) {
	m := &Matrix{Rows: 3, Cols: 2, Data: []float32{1, 2, 3, 4, 5, 6}}
	assert.Equal(t, 3, m.Len())
	assert.Equal(t, 2, m.Dim())
	assert.Equal(t, []float32{3, 4}, m.Row(1))
	// Row aliases Data, and appending to it cannot overwrite the next row.
	m.Row(1)[0] = 30
	assert.Equal(t, float32(30), m.Data[2])
	_ = append(m.Row(0), 99)
	assert.Equal(t, float32(30), m.Data[2])

	dst := make([]float32, 2)
	got := m.FeatureTo(dst, 2)
	assert.Equal(t, []float32{5, 6}, got)
	got[0] = 50 // a copy
	assert.Equal(t, float32(5), m.Data[4])

	var empty Matrix
	assert.Equal(t, 0, empty.Len())
	assert.Equal(t, 0, empty.Dim())

	mustPanic(t, "out of range", func() { m.Row(3) })
	mustPanic(t, "out of range", func() { m.Row(-1) })
	mustPanic(t, "values for", func() { (&Matrix{Rows: 2, Cols: 2, Data: make([]float32, 3)}).Row(0) })
	mustPanic(t, "destination", func() { m.FeatureTo(make([]float32, 3), 0) })
	mustPanic(t, "out of range", func() { m.FeatureTo(dst, 5) })
}
