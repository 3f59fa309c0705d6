//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package style

import (
	"math"
	"os"
	"syscall"
)

// mmapStoreFile maps the first size bytes of f read-only and shared, so
// that pages written later through f stay visible. It returns nil, nil if
// size does not fit the address space.
func mmapStoreFile(f *os.File, size int64) ([]byte, error) {
	if size <= 0 || size > math.MaxInt {
		return nil, nil
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

func munmapStoreFile(b []byte) error { return syscall.Munmap(b) }

// lockStoreFile takes an exclusive advisory lock on f without waiting.
func lockStoreFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
