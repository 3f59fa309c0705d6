package resnet

import (
	"fmt"
	"testing"
)

// BenchmarkResNet50Forward runs the full-size generated ResNet-50 on
// batches of 1 and 8 generated 224x224 images and reports the wall and
// CPU seconds per image (the CPU time is far less sensitive to other
// processes' load on a shared machine), next to which
// testdata/ort/bench.mjs prints ONNX Runtime's.
func BenchmarkResNet50Forward(b *testing.B) {
	net, _ := newGenerated(b, 1, nil)
	for _, n := range []int{1, 8} {
		x := GenerateInput(0, n, 224, 224)
		dst := make([]float32, n*net.Features())
		ws := new(Workspace)
		net.ForwardTo(dst, x, n, 224, 224, ws)
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			cpu0 := processCPUSeconds()
			for b.Loop() {
				net.ForwardTo(dst, x, n, 224, 224, ws)
			}
			images := float64(b.N * n)
			b.ReportMetric(b.Elapsed().Seconds()/images, "s/image")
			b.ReportMetric((processCPUSeconds()-cpu0)/images, "cpu-s/image")
			b.ReportMetric(0, "ns/op")
		})
	}
}
