package style

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const amazonPairsPath = "../shared/data/amazon_pairs.csv"

func TestParsePairsFormats(t *testing.T) {
	want := []Pair{
		{A: "a.jpg", B: "b.jpg", Label: 0, Line: 2},
		{A: "c,d.jpg", B: "e.jpg", Label: 1, Line: 3},
	}
	cases := map[string]string{
		"semicolon header CRLF BOM": "\ufeffpic1;pic2;score\r\na.jpg;b.jpg;0\r\nc,d.jpg;e.jpg;1\r\n\r\n\r\n",
		"comma header quoted":       "image_a,image_b,label\na.jpg,b.jpg,0\n\"c,d.jpg\", e.jpg ,1.0\n\n",
		"tab header":                "a\tb\tlabel\na.jpg\tb.jpg\t0\nc,d.jpg\te.jpg\t1",
	}
	for name, text := range cases {
		got, err := parsePairs(strings.NewReader(text), name)
		if assert.NoError(t, err, name) {
			assert.Equal(t, want, got, name)
		}
	}
	// Without a header the lines start at 1.
	got, err := parsePairs(strings.NewReader("x.jpg;y.jpg;1\n"), "noheader")
	require.NoError(t, err, "no header")
	assert.Equal(t, []Pair{{A: "x.jpg", B: "y.jpg", Label: 1, Line: 1}}, got, "no header")
	got, err = parsePairs(strings.NewReader(""), "empty")
	require.NoError(t, err, "empty input")
	assert.Empty(t, got, "empty input")
}

func TestParsePairsErrors(t *testing.T) {
	cases := []struct {
		name, text string
		line       int
		msg        string
	}{
		{"two fields", "pic1;pic2;score\na;b;0\nc;1\n", 3, "want 3 fields"},
		{"four fields", "a.jpg;b.jpg;0\nc;d;1;x\n", 2, "want 3 fields"},
		{"empty first name", "pic1;pic2;score\na;b;1\n;b;0\n", 3, "empty image name in field 1"},
		{"empty second name", "pic1;pic2;score\r\na;  ;1\r\n", 2, "empty image name in field 2"},
		{"label 2", "pic1;pic2;score\na;b;0\n\nc;d;2\n", 4, `label "2" is not 0 or 1`},
		{"label word", "pic1,pic2,score\na,b,yes\n", 2, `label "yes" is not 0 or 1`},
		{"label empty", "a.jpg;b.jpg;\n", 1, `label "" is not 0 or 1`},
		{"label half", "pic1;pic2;score\na;b;0.5\n", 2, `label "0.5"`},
		{"stray quote", "pic1,pic2,score\na,b\"x,1\n", 2, "column"},
	}
	for _, c := range cases {
		_, err := parsePairs(strings.NewReader(c.text), "pairs.csv")
		var fe *FormatError
		if !assert.ErrorAs(t, err, &fe, c.name) {
			continue
		}
		assert.ErrorIs(t, err, ErrFormat, c.name)
		assert.Equal(t, "pairs.csv", fe.Path, c.name)
		assert.Equal(t, c.line, fe.Line, c.name)
		assert.ErrorContains(t, err, c.msg, c.name)
		assert.ErrorContains(t, err, "pairs.csv: line ", "%s: the message does not name the file and line", c.name)
	}
}

func TestReadPairs(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "pairs.csv")
	require.NoError(t, os.WriteFile(path, []byte("pic1;pic2;score\na.jpg;b.jpg;1\nc.jpg;d.jpg;2\n"), 0o644))
	_, err := ReadPairs(ctx, path)
	assert.ErrorContains(t, err, "style: "+path+": line 3: label \"2\" is not 0 or 1")
	_, err = ReadPairs(ctx, filepath.Join(t.TempDir(), "none.csv"))
	assert.ErrorIs(t, err, os.ErrNotExist)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/pairs.csv":
			w.Write([]byte("a.jpg,b.jpg,1\n"))
		case "/bad.csv":
			w.Write([]byte("a.jpg,b.jpg\n"))
		case "/slow.csv":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	pairs, err := ReadPairs(ctx, srv.URL+"/pairs.csv")
	require.NoError(t, err, "over HTTP")
	assert.Equal(t, []Pair{{A: "a.jpg", B: "b.jpg", Label: 1, Line: 1}}, pairs, "over HTTP")
	_, err = ReadPairs(ctx, srv.URL+"/bad.csv")
	assert.ErrorContains(t, err, "style: "+srv.URL+"/bad.csv: line 1: want 3 fields")
	_, err = ReadPairs(ctx, srv.URL+"/none.csv")
	assert.ErrorIs(t, err, fs.ErrNotExist, "HTTP 404")
	assert.EqualError(t, err, "style: GET "+srv.URL+"/none.csv: 404 Not Found")
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = ReadPairs(tctx, srv.URL+"/slow.csv")
	assert.ErrorIs(t, err, context.DeadlineExceeded, "slow server")
	assert.Less(t, time.Since(start), 3*time.Second, "the deadline of ctx was not applied")
}

func TestUniqueNames(t *testing.T) {
	pairs := []Pair{{A: "x", B: "y"}, {A: "y", B: "z"}, {A: "x", B: "x"}}
	assert.Equal(t, []string{"x", "y", "z"}, UniqueNames(pairs))
}

// readAmazonPairs reads the study's pair list, skipping the test if the
// shared reference data is absent.
func readAmazonPairs(t testing.TB) []Pair {
	t.Helper()
	if _, err := os.Stat(amazonPairsPath); err != nil {
		t.Skipf("reference data %s absent: %v", amazonPairsPath, err)
	}
	pairs, err := ReadPairs(context.Background(), amazonPairsPath)
	require.NoError(t, err)
	return pairs
}

func TestReadPairsAmazon(t *testing.T) {
	pairs := readAmazonPairs(t)
	pos := 0
	for _, p := range pairs {
		pos += p.Label
	}
	require.Len(t, pairs, 35000)
	require.Equal(t, 2040, pos, "positives")
	// The reference notes give 55,565 distinct images; counting exact
	// strings independently (Python set of both columns) gives 55,566,
	// with no two names equal after URL-unescaping, case folding or
	// trimming, so 55,566 is the count of distinct images to fetch.
	require.Len(t, UniqueNames(pairs), 55566, "distinct names")
	// The header is line 1.
	assert.Equal(t, Pair{A: "41dTWz5u3OL._SX395_.jpg", B: "516EJv4m1XL._SY300_.jpg", Label: 0, Line: 2}, pairs[0], "first pair")
	assert.Equal(t, 35001, pairs[len(pairs)-1].Line, "line of the last pair")
}

func FuzzParsePairs(f *testing.F) {
	f.Add("pic1;pic2;score\r\na.jpg;b.jpg;0\r\n")
	f.Add("\ufeffa,b,label\n\"x,y\",z,1\n\n")
	f.Add("a.jpg\tb.jpg\t1.0\nc\td\t0")
	f.Add("a;b\"c;1\n")
	f.Fuzz(func(t *testing.T, text string) {
		pairs, err := parsePairs(strings.NewReader(text), "fuzz.csv")
		if err != nil {
			var fe *FormatError
			if errors.As(err, &fe) && (fe.Path != "fuzz.csv" || fe.Line < 1) {
				t.Fatalf("error without file and line: %v", err)
			}
			return
		}
		line := 0
		for _, p := range pairs {
			if p.A == "" || p.B == "" || (p.Label != 0 && p.Label != 1) || p.Line <= line {
				t.Fatalf("bad pair %+v after line %d", p, line)
			}
			line = p.Line
		}
	})
}
