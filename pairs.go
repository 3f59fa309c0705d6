package style

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// maxPairListBytes caps a pair list fetched from a URL: 256 MiB, far more
// than the study's 35,000 pairs (about 2 MB).
const maxPairListBytes = 256 << 20

// ReadPairs reads a pair list from a file or an http or https URL: one
// pair per line, three fields "image1;image2;label" with label 1 when the
// items go well together and 0 when they do not. A URL is fetched with
// http.DefaultClient in one attempt, within 30 seconds (ctx may set a
// shorter deadline), and may hold at most 256 MiB; an answer other than
// 200 OK is an error naming the URL and the status, which matches
// fs.ErrNotExist for 404 and 410.
//
// The delimiter is detected from the first non-blank line: a semicolon (the
// study's amazon_pairs.csv) if that line splits into three fields on
// semicolons, otherwise a comma, otherwise a tab. Fields may be quoted as in
// RFC 4180, which lets names contain the delimiter. The first line is a
// header, and skipped, when its label field is a word (starts with a letter,
// like "score" or "label") and neither name field contains a dot. A UTF-8
// byte order mark, CRLF line ends, blank lines and spaces around fields are
// accepted. A label may be written 0, 1, 0.0 or 1.0.
//
// Malformed input gives a *FormatError naming the file or URL and the
// 1-based line: a row without exactly three fields, an empty image name, a
// label other than 0 or 1, a stray quote. The returned pairs carry their
// line numbers.
func ReadPairs(ctx context.Context, pathOrURL string) ([]Pair, error) {
	rc, err := openPathOrURL(ctx, pathOrURL, maxPairListBytes, nil)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return parsePairs(rc, pathOrURL)
}

// parsePairs reads a pair list in the format of ReadPairs from r; name is
// used in error messages only.
func parsePairs(r io.Reader, name string) ([]Pair, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	// Skip a UTF-8 byte order mark.
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte{0xEF, 0xBB, 0xBF}) {
		br.Discard(3)
	}
	first, err := peekFirstLine(br)
	if err != nil {
		return nil, fmt.Errorf("style: read %s: %w", name, err)
	}
	cr := csv.NewReader(br)
	cr.Comma = detectPairDelimiter(first)
	cr.FieldsPerRecord = -1 // checked below, with a clearer message
	cr.ReuseRecord = true
	var pairs []Pair
	for rec := 0; ; rec++ {
		fields, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, &FormatError{Path: name, Line: pe.Line, Offset: -1, Msg: fmt.Sprintf("column %d", pe.Column), Err: pe.Err}
			}
			return nil, fmt.Errorf("style: read %s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(fields) != 3 {
			return nil, &FormatError{Path: name, Line: line, Offset: -1,
				Msg: fmt.Sprintf("want 3 fields separated by %q (image1, image2, label), got %d", cr.Comma, len(fields))}
		}
		a := strings.TrimSpace(fields[0])
		b := strings.TrimSpace(fields[1])
		l := strings.TrimSpace(fields[2])
		if rec == 0 && isPairHeader(a, b, l) {
			continue
		}
		if a == "" || b == "" {
			col := 1
			if a != "" {
				col = 2
			}
			return nil, &FormatError{Path: name, Line: line, Offset: -1, Msg: fmt.Sprintf("empty image name in field %d", col)}
		}
		label, ok := parsePairLabel(l)
		if !ok {
			return nil, &FormatError{Path: name, Line: line, Offset: -1, Msg: fmt.Sprintf("label %q is not 0 or 1", l)}
		}
		pairs = append(pairs, Pair{A: a, B: b, Label: label, Line: line})
	}
	return pairs, nil
}

// peekFirstLine returns the first non-blank line of br without consuming
// it (at most the buffer size).
func peekFirstLine(br *bufio.Reader) (string, error) {
	for n := 4096; ; n *= 2 {
		if n > br.Size() {
			n = br.Size()
		}
		b, err := br.Peek(n)
		s := strings.TrimLeft(string(b), " \t\r\n")
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			return s[:i], nil
		}
		if err != nil {
			if err == io.EOF || err == bufio.ErrBufferFull {
				return s, nil
			}
			return "", err
		}
		if n == br.Size() {
			return s, nil
		}
	}
}

func detectPairDelimiter(line string) rune {
	for _, d := range []rune{';', ',', '\t'} {
		if strings.Count(line, string(d)) == 2 {
			return d
		}
	}
	for _, d := range []rune{';', ',', '\t'} {
		if strings.ContainsRune(line, d) {
			return d
		}
	}
	return ';'
}

func isPairHeader(a, b, label string) bool {
	if label == "" || !unicode.IsLetter([]rune(label)[0]) {
		return false
	}
	return !strings.Contains(a, ".") && !strings.Contains(b, ".")
}

func parsePairLabel(s string) (int, bool) {
	switch s {
	case "0":
		return 0, true
	case "1":
		return 1, true
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || (v != 0 && v != 1) {
		return 0, false
	}
	return int(v), true
}

// UniqueNames returns the distinct image names of pairs, in order of first
// appearance (A before B within a pair).
func UniqueNames(pairs []Pair) []string {
	seen := make(map[string]struct{}, len(pairs))
	var names []string
	for _, p := range pairs {
		for _, n := range [2]string{p.A, p.B} {
			if _, ok := seen[n]; !ok {
				seen[n] = struct{}{}
				names = append(names, n)
			}
		}
	}
	return names
}
