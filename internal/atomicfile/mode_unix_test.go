//go:build unix

package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withUmask sets the process umask for the rest of the test.
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return fi.Mode().Perm()
}

// TestWriteNewFileMode checks that a new file gets 0666 less the umask, as
// os.Create gives, not the 0600 of os.CreateTemp.
func TestWriteNewFileMode(t *testing.T) {
	withUmask(t, 0o022)
	path := filepath.Join(t.TempDir(), "new.txt")
	require.NoError(t, Write(path, writeString("x")))
	assert.Equal(t, "-rw-r--r--", mode(t, path).String())

	withUmask(t, 0o077)
	private := filepath.Join(t.TempDir(), "private.txt")
	require.NoError(t, Write(private, writeString("x")))
	assert.Equal(t, "-rw-------", mode(t, private).String())
}

// TestWriteKeepsMode checks that a replaced file keeps its permission
// bits, narrower or wider than the umask allows for a new file.
func TestWriteKeepsMode(t *testing.T) {
	withUmask(t, 0o022)
	for _, perm := range []fs.FileMode{0o640, 0o600, 0o666, 0o444} {
		path := filepath.Join(t.TempDir(), "old.txt")
		require.NoError(t, os.WriteFile(path, []byte("old"), 0o600))
		require.NoError(t, os.Chmod(path, perm))
		require.NoError(t, Write(path, writeString("new")))
		assert.Equal(t, perm.String(), mode(t, path).String(), "replacing a %v file", perm)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, "new", string(b))
	}
}
