// Times ONNX Runtime on the full-size generated ResNet-50
// (build/resnet50_d1.onnx, written by reference.mjs) with all graph
// optimisations and 2 intra-op threads, on generated 224x224 images, and
// prints, per batch size, the wall and CPU time per image in the units
// of the Go benchmark BenchmarkResNet50Forward (s/image, cpu-s/image).
//
// Usage: node bench.mjs [seconds per batch size, default 10] [batch sizes, default 1,8] [threads, default 2]
import os from "node:os";
import ort from "onnxruntime-node";
import { generateInput } from "./model.mjs";

const seconds = Number(process.argv[2] ?? 10);
const batches = (process.argv[3] ?? "1,8").split(",").map(Number);
const threads = Number(process.argv[4] ?? 2);
const s = await ort.InferenceSession.create("build/resnet50_d1.onnx", {
  graphOptimizationLevel: "all",
  executionMode: "sequential",
  intraOpNumThreads: threads,
  interOpNumThreads: 1,
});
console.log(`onnxruntime-node ${ort.env.versions.node}, ${threads} intra-op threads, cpu: ${os.cpus()[0].model}`);
for (const n of batches) {
  const feeds = { input: new ort.Tensor("float32", generateInput(0, n, 224, 224), [n, 3, 224, 224]) };
  for (let i = 0; i < 2; i++) await s.run(feeds); // warm up
  let runs = 0;
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  let t = 0;
  while (t < seconds) {
    await s.run(feeds);
    runs++;
    t = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  const c = process.cpuUsage(c0);
  const cpu = (c.user + c.system) / 1e6;
  console.log(`ORT/batch=${n}\t${runs} runs\t${(t / runs / n).toFixed(5)} s/image\t${(cpu / runs / n).toFixed(5)} cpu-s/image`);
}
await s.release();
