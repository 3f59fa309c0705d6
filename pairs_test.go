package style

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
		got, err := ParsePairs(strings.NewReader(text), name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	// Without a header the lines start at 1.
	got, err := ParsePairs(strings.NewReader("x.jpg;y.jpg;1\n"), "noheader")
	if err != nil || len(got) != 1 || got[0] != (Pair{A: "x.jpg", B: "y.jpg", Label: 1, Line: 1}) {
		t.Errorf("no header: got %+v, %v", got, err)
	}
	got, err = ParsePairs(strings.NewReader(""), "empty")
	if err != nil || len(got) != 0 {
		t.Errorf("empty input: got %+v, %v", got, err)
	}
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
		_, err := ParsePairs(strings.NewReader(c.text), "pairs.csv")
		var fe *FormatError
		if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want a *FormatError", c.name, err)
			continue
		}
		if fe.Path != "pairs.csv" || fe.Line != c.line || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %q (line %d), want line %d and %q", c.name, err, fe.Line, c.line, c.msg)
		}
		if !strings.Contains(err.Error(), "pairs.csv: line ") {
			t.Errorf("%s: message %q does not name the file and line", c.name, err)
		}
	}
}

func TestReadPairsMissing(t *testing.T) {
	_, err := ReadPairs(filepath.Join(t.TempDir(), "none.csv"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
}

func TestUniqueNames(t *testing.T) {
	pairs := []Pair{{A: "x", B: "y"}, {A: "y", B: "z"}, {A: "x", B: "x"}}
	if got := UniqueNames(pairs); !reflect.DeepEqual(got, []string{"x", "y", "z"}) {
		t.Fatalf("got %v", got)
	}
}

// readAmazonPairs reads the study's pair list, skipping the test if the
// shared reference data is absent.
func readAmazonPairs(t testing.TB) []Pair {
	t.Helper()
	if _, err := os.Stat(amazonPairsPath); err != nil {
		t.Skipf("reference data %s absent: %v", amazonPairsPath, err)
	}
	pairs, err := ReadPairs(amazonPairsPath)
	if err != nil {
		t.Fatal(err)
	}
	return pairs
}

func TestReadPairsAmazon(t *testing.T) {
	pairs := readAmazonPairs(t)
	pos := 0
	for _, p := range pairs {
		pos += p.Label
	}
	if len(pairs) != 35000 || pos != 2040 {
		t.Fatalf("got %d pairs with %d positives, want 35000 and 2040", len(pairs), pos)
	}
	// The reference notes give 55,565 distinct images; counting exact
	// strings independently (Python set of both columns) gives 55,566,
	// with no two names equal after URL-unescaping, case folding or
	// trimming, so 55,566 is the count of distinct images to fetch.
	if n := len(UniqueNames(pairs)); n != 55566 {
		t.Fatalf("got %d distinct names, want 55566", n)
	}
	// The header is line 1.
	first := pairs[0]
	if first != (Pair{A: "41dTWz5u3OL._SX395_.jpg", B: "516EJv4m1XL._SY300_.jpg", Label: 0, Line: 2}) {
		t.Fatalf("first pair %+v", first)
	}
	if last := pairs[len(pairs)-1]; last.Line != 35001 {
		t.Fatalf("last pair on line %d, want 35001", last.Line)
	}
}

func FuzzParsePairs(f *testing.F) {
	f.Add("pic1;pic2;score\r\na.jpg;b.jpg;0\r\n")
	f.Add("\ufeffa,b,label\n\"x,y\",z,1\n\n")
	f.Add("a.jpg\tb.jpg\t1.0\nc\td\t0")
	f.Add("a;b\"c;1\n")
	f.Fuzz(func(t *testing.T, text string) {
		pairs, err := ParsePairs(strings.NewReader(text), "fuzz.csv")
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
