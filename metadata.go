package style

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
)

// Metadata is a table of facts about items, read from a CSV file such as
// the styles.csv of a product catalogue: one row per item, identified by
// the value of its ID column, and one column per fact (a category, a
// product name, a colour...). It is safe for concurrent use.
type Metadata struct {
	columns []string            // the header, trimmed
	col     map[string]int      // column name -> index of its first occurrence
	rows    map[string][]string // ID -> the row's values, trimmed
}

// ReadMetadata reads the CSV file path: a header row naming the columns,
// then one row per item, with RFC 4180 quoting and an optional UTF-8 byte
// order mark. The column named idColumn identifies the items. Column
// names, IDs and values are trimmed of surrounding spaces; where two
// columns have the same name, the first one counts.
//
// Malformed input gives a *FormatError naming the file and the 1-based
// line: an empty file, no column idColumn in the header, a row with
// another number of fields than the header, a stray quote, an empty ID, or
// an ID listed again with different values.
func ReadMetadata(path, idColumn string) (*Metadata, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("style: %w", err)
	}
	defer f.Close()
	return parseMetadata(f, path, idColumn)
}

// parseMetadata reads a metadata table from r; name is used in error
// messages only.
func parseMetadata(r io.Reader, name, idColumn string) (*Metadata, error) {
	ferr := func(line int, format string, args ...any) error {
		return &FormatError{Path: name, Line: line, Offset: -1, Msg: fmt.Sprintf(format, args...)}
	}
	cr := csv.NewReader(bufio.NewReader(r))
	header, err := cr.Read()
	if err == io.EOF {
		return nil, ferr(1, "empty file, expected a header row")
	}
	if err != nil {
		return nil, csvFormatError(name, err)
	}
	m := &Metadata{col: make(map[string]int, len(header)), rows: make(map[string][]string)}
	for i, h := range header {
		if i == 0 {
			h = strings.TrimPrefix(h, "\ufeff")
		}
		h = strings.TrimSpace(h)
		m.columns = append(m.columns, h)
		if _, dup := m.col[h]; !dup {
			m.col[h] = i
		}
	}
	idCol, ok := m.col[idColumn]
	if !ok {
		return nil, ferr(1, "no column %q in the header", idColumn)
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return nil, csvFormatError(name, err)
		}
		line, _ := cr.FieldPos(0)
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		id := rec[idCol]
		if id == "" {
			return nil, ferr(line, "empty %s", idColumn)
		}
		if old, dup := m.rows[id]; dup && !slices.Equal(old, rec) {
			return nil, ferr(line, "%s %q listed again with different values", idColumn, id)
		}
		m.rows[id] = rec
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

// Columns returns the names of the columns, in the order of the header.
func (m *Metadata) Columns() []string { return slices.Clone(m.columns) }

// Value returns the value in column of the item called item, or "" if
// the table has no such item or no such column. item is matched, in turn,
// as an ID, then by its base name (after the last "/" or "\") without its
// extension, then by its base name: "15970", "15970.jpg" and
// "images/15970.jpg" all find the row whose ID is 15970.
func (m *Metadata) Value(item, column string) string {
	c, ok := m.col[column]
	if !ok {
		return ""
	}
	row, ok := m.rows[item]
	if !ok {
		base := path.Base(strings.ReplaceAll(item, `\`, "/"))
		if row, ok = m.rows[strings.TrimSuffix(base, path.Ext(base))]; !ok {
			row = m.rows[base]
		}
	}
	if row == nil {
		return ""
	}
	return row[c]
}
