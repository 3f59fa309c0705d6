package style

import "fmt"

// Matrix is a dense row-major float32 matrix; row i is
// Data[i*Cols:(i+1)*Cols].
// It implements FeatureSource, so in-memory vectors go wherever stored ones do:
// to t-SNE, to training and evaluation, and to the pictures of package
// picture. The zero value is an empty matrix.
//
// A Matrix is a plain value: its methods only read it, so it is safe for
// concurrent reads.
type Matrix struct {
	Rows, Cols int
	Data       []float32
}

// Len returns the number of rows, Rows.
func (m *Matrix) Len() int { return m.Rows }

// Dim returns the length of each row, Cols.
func (m *Matrix) Dim() int { return m.Cols }

// FeatureTo copies row i into dst and returns dst. It panics if i is out
// of range, len(dst) != Cols, or Data is shorter than Rows*Cols.
func (m *Matrix) FeatureTo(dst []float32, i int) []float32 {
	if len(dst) != m.Cols {
		panic(fmt.Sprintf("style: Matrix.FeatureTo: destination of length %d, want %d", len(dst), m.Cols))
	}
	if i < 0 || i >= m.Rows {
		panic(fmt.Sprintf("style: Matrix.FeatureTo: row %d out of range [0, %d)", i, m.Rows))
	}
	if len(m.Data) < m.Rows*m.Cols {
		panic(fmt.Sprintf("style: Matrix.FeatureTo: %d values for %d x %d", len(m.Data), m.Rows, m.Cols))
	}
	copy(dst, m.Data[i*m.Cols:(i+1)*m.Cols])
	return dst
}

var _ FeatureSource = (*Matrix)(nil)
