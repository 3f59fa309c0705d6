package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func writeString(s string) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := io.WriteString(w, s)
		return err
	}
}

// requireOnly checks that dir holds path only, with content want: the
// right version and no temporary file left behind.
func requireOnly(t *testing.T, dir, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, want, string(b))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "a temporary file was left behind")
}

func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	require.NoError(t, Write(path, writeString("first")))
	require.NoError(t, Write(path, writeString("second")))
	requireOnly(t, dir, path, "second")
}

// TestWriteFailureKeepsOld checks that a failed write leaves the old file
// and no temporary file, and that the error names the path.
func TestWriteFailureKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.txt")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error {
		if _, err := io.WriteString(w, "partial"); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	var pe *fs.PathError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "write", pe.Op)
	assert.Equal(t, path, pe.Path)
	requireOnly(t, dir, path, "old")

	err = Write(filepath.Join(dir, "missing", "x.txt"), writeString("x"))
	assert.ErrorIs(t, err, fs.ErrNotExist)
}
