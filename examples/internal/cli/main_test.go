package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stylespace/style"
)

func TestExitCode(t *testing.T) {
	assert.Equal(t, ExitOK, ExitCode(nil, false))
	assert.Equal(t, ExitOK, ExitCode(flag.ErrHelp, false))
	assert.Equal(t, ExitError, ExitCode(errors.New("x"), false))
	assert.Equal(t, ExitUsage, ExitCode(fmt.Errorf("wrapped: %w", Usagef("-k %d", 0)), false))
	assert.Equal(t, ExitInterrupted, ExitCode(context.Canceled, true))
	assert.Equal(t, ExitInterrupted, ExitCode(nil, true))
}

func TestReport(t *testing.T) {
	var b bytes.Buffer
	hint := "run the same command again to resume"
	code := report(&b, "train", Resumable(fmt.Errorf("study: features: %w", context.Canceled), hint), true)
	assert.Equal(t, ExitInterrupted, code)
	assert.Equal(t, "train: interrupted; run the same command again to resume\n", b.String())

	// Interrupted with nothing to resume: no hint.
	b.Reset()
	report(&b, "train", context.Canceled, true)
	assert.Equal(t, "train: interrupted\n", b.String())

	// No interruption: no "interrupted", internal prefixes stripped.
	b.Reset()
	code = report(&b, "train", Resumable(errors.New("study: Study.Run: picture: cannot write x.png"), hint), false)
	assert.Equal(t, ExitError, code)
	assert.Equal(t, "train: cannot write x.png\n", b.String())

	b.Reset()
	assert.Equal(t, ExitOK, report(&b, "train", flag.ErrHelp, false))
	assert.Empty(t, b.String())
	assert.Nil(t, Resumable(nil, hint))
}

func TestMessage(t *testing.T) {
	for in, want := range map[string]string{
		"style: image folder: open x: no such file":                   "image folder: open x: no such file",
		"head h.safetensors: style: malformed input":                  "head h.safetensors: malformed input",
		"study: picture: Scatter: cannot write a.png":                 "cannot write a.png",
		"study: Study.Run: feature store: style: broken":              "feature store: broken",
		"plain message: styles.csv line 2":                            "plain message: styles.csv line 2",
		"-weights-divisor 3: style: GenerateWeights: width divisor 3": "-weights-divisor 3: width divisor 3",
		"Shirts: style: SiameseHead.Compare: feature 3":               "Shirts: feature 3",
	} {
		assert.Equal(t, want, Message(errors.New(in)), in)
	}
}

func TestParseInterleaved(t *testing.T) {
	fl := flag.NewFlagSet("x", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	j := fl.Bool("json", false, "")
	k := fl.Int("k", 1, "")
	pos, err := Parse(fl, []string{"a.jpg", "-k", "3", "b.jpg", "-json", "--", "-c.jpg"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a.jpg", "b.jpg", "-c.jpg"}, pos)
	assert.True(t, *j)
	assert.Equal(t, 3, *k)

	_, err = Parse(fl, []string{"a.jpg", "-nope"})
	var u *UsageError
	assert.ErrorAs(t, err, &u)
	_, err = Parse(fl, []string{"a.jpg", "-h"})
	assert.ErrorIs(t, err, flag.ErrHelp)
}

func TestCheckOutputs(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, CheckFile(filepath.Join(dir, "a.png")))
	err := CheckFile(filepath.Join(dir, "nope", "a.png"))
	assert.ErrorContains(t, err, "folder "+filepath.Join(dir, "nope")+" does not exist")
	assert.ErrorContains(t, CheckFile(dir), "is a folder")
	err = CheckImageFolder(filepath.Join(dir, "missing"))
	assert.EqualError(t, err, "image folder "+filepath.Join(dir, "missing")+" does not exist")
	require.NoError(t, CheckFolder(filepath.Join(dir, "new", "out")))
	entries, _ := os.ReadDir(filepath.Join(dir, "new", "out"))
	assert.Empty(t, entries, "the check left a file behind")

	if runtime.GOOS != "windows" && os.Getuid() != 0 {
		ro := filepath.Join(dir, "ro")
		require.NoError(t, os.Mkdir(ro, 0o555))
		assert.ErrorContains(t, CheckFile(filepath.Join(ro, "cat.stylecat")), "cannot write "+filepath.Join(ro, "cat.stylecat"))
		assert.ErrorContains(t, CheckFolder(ro), "cannot write "+ro)
	}
}

func TestExclude(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.Mkdir("out", 0o777))
	names := []string{"a.jpg", "map.png", "out/x.png", "sub/b.jpg"}
	got := Exclude(names, ".", []string{"map.png", "out", filepath.Join(dir, "sub", "c.png"), "../elsewhere.png", ""})
	assert.Equal(t, []string{"a.jpg", "sub/b.jpg"}, got)
}

func TestSummary(t *testing.T) {
	var failed []style.ImageFailure
	for i := range 1640 {
		failed = append(failed, style.ImageFailure{Name: fmt.Sprintf("%d.jpg", i), Err: fmt.Errorf("open %d.jpg: %w", i, fs.ErrNotExist)})
	}
	assert.Equal(t, []string{"1,640 of 1,640 images not found in DIR"}, Summary(failed, 1640, "DIR"))

	mixed := []style.ImageFailure{
		{Name: "a", Err: &style.FormatError{}},
		{Name: "b", Err: fmt.Errorf("x: %w", style.ErrImageTooLarge)},
		{Name: "c", Err: fmt.Errorf("x: %w", style.ErrFormat)},
		{Name: "d", Err: fmt.Errorf("x: %w", style.ErrInvalidName)},
		{Name: "e", Err: errors.New("boom")},
	}
	assert.Equal(t, []string{
		"2 of 10 images not readable as images",
		"1 of 10 images failed for other reasons",
		"1 of 10 images too large",
		"1 of 10 images with invalid names",
	}, Summary(mixed, 10, "DIR"))
	assert.Equal(t, "0", Count(0))
	assert.Equal(t, "999", Count(999))
	assert.Equal(t, "1,234,567", Count(1234567))
	assert.Equal(t, "-1,234", Count(-1234))
	minInt := map[int]string{32: "-2,147,483,648", 64: "-9,223,372,036,854,775,808"}[strconv.IntSize]
	assert.Equal(t, minInt, Count(math.MinInt))

	path := filepath.Join(t.TempDir(), FailuresFile)
	var w bytes.Buffer
	require.NoError(t, ReportFailures(&w, path, failed, 1640, "DIR"))
	assert.Contains(t, w.String(), "failed: 1,640 of 1,640 images not found in DIR\n")
	assert.Contains(t, w.String(), "all 1,640 listed in "+path)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	assert.Len(t, lines, 1641)
	assert.Equal(t, "image\terror", lines[0])
	assert.True(t, strings.HasPrefix(lines[1], "0.jpg\t"), lines[1])
}

func TestDescribe(t *testing.T) {
	assert.Equal(t, "generated vgg16 (seed 2, width divisor 8, caffe preprocessing)",
		Describe(style.Backbone{Arch: style.VGG16, Preprocess: style.PreprocessCaffe, Seed: 2, Divisor: 8}))
	assert.Equal(t, "vgg16 weight file with SHA-256 abababababab..., torch preprocessing",
		Describe(style.Backbone{Arch: style.VGG16, Preprocess: style.PreprocessTorch, SHA256: strings.Repeat("ab", 32), Divisor: 1}))
}
