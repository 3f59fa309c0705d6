// Package atomicfile writes files atomically: a reader sees either the
// previous file or the complete new one, never a partial write.
package atomicfile

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// Write writes the file path through write into a temporary file in the
// same folder, syncs it and renames it over path. On any error the
// temporary file is removed, path is left untouched and the error is a
// *fs.PathError with Op "write" and Path path.
//
// A new file gets mode 0666 less the process umask, as os.Create gives. A
// file that is replaced keeps its permission bits.
func Write(path string, write func(w io.Writer) error) (err error) {
	perm, keep := fs.FileMode(0o666), false
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		perm, keep = fi.Mode().Perm(), true
	}
	// Create with owner write so the new file can be written whatever the
	// old one's mode, but never wider than the final mode for others.
	f, err := createTemp(path, perm|0o200)
	if err != nil {
		return wrap(path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = write(bw); err != nil {
		return wrap(path, err)
	}
	if err = bw.Flush(); err != nil {
		return wrap(path, err)
	}
	if keep {
		// The umask narrowed the mode the file was created with.
		if err = f.Chmod(perm); err != nil {
			return wrap(path, err)
		}
	}
	if err = f.Sync(); err != nil {
		return wrap(path, err)
	}
	if err = f.Close(); err != nil {
		return wrap(path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return wrap(path, err)
	}
	return nil
}

func wrap(path string, err error) error {
	return &fs.PathError{Op: "write", Path: path, Err: err}
}

// createTemp creates a new file ".<base>.tmp<random>" beside path with the
// given permission bits (less the umask), as os.CreateTemp does with 0600.
func createTemp(path string, perm fs.FileMode) (*os.File, error) {
	dir, base := filepath.Split(path)
	for try := 0; ; try++ {
		name := filepath.Join(dir, "."+base+".tmp"+strconv.FormatUint(uint64(rand.Uint32()), 10))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) && try < 10000 {
			continue
		}
		return f, err
	}
}
