package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
)

// Output files, in the output directory and in each shard's folder.
const (
	failuresFile = "failures.jsonl" // the dead-letter report, one JSON Failure per line, sorted by image
)

// sortFailures sorts dead letters by image.
func sortFailures(fs []Failure) {
	slices.SortFunc(fs, func(a, b Failure) int { return strings.Compare(a.Image, b.Image) })
}

// encodeFailures writes dead letters as JSON lines.
func encodeFailures(w io.Writer, fs []Failure) error {
	enc := json.NewEncoder(w)
	for _, x := range fs {
		if err := enc.Encode(x); err != nil {
			return err
		}
	}
	return nil
}

// decodeFailures reads a dead-letter report read from path.
func decodeFailures(data []byte, path string) ([]Failure, error) {
	var fs []Failure
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var x Failure
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, line, err)
		}
		fs = append(fs, x)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return fs, nil
}

// ReadFailures reads a dead-letter report written by the pipeline.
func ReadFailures(path string) ([]Failure, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeFailures(data, path)
}

// joinPath joins a directory and a file name, for local paths and Beam
// filesystem URLs alike.
func joinPath(dir, name string) string {
	if strings.Contains(dir, "://") {
		return strings.TrimSuffix(dir, "/") + "/" + name
	}
	return filepath.Join(dir, filepath.FromSlash(name))
}

// writeOutput writes a file through write: atomically (temporary file and
// rename) for a local path, through the Beam filesystem for a URL.
func writeOutput(ctx context.Context, path string, write func(w io.Writer) error) error {
	if strings.Contains(path, "://") {
		fs, err := filesystem.New(ctx, path)
		if err != nil {
			return err
		}
		defer fs.Close()
		w, err := fs.OpenWrite(ctx, path)
		if err != nil {
			return err
		}
		bw := bufio.NewWriter(w)
		if err := write(bw); err != nil {
			w.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		if err := bw.Flush(); err != nil {
			w.Close()
			return fmt.Errorf("write %s: %w", path, err)
		}
		return w.Close()
	}
	return writeLocalAtomic(path, write)
}

// writeLocalAtomic writes path through a temporary file in the same
// directory, renamed into place only when everything was written.
func writeLocalAtomic(path string, write func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = write(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
