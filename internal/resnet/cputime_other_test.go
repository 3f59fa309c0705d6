//go:build !unix

package resnet

// processCPUSeconds is unavailable here; benchmarks then report 0.
func processCPUSeconds() float64 { return 0 }
