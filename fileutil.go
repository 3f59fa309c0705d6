package style

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// writeFileAtomic writes a file through write into a temporary file in the
// same directory, syncs it and renames it over path, so that readers see
// either the old file or the complete new one, never a partial write. On
// any error the temporary file is removed and path is left untouched.
func writeFileAtomic(path string, write func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("style: write %s: %w", path, err)
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
		return fmt.Errorf("style: write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("style: write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("style: write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("style: write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("style: write %s: %w", path, err)
	}
	return nil
}
