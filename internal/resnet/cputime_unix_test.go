//go:build unix

package resnet

import "syscall"

// processCPUSeconds returns the user+system CPU time of the process, which
// benchmarks report per item next to wall time: on a shared machine it is
// far less sensitive to other processes' load.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}
