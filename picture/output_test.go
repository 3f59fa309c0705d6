package picture

import (
	"bytes"
	"context"
	"encoding/xml"
	"image"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestChartFormats writes every chart as SVG and PDF, chosen by the
// extension, and checks what a reader of each format needs: an SVG
// document of the chart's size (800 pixels at 96 dpi are 600 points)
// holding the title text, and a complete PDF file.
func TestChartFormats(t *testing.T) {
	fpr, tpr := rocCurve(100)
	xy, cats := clusters(500, 5)
	charts := map[string]func(path string) error{
		"learning": func(path string) error {
			return LearningCurves(path, []float64{3, 2, 1.5}, []float64{3.2, 2.4, 2}, &Options{Title: "Learning title"})
		},
		"roc": func(path string) error {
			return ROC(path, fpr, tpr, 0.8, 0.2, 0.6, &Options{Title: "ROC title"})
		},
		"densities": func(path string) error {
			return Densities(path, []DensityPanel{{Compatible: []float64{0.2, 0.3, 0.4}, Incompatible: []float64{0.9, 1.1, 1.3}, Cutoff: 0.6}},
				&Options{Title: "Densities title"})
		},
		"scatter": func(path string) error { return Scatter(path, xy, cats, &Options{Title: "Scatter title"}) },
	}
	for name, draw := range charts {
		svgPath := chartPath(t, name+".svg")
		require.NoError(t, draw(svgPath), name)
		b, err := os.ReadFile(svgPath)
		require.NoError(t, err)
		var doc struct {
			XMLName xml.Name `xml:"svg"`
			Width   string   `xml:"width,attr"`
			Height  string   `xml:"height,attr"`
		}
		require.NoError(t, xml.Unmarshal(b, &doc), "%s: SVG", name)
		assert.Equal(t, "600pt", doc.Width, name)
		assert.Equal(t, "450pt", doc.Height, name)
		title := map[string]string{"learning": "Learning title", "roc": "ROC title", "densities": "Densities title", "scatter": "Scatter title"}[name]
		assert.Contains(t, string(b), ">"+title+"<", "%s: title text", name)
		assert.Less(t, len(b), 2<<20, "%s: SVG size", name)

		pdfPath := chartPath(t, name+".PDF") // any letter case
		require.NoError(t, draw(pdfPath), name)
		b, err = os.ReadFile(pdfPath)
		require.NoError(t, err)
		assert.True(t, bytes.HasPrefix(b, []byte("%PDF-")), "%s: PDF header", name)
		assert.Contains(t, string(b[max(0, len(b)-64):]), "%%EOF", "%s: PDF trailer", name)
		assert.Less(t, len(b), 2<<20, "%s: PDF size", name)

		// Another extension is refused before anything is written.
		jpg := filepath.Join(t.TempDir(), name+".jpg")
		assert.ErrorContains(t, draw(jpg), `extension ".jpg" is not .png, .svg or .pdf`, name)
		_, err = os.Stat(jpg)
		assert.ErrorIs(t, err, os.ErrNotExist, name)
	}
	assert.ErrorContains(t, ROC(filepath.Join(t.TempDir(), "roc"), fpr, tpr, math.NaN(), 0, 0, nil), `extension ""`, "no extension")
}

// TestRasterOnly checks that maps and contact sheets, raster images, are
// written as PNG only, with an error naming the extension otherwise.
func TestRasterOnly(t *testing.T) {
	xy, _ := clusters(20, 2)
	tile := halves(0, 0, 30, 40)
	dir := t.TempDir()
	thumb := func(int) (image.Image, error) { return tile, nil }
	for _, ext := range []string{".svg", ".pdf", ".jpg", ""} {
		err := WriteMap(context.Background(), filepath.Join(dir, "map"+ext), xy, thumb, &MapOptions{Width: 300, Height: 300, Thumb: 20})
		assert.ErrorContains(t, err, "PNG only", "map%s", ext)
		err = WriteContactSheet(filepath.Join(dir, "sheet"+ext), tile, []image.Image{tile}, nil, nil)
		assert.ErrorContains(t, err, "PNG only", "sheet%s", ext)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries, "files written")
	require.NoError(t, WriteMap(context.Background(), filepath.Join(dir, "map.PNG"), xy, thumb, &MapOptions{Width: 300, Height: 300, Thumb: 20}))
}
