//go:build !unix

package style

// processCPUSeconds is not available here; benchmarks omit the metric.
func processCPUSeconds() float64 { return 0 }
