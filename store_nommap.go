//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package style

import "os"

// mmapStoreFile is not supported on this system: FeatureStore reads
// records with ReadAt.
func mmapStoreFile(f *os.File, size int64) ([]byte, error) { return nil, nil }

func munmapStoreFile(b []byte) error { return nil }

// lockStoreFile does nothing on this system: two writers of the same store
// are not detected.
func lockStoreFile(f *os.File) error { return nil }
