//go:build !unix

package engine

// processCPUSeconds is unavailable here; benchmarks then report 0.
func processCPUSeconds() float64 { return 0 }
