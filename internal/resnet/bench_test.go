package resnet

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stylespace/style/internal/engine"
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

// BenchmarkResNet50Layers runs each distinct convolution shape of the
// full-size ResNet-50 alone, at batch 1 and 8, on every engine that can
// run it, and reports the CPU time per image and GFLOP per CPU second
// (counting the direct convolution's 2·Out·In·k² flops per output pixel
// for every engine): where the time of BenchmarkResNet50Forward goes.
// The stem runs on 224x224 images, the blocks on the sizes they see.
func BenchmarkResNet50Layers(b *testing.B) {
	type shaped struct {
		Layer
		h int // input size
	}
	ls := Layers50(1)
	shapes := []shaped{{ls[0], 224}}
	h := 56
	for i := 1; i < len(ls); {
		h2 := (h-1)/ls[i+1].Stride + 1
		shapes = append(shapes, shaped{ls[i], h}, shaped{ls[i+1], h}, shaped{ls[i+2], h2})
		i += 3
		if i < len(ls) && ls[i].Shortcut {
			shapes = append(shapes, shaped{ls[i], h})
			i++
		}
		h = h2
	}
	seen := map[string]bool{}
	for _, sh := range shapes {
		key := fmt.Sprintf("%dx%dx%d_to_%d_k%ds%d", sh.In, sh.h, sh.h, sh.Out, sh.Kernel, sh.Stride)
		if seen[key] {
			continue
		}
		seen[key] = true
		c := Conv{Layer: sh.Layer, Weight: GenerateInput(1, 1, sh.Out*sh.In, sh.Kernel*sh.Kernel)[:sh.Out*sh.In*sh.Kernel*sh.Kernel], Bias: make([]float32, sh.Out)}
		algos := map[string]engine.Algorithm{"gemm": engine.Im2col}
		if sh.Kernel == 3 && sh.Stride == 1 {
			algos["winograd"], algos["winograd4x4"] = engine.Winograd, engine.Winograd4x4
		}
		for name, algo := range algos {
			conv, err := newConv3x3(c, Options{Algorithm: algo})
			require.NoError(b, err)
			oh, ow := conv.OutputSize(sh.h, sh.h)
			flops := 2 * float64(sh.Out*sh.In*sh.Kernel*sh.Kernel) * float64(oh*ow)
			for _, n := range []int{1, 8} {
				x := GenerateInput(2, n, sh.In, sh.h*sh.h/3+1)[:n*sh.In*sh.h*sh.h]
				dst := make([]float32, n*sh.Out*oh*ow)
				var ws engine.Workspace
				b.Run(fmt.Sprintf("%s/%s/batch=%d", key, name, n), func(b *testing.B) {
					cpu0 := processCPUSeconds()
					for b.Loop() {
						conv.forward(dst, x, n, sh.h, sh.h, &ws)
					}
					cpu := processCPUSeconds() - cpu0
					images := float64(b.N * n)
					b.ReportMetric(cpu/images*1e3, "cpu-ms/image")
					b.ReportMetric(flops*images/cpu/1e9, "GFLOP/cpu-s")
					b.ReportMetric(flops*images/b.Elapsed().Seconds()/1e9, "GFLOP/s")
					b.ReportMetric(0, "ns/op")
				})
			}
		}
	}
}
