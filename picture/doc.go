// Package picture draws the pictures of a style study: charts of training
// and evaluation, maps of an embedding made of product thumbnails, and
// contact sheets of a query with its matches.
//
// It is a leaf of package style: it takes the core's values (a
// style.FeatureSource for points, distances and rates as float64 slices)
// and brings in gonum/plot, its fonts and a resampling library, which a
// program that only scores pairs or builds catalogues does not compile.
// It does not compute anything the pictures show: t-SNE, ROC curves and
// distances come from package style.
//
// # What it draws
//
//   - LearningCurves: training and validation loss per epoch, with the
//     best epoch marked.
//   - ROC: a ROC curve with its AUC, the chance diagonal and a cutoff.
//   - Densities: kernel density estimates of the distances of compatible
//     and incompatible pairs, one panel per DensityPanel (before and after
//     training, say).
//   - Scatter: a 2-D embedding as coloured points, one colour per
//     category.
//   - DrawMap and WriteMap: a 2-D embedding as a map of thumbnails, moved
//     to a grid of free cells so that none hides another (MapGrid), or
//     drawn at their exact positions (MapScatter).
//   - ContactSheet and WriteContactSheet: a query picture and its matches
//     in a grid, with captions (item IDs or names, distances) in Liberation
//     Sans, and the matches within a cutoff framed in green, with a check
//     mark and "goes together".
//   - Thumbnail: an image scaled down to fit a box, keeping its aspect
//     ratio.
//
// Points are read from a style.FeatureSource of dimension 2, typically the
// *style.Matrix of style.TSNEResult.Y, or a *style.Matrix of coordinates of
// your own. Options, MapOptions and
// SheetOptions set sizes and titles; a nil pointer means the defaults.
//
// # Files
//
// Charts (LearningCurves, ROC, Densities, Scatter) are written in the
// format the file name's extension names: .png (at 96 dpi, with text
// scaled to the picture's size), .svg or .pdf (vector graphics of the same
// size in points, 800 pixels being 600 points; SVG names its Liberation
// fonts, PDF embeds them), in any letter case; another extension is an
// error. Maps and contact sheets are raster images, written as PNG only
// (their file names must end in .png). Tick marks sit at round values,
// multiples of 1, 2, 2.5 or 5 times a power of ten, as matplotlib places
// them. Files are written to a temporary file in
// the same folder and renamed over the destination, so a reader sees the
// previous file or the complete new one, never half of one, and a failure
// leaves the previous file untouched. New files get mode 0666 less the
// process umask; a file that is replaced keeps its mode.
//
// # Errors and panics
//
// Data that cannot be drawn (no points, NaN or infinite values, rates
// outside [0, 1], an unusable size) and I/O failures are returned as
// errors. Programmer errors panic: slices of mismatched lengths, points of
// a dimension other than 2, negative sizes, a contact sheet larger than
// style.MaxImagePixels. Each panic is documented on its function. Error and
// panic messages start with "picture: ".
//
// # Concurrency
//
// Every function may be called from several goroutines at once; none
// keeps state between calls. DrawMap and WriteMap call their thumbnail
// function on the calling goroutine, one item at a time, and check the
// context between thumbnails.
package picture
