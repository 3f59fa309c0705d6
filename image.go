package style

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // register GIF
	_ "image/jpeg" // register JPEG
	_ "image/png"  // register PNG
	"io"
	"io/fs"
)

// maxImagePixels is the largest image, in pixels (width x height), that
// DecodeImage accepts: 64 megapixels.
const maxImagePixels = 64 << 20

// maxImageDecodeBytes bounds the memory that decoding one image takes,
// beyond its encoded bytes: 264 MiB, the 256 MiB of a maxImagePixels
// image decoded as RGBA plus 8 MiB for the decoder's working buffers.
const maxImageDecodeBytes = 4*maxImagePixels + 8<<20

// maxImageBytes is the largest encoded image DecodeImage reads: 64 MiB.
const maxImageBytes = 64 << 20

// ErrImageTooLarge is matched by errors.Is when an image exceeds one of
// DecodeImage's limits: 64 MiB of encoded data, 64 megapixels, or 264 MiB
// of memory to decode.
var ErrImageTooLarge = errors.New("style: image too large")

// DecodeImage decodes a JPEG, PNG or GIF image from r. name is used in error
// messages only (a file name or URL). Corrupt or truncated data gives a
// *FormatError, including a progressive JPEG that ends before its last
// scan (which Go's decoder returns as a partial image when the
// end-of-image marker is present).
//
// So that a hostile file cannot make it allocate gigabytes, DecodeImage
// has three limits, each refused with an error matching ErrImageTooLarge
// before any pixel is decoded:
//
//   - At most 64 MiB of encoded data are read (whole, before decoding).
//   - The image may have at most 64 megapixels (width x height), checked
//     from its header.
//   - Decoding may take at most 264 MiB (277 MB): the 256 MiB of a
//     64-megapixel image decoded as RGBA plus 8 MiB for the decoder's
//     working buffers. DecodeImage computes what Go's decoders will
//     allocate from the header. Per pixel, they need 1 to 3 bytes for
//     baseline JPEGs (grey, 4:2:0, 4:4:4), 4 more per sample for
//     progressive JPEGs (which keep every DCT coefficient until the last
//     scan), 4 more for CMYK JPEGs, 1 to 8 bytes for PNGs (grey to 16-bit
//     colour), twice that if interlaced, and 1 byte for GIFs. So the
//     largest accepted images are 64 megapixels for baseline grey and
//     colour JPEGs, 8-bit PNGs and GIFs; about 55 for progressive grey
//     JPEGs, 37 for progressive 4:2:0 JPEGs, 34 for CMYK JPEGs and for
//     16-bit or interlaced 8-bit colour PNGs, and 18 for progressive 4:4:4
//     JPEGs.
//
// With the encoded data, one DecodeImage call holds at most about 330 MiB.
func DecodeImage(r io.Reader, name string) (image.Image, error) {
	data, err := readImageBytes(r)
	if err != nil {
		return nil, fmt.Errorf("style: read %s: %w", name, err)
	}
	if len(data) > maxImageBytes {
		return nil, fmt.Errorf("style: %s: more than %d bytes: %w", name, maxImageBytes, ErrImageTooLarge)
	}
	return decodeImageBytes(data, name)
}

// readImageBytes reads r whole, up to maxImageBytes + 1 bytes; a file (an
// fs.File, such as an *os.File) is read into a buffer of its size.
func readImageBytes(r io.Reader) ([]byte, error) {
	size := int64(-1)
	if f, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
	}
	if size < 0 || size > maxImageBytes {
		return io.ReadAll(io.LimitReader(r, maxImageBytes+1))
	}
	// One byte more than the size, to notice a file that grew.
	buf := make([]byte, size+1)
	n, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return buf[:n], nil
	}
	if err != nil {
		return nil, err
	}
	rest, err := io.ReadAll(io.LimitReader(r, maxImageBytes+1-int64(n)))
	return append(buf, rest...), err
}

func decodeImageBytes(data []byte, name string) (image.Image, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, &FormatError{Path: name, Offset: -1, Msg: "cannot decode image header", Err: err}
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, &FormatError{Path: name, Offset: -1, Msg: fmt.Sprintf("%s image has empty size %dx%d", format, cfg.Width, cfg.Height)}
	}
	if int64(cfg.Width)*int64(cfg.Height) > maxImagePixels {
		return nil, fmt.Errorf("style: %s: %s image of %dx%d pixels exceeds the limit of %d pixels: %w",
			name, format, cfg.Width, cfg.Height, maxImagePixels, ErrImageTooLarge)
	}
	cost, kind, jpg := imageDecodeCost(data, cfg, format)
	if cost > maxImageDecodeBytes {
		return nil, fmt.Errorf("style: %s: %s image of %dx%d pixels needs about %d MiB to decode, more than the limit of %d MiB: %w",
			name, kind, cfg.Width, cfg.Height, cost>>20, maxImageDecodeBytes>>20, ErrImageTooLarge)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, &FormatError{Path: name, Offset: -1, Msg: "cannot decode " + format + " image", Err: err}
	}
	if jpg != nil && jpg.progressive {
		if msg := jpg.incomplete(); msg != "" {
			return nil, &FormatError{Path: name, Offset: -1, Msg: "truncated progressive JPEG: " + msg}
		}
	}
	return img, nil
}

// imageDecodeCost returns the bytes Go's decoder will allocate to decode
// data, an image of the given format and configuration, and names its
// format and layout for error messages; for a JPEG it also returns what
// scanJPEG found, or nil. Formats other than JPEG, PNG and GIF (registered
// with package image by the program) are assumed to take 8 bytes a pixel.
func imageDecodeCost(data []byte, cfg image.Config, format string) (int64, string, *jpegInfo) {
	pixels := int64(cfg.Width) * int64(cfg.Height)
	switch format {
	case "jpeg":
		if j, err := scanJPEG(data); err == nil {
			return j.decodeCost(), j.kind(), j
		}
	case "png":
		if h, err := readPNGHeader(data); err == nil {
			return h.decodeCost(), h.kind(), nil
		}
	case "gif":
		return pixels + 1<<20, "GIF", nil
	}
	if format == "jpeg" { // the worst case: progressive CMYK
		return 24*pixels + 1<<20, "JPEG", nil
	}
	return 8*pixels + 1<<20, format, nil
}

// jpegInfo is what DecodeImage needs to know of a JPEG file: its frame,
// and for a progressive one which DCT coefficients its scans deliver.
type jpegInfo struct {
	progressive   bool
	width, height int
	comps         []jpegComp
	jfif          bool // an APP0 JFIF segment: YCbCr
	adobe         bool // an APP14 Adobe segment
	transform     byte // its colour transform (0: RGB or CMYK)
	// bits[c][k] is the lowest bit of coefficient k (zig-zag order) of
	// component c that the scans deliver: 0 once complete, -1 if never
	// sent.
	bits [][64]int8
}

type jpegComp struct {
	id   byte
	h, v int
}

// scanJPEG walks the markers of a JPEG file the way image/jpeg does
// (skipping stray bytes between segments and the entropy-coded data of
// scans) up to the end-of-image marker or the end of the data. It returns
// an error only if the file does not start with SOI or has no well-formed
// SOF0, SOF1 or SOF2 frame header.
func scanJPEG(data []byte) (*jpegInfo, error) {
	if len(data) < 4 || data[0] != 0xff || data[1] != 0xd8 {
		return nil, errors.New("no SOI marker")
	}
	j := &jpegInfo{}
	done := func() (*jpegInfo, error) {
		if j.comps == nil {
			return nil, errors.New("no frame header")
		}
		return j, nil
	}
	for p := 2; p+1 < len(data); {
		if data[p] != 0xff {
			p++ // stray byte, ignored as image/jpeg does
			continue
		}
		m := data[p+1]
		p += 2
		switch {
		case m == 0xff: // fill byte
			p--
			continue
		case m == 0xd9: // EOI
			return done()
		case m == 0 || m == 0x01 || m >= 0xd0 && m <= 0xd8: // stuffed 0xff, TEM, RSTn, SOI: no length
			continue
		}
		if p+2 > len(data) {
			break
		}
		n := int(binary.BigEndian.Uint16(data[p:]))
		if n < 2 || p+n > len(data) {
			break
		}
		seg := data[p+2 : p+n]
		p += n
		switch {
		case m == 0xc0 || m == 0xc1 || m == 0xc2: // SOF0, SOF1, SOF2
			if j.comps != nil || len(seg) < 6 || len(seg) < 6+3*int(seg[5]) || seg[5] == 0 {
				return done()
			}
			j.progressive = m == 0xc2
			j.height, j.width = int(binary.BigEndian.Uint16(seg[1:])), int(binary.BigEndian.Uint16(seg[3:]))
			for i := range int(seg[5]) {
				c := seg[6+3*i:]
				j.comps = append(j.comps, jpegComp{id: c[0], h: max(int(c[1]>>4), 1), v: max(int(c[1]&15), 1)})
			}
			j.bits = make([][64]int8, len(j.comps))
			for c := range j.bits {
				for k := range j.bits[c] {
					j.bits[c][k] = -1
				}
			}
		case m == 0xe0 && bytes.HasPrefix(seg, []byte("JFIF\x00")):
			j.jfif = true
		case m == 0xee && len(seg) >= 12 && bytes.HasPrefix(seg, []byte("Adobe")):
			j.adobe, j.transform = true, seg[11]
		case m == 0xda: // SOS, then entropy-coded data up to the next marker
			if j.comps == nil {
				return done()
			}
			j.recordScan(seg)
			for {
				i := bytes.IndexByte(data[p:], 0xff)
				if i < 0 {
					return done() // no end-of-image marker: the decoder fails
				}
				p += i
				if p+1 < len(data) && (data[p+1] == 0 || data[p+1] >= 0xd0 && data[p+1] <= 0xd7) {
					p += 2 // stuffed 0xff or restart marker
					continue
				}
				break
			}
		}
	}
	return done()
}

// recordScan notes the coefficients a start-of-scan segment delivers.
func (j *jpegInfo) recordScan(seg []byte) {
	if len(seg) < 1 || len(seg) < 1+2*int(seg[0])+3 {
		return
	}
	ns := int(seg[0])
	ss, se := int(seg[1+2*ns]), int(seg[2+2*ns])
	al := int8(seg[3+2*ns] & 15)
	if !j.progressive {
		ss, se, al = 0, 63, 0
	}
	for i := range ns {
		for c, comp := range j.comps {
			if comp.id == seg[1+2*i] {
				for k := ss; k <= se && k < 64; k++ {
					j.bits[c][k] = al
				}
			}
		}
	}
}

// incomplete describes the first coefficient that the scans of a
// progressive JPEG leave missing or imprecise, or returns "".
func (j *jpegInfo) incomplete() string {
	for c := range j.comps {
		for k, b := range j.bits[c] {
			switch {
			case b < 0:
				return fmt.Sprintf("coefficient %d of component %d is never sent", k, c+1)
			case b > 0:
				return fmt.Sprintf("coefficient %d of component %d lacks its %d lowest bits", k, c+1, b)
			}
		}
	}
	return ""
}

// decodeCost returns the bytes Go's image/jpeg allocates to decode the
// image: its planes (one byte per sample, over whole MCUs), the DCT
// coefficients of a progressive image (4 bytes per sample), and the RGBA
// or CMYK image it converts RGB and 4-component images to.
func (j *jpegInfo) decodeCost() int64 {
	h0, v0 := j.comps[0].h, j.comps[0].v
	if len(j.comps) == 1 {
		h0, v0 = 1, 1
	}
	mcus := int64((j.width+8*h0-1)/(8*h0)) * int64((j.height+8*v0-1)/(8*v0))
	var samples int64
	for _, c := range j.comps {
		h, v := c.h, c.v
		if len(j.comps) == 1 {
			h, v = 1, 1
		}
		samples += 64 * int64(h*v) * mcus
	}
	cost := samples
	if j.progressive {
		cost += 4 * samples
	}
	if len(j.comps) == 4 || len(j.comps) == 3 && j.isRGB() {
		cost += 4 * int64(j.width) * int64(j.height)
	}
	return cost + 1<<20
}

// isRGB mirrors image/jpeg's test for a 3-component image stored as RGB.
func (j *jpegInfo) isRGB() bool {
	if j.jfif {
		return false
	}
	if j.adobe && j.transform == 0 {
		return true
	}
	return j.comps[0].id == 'R' && j.comps[1].id == 'G' && j.comps[2].id == 'B'
}

// kind names the image's format and layout in error messages.
func (j *jpegInfo) kind() string {
	s := "baseline"
	if j.progressive {
		s = "progressive"
	}
	switch len(j.comps) {
	case 1:
		return s + " grey JPEG"
	case 4:
		return s + " CMYK JPEG"
	}
	return s + " JPEG"
}

// pngHeader is what DecodeImage needs to know of a PNG file.
type pngHeader struct {
	width, height int64
	depth, color  byte
	interlaced    bool
	transparent   bool // a tRNS chunk before the image data
}

// readPNGHeader reads the IHDR chunk of a PNG file and looks for a tRNS
// chunk before the first IDAT.
func readPNGHeader(data []byte) (*pngHeader, error) {
	if len(data) < 33 || string(data[:8]) != "\x89PNG\r\n\x1a\n" || string(data[12:16]) != "IHDR" {
		return nil, errors.New("no IHDR chunk")
	}
	h := &pngHeader{
		width:      int64(binary.BigEndian.Uint32(data[16:])),
		height:     int64(binary.BigEndian.Uint32(data[20:])),
		depth:      data[24],
		color:      data[25],
		interlaced: data[28] != 0,
	}
	for p := 33; p+8 <= len(data); {
		n := int64(binary.BigEndian.Uint32(data[p:]))
		typ := string(data[p+4 : p+8])
		if typ == "IDAT" {
			break
		}
		if typ == "tRNS" {
			h.transparent = true
		}
		if n > int64(len(data)-p) {
			break
		}
		p += 12 + int(n)
	}
	return h, nil
}

// decodeCost returns the bytes Go's image/png allocates to decode the
// image: the image (and as much again for the passes of an interlaced one)
// and the current and previous rows.
func (h *pngHeader) decodeCost() int64 {
	channels := map[byte]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[h.color]
	var pixel int64 // bytes per pixel of the decoded image
	switch {
	case h.color == 3:
		pixel = 1
	case h.color == 0 && !h.transparent:
		pixel = max(int64(h.depth)/8, 1)
	case h.depth == 16:
		pixel = 8
	default:
		pixel = 4
	}
	cost := pixel * h.width * h.height
	rows := 2 * (1 + (max(channels, 1)*int64(h.depth)*h.width+7)/8)
	if h.interlaced {
		cost, rows = 2*cost, 3*rows
	}
	return cost + rows + 1<<20
}

// kind names the image's format and layout in error messages.
func (h *pngHeader) kind() string {
	s := fmt.Sprintf("%d-bit PNG", h.depth)
	if h.interlaced {
		s = "interlaced " + s
	}
	return s
}
