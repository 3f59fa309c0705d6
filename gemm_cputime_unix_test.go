//go:build unix

package style

import "syscall"

// processCPUSeconds returns the user+system CPU time of the process. On a
// shared machine, flops per CPU-second measure the code independently of
// how much of the machine it got.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
