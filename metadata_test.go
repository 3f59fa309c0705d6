package style

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadMetadata(t *testing.T) {
	in := "\ufeffid,gender,articleType,name\n" +
		"15970,Men,Shirts,\"Turtle Check Men Navy Blue Shirt, slim\"\n" +
		" 39386 ,Men, Jeans ,Peter England Men Party Blue Jeans\n" +
		"1,Women,,no type\n" +
		"15970,Men,Shirts,\"Turtle Check Men Navy Blue Shirt, slim\"\n" + // listed twice, the same
		"long," + strings.Repeat("x", 5000) + ",,\n"
	m, err := parseMetadata(strings.NewReader(in), "styles.csv", "id")
	require.NoError(t, err)
	assert.Equal(t, []string{"id", "gender", "articleType", "name"}, m.Columns())
	for item, want := range map[string]string{
		"15970": "Shirts", "39386": "Jeans", "1": "", "2": "",
		// By file name or path, with or without extension.
		"15970.jpg": "Shirts", "images/39386.png": "Jeans", `C:\photos\15970.jpg`: "Shirts", "sub/dir/15970": "Shirts",
	} {
		assert.Equal(t, want, m.Value(item, "articleType"), "articleType of %q", item)
	}
	assert.Equal(t, "Turtle Check Men Navy Blue Shirt, slim", m.Value("15970", "name"))
	assert.Equal(t, "", m.Value("15970", "colour"), "a column not in the header")
	assert.Equal(t, "15970", m.Value("15970.jpg", "id"))
	assert.Len(t, m.Value("long", "gender"), 5000, "values of any length")

	// An ID that is itself a file name is matched exactly first.
	m, err = parseMetadata(strings.NewReader("file,colour\n7.jpg,red\n7,blue\n"), "x.csv", "file")
	require.NoError(t, err)
	assert.Equal(t, "red", m.Value("7.jpg", "colour"))
	assert.Equal(t, "blue", m.Value("dir/7.png", "colour"))
	assert.Equal(t, "red", m.Value("dir/7.jpg.jpg", "colour")) // base name without extension

	for _, tc := range []struct {
		name, in string
		line     int
		msg      string
	}{
		{"empty", "", 1, "empty file"},
		{"no id column", "ID,articleType\n1,Shirts\n", 1, `no column "id"`},
		{"short row", "id,articleType\n1,Shirts\n2\n", 3, "wrong number of fields"},
		{"stray quote", "id,articleType\n1,Sh\"irts\n", 2, "quote"},
		{"empty id", "id,articleType\n1,Shirts\n,Jeans\n", 3, "empty id"},
		{"conflict", "id,articleType\n1,Shirts\n2,Jeans\n1,Jeans\n", 4, "listed again"},
	} {
		_, err := parseMetadata(strings.NewReader(tc.in), "styles.csv", "id")
		var fe *FormatError
		if assert.ErrorAs(t, err, &fe, tc.name) {
			assert.Equal(t, "styles.csv", fe.Path, tc.name)
			assert.Equal(t, tc.line, fe.Line, tc.name)
			assert.ErrorContains(t, err, tc.msg, tc.name)
		}
	}

	path := filepath.Join(t.TempDir(), "styles.csv")
	require.NoError(t, os.WriteFile(path, []byte(in), 0o644))
	m, err = ReadMetadata(path, "id")
	require.NoError(t, err)
	assert.Equal(t, "Jeans", m.Value("39386.jpg", "articleType"))
	_, err = ReadMetadata(path, "articleType")
	assert.ErrorContains(t, err, path+": line 4: empty articleType")
	_, err = ReadMetadata(filepath.Join(t.TempDir(), "none.csv"), "id")
	assert.ErrorIs(t, err, os.ErrNotExist, "missing file")
}

// TestReadMetadataFashion reads the styles.csv of the reference catalogue.
func TestReadMetadataFashion(t *testing.T) {
	const path = "../shared/fashion/styles.csv"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("reference catalogue %s absent: %v", path, err)
	}
	m, err := ReadMetadata(path, "id")
	require.NoError(t, err)
	assert.Equal(t, "Backpacks", m.Value("1525.jpg", "articleType"))
	assert.Equal(t, "Puma Unisex Logo Cap", m.Value("images/1535.jpg", "productDisplayName"))
	assert.Len(t, m.rows, 3000)
}

func FuzzReadMetadata(f *testing.F) {
	f.Add("\ufeffid,type\n1,Shirts\n 2 ,\"Jeans, blue\"\n", "1.jpg")
	f.Add("id,type\n1,a\n1,b\n", "1")
	f.Add("id\n\"x\"y\n", "x")
	f.Add("a,id,id\n1,2,3\n", "dir/2.png")
	f.Fuzz(func(t *testing.T, text, item string) {
		m, err := parseMetadata(strings.NewReader(text), "fuzz.csv", "id")
		if err != nil {
			var fe *FormatError
			if !assert.ErrorAs(t, err, &fe) || fe.Path != "fuzz.csv" || fe.Line < 1 {
				t.Fatalf("error without file and line: %v", err)
			}
			return
		}
		for _, c := range m.Columns() {
			m.Value(item, c) // never panics
		}
		for id, row := range m.rows {
			if id == "" || len(row) != len(m.columns) || m.Value(id, "id") != id {
				t.Fatalf("row %q: %q", id, row)
			}
		}
	})
}
