package cli

// Checking outputs before long work, and the report of failed images.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/stylespace/style"
)

// FailuresFile is the name of the failure report the programs write when
// images fail (the same name examples/train's study uses).
const FailuresFile = "failed_images.tsv"

// CheckFile returns an error naming path unless a file can be written
// there: its folder exists and takes new files, and path is not a folder.
// It creates no file it does not remove.
func CheckFile(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("cannot write %s: it is a folder", path)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cannot write %s: folder %s does not exist", path, dir)
	case err != nil:
		return fmt.Errorf("cannot write %s: %w", path, err)
	case !fi.IsDir():
		return fmt.Errorf("cannot write %s: %s is not a folder", path, dir)
	}
	return probe(dir, path)
}

// CheckFolder creates the output folder dir if needed and returns an error
// naming it unless files can be written in it.
func CheckFolder(dir string) error {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("cannot create output folder %s: %w", dir, unwrapPath(err))
	}
	return probe(dir, dir)
}

// probe creates and removes a file in dir; what names the output in the
// error.
func probe(dir, what string) error {
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", what, unwrapPath(err))
	}
	name := f.Name()
	f.Close()
	os.Remove(name)
	return nil
}

// unwrapPath returns the error inside a *fs.PathError, whose path the
// caller names already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// CheckImageFolder returns an error unless dir is an existing folder.
func CheckImageFolder(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("image folder %s does not exist", dir)
	case err != nil:
		return fmt.Errorf("image folder %s: %w", dir, unwrapPath(err))
	case !fi.IsDir():
		return fmt.Errorf("image folder %s is not a folder", dir)
	}
	return nil
}

// Exclude returns names without the files among outputs: the names are
// relative to the folder dir, the outputs paths as given on the command
// line, so that a program indexing "." never indexes what it writes.
func Exclude(names []string, dir string, outputs []string) []string {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return names
	}
	drop := map[string]bool{}
	var dropDirs []string
	for _, o := range outputs {
		if o == "" {
			continue
		}
		abs, err := filepath.Abs(o)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(absDir, abs)
		if err != nil || !filepath.IsLocal(rel) {
			continue
		}
		rel = filepath.ToSlash(rel)
		if fi, err := os.Stat(o); err == nil && fi.IsDir() {
			dropDirs = append(dropDirs, rel+"/")
		} else {
			drop[rel] = true
		}
	}
	if len(drop) == 0 && len(dropDirs) == 0 {
		return names
	}
	out := names[:0:0]
	for _, n := range names {
		if drop[n] || hasAnyPrefix(n, dropDirs) {
			continue
		}
		out = append(out, n)
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// Cause classifies why an image failed, for the summary: "not found",
// "with invalid names", "too large", "not readable as images" or "failed
// for other reasons".
func Cause(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "not found"
	case errors.Is(err, style.ErrInvalidName):
		return "with invalid names"
	case errors.Is(err, style.ErrImageTooLarge):
		return "too large"
	case errors.Is(err, style.ErrFormat):
		return "not readable as images"
	}
	return "failed for other reasons"
}

// Count formats n with thousands separators: 1,640.
func Count(n int) string {
	s, sign := strconv.Itoa(n), ""
	if n < 0 {
		// Not Count(-n): -n overflows for the smallest int.
		s, sign = s[1:], "-"
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return sign + s
}

// Summary describes failed images by cause, most frequent first, one line
// each: "1,640 of 1,640 images not found in DIR".
func Summary(failed []style.ImageFailure, total int, where string) []string {
	counts := map[string]int{}
	for _, f := range failed {
		counts[Cause(f.Err)]++
	}
	causes := make([]string, 0, len(counts))
	for c := range counts {
		causes = append(causes, c)
	}
	sort.Slice(causes, func(i, j int) bool {
		if counts[causes[i]] != counts[causes[j]] {
			return counts[causes[i]] > counts[causes[j]]
		}
		return causes[i] < causes[j]
	})
	lines := make([]string, len(causes))
	for i, c := range causes {
		lines[i] = fmt.Sprintf("%s of %s images %s", Count(counts[c]), Count(total), c)
		if c == "not found" && where != "" {
			lines[i] += " in " + where
		}
	}
	return lines
}

// WriteFailures writes the failure report path (name, tab, error; a
// header first) atomically.
func WriteFailures(path string, failed []style.ImageFailure) error {
	var b strings.Builder
	b.WriteString("image\terror\n")
	for _, f := range failed {
		msg := strings.NewReplacer("\t", " ", "\n", " ").Replace(Message(f.Err))
		fmt.Fprintf(&b, "%s\t%s\n", f.Name, msg)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
	}
	_, err = io.WriteString(tmp, b.String())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cannot write %s: %w", path, unwrapPath(err))
	}
	return nil
}

// ReportFailures writes the failure report path when some images failed
// (and removes a stale one otherwise), and prints the summary by cause on
// w, naming the report and the first few failures.
func ReportFailures(w io.Writer, path string, failed []style.ImageFailure, total int, where string) error {
	if len(failed) == 0 {
		if path != "" {
			os.Remove(path)
		}
		return nil
	}
	for _, line := range Summary(failed, total, where) {
		fmt.Fprintf(w, "failed: %s\n", line)
	}
	for i, f := range failed {
		if i == 3 {
			break
		}
		fmt.Fprintf(w, "  %s: %s\n", f.Name, Message(f.Err))
	}
	if path == "" {
		return nil
	}
	if err := WriteFailures(path, failed); err != nil {
		return err
	}
	fmt.Fprintf(w, "  all %s listed in %s\n", Count(len(failed)), path)
	return nil
}
