// Builds the generated ResNet-50 (widths divided by each divisor given,
// default 8 and 1) as ONNX models in build/, runs them with ONNX Runtime
// on two generated 224x224 images and writes the features the Go tests
// compare with: ../resnet50_d<divisor>.features.f32 (2 x C little-endian
// float32), computed with graph optimisations disabled (every batch norm
// run as its own node), and ../weights_check.json (a few generated values,
// to check the two implementations of the formula against each other).
//
// Usage: node reference.mjs [divisor...]
import fs from "node:fs";
import ort from "onnxruntime-node";
import { generate, generateInput, onnxModel } from "./model.mjs";

const divisors = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [8, 1];
const N = 2, H = 224, W = 224;
fs.mkdirSync("build", { recursive: true });
const input = generateInput(0, N, H, W);
const check = { input_first: Array.from(input.slice(0, 4)), input_last: Array.from(input.slice(-2)) };

function relL2(a, b) {
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    d += (a[i] - b[i]) ** 2;
    n += b[i] ** 2;
  }
  return Math.sqrt(d / n);
}

for (const d of divisors) {
  let t0 = Date.now();
  const convs = generate(0, d);
  const model = onnxModel(convs);
  const path = `build/resnet50_d${d}.onnx`;
  fs.writeFileSync(path, model);
  console.log(`divisor ${d}: weights and ${path} (${(model.length / 1e6).toFixed(1)} MB) in ${((Date.now() - t0) / 1e3).toFixed(1)} s`);
  const pick = (c) => ({
    name: c.name,
    weight_first: Array.from(c.weight.slice(0, 3)),
    weight_last: c.weight[c.weight.length - 1],
    gamma_first: c.gamma[0], beta_first: c.beta[0], mean_first: c.mean[0], var_last: c.variance[c.cout - 1],
  });
  check[`d${d}`] = [pick(convs[0]), pick(convs[10]), pick(convs[convs.length - 1])];
  const feeds = { input: new ort.Tensor("float32", input, [N, 3, H, W]) };
  const out = {};
  for (const level of ["disabled", "all"]) {
    const s = await ort.InferenceSession.create(path, { graphOptimizationLevel: level, intraOpNumThreads: 2, interOpNumThreads: 1 });
    t0 = Date.now();
    out[level] = (await s.run(feeds)).features.data;
    console.log(`divisor ${d}: ORT (optimisations ${level}) ${out[level].length / N} features per image in ${Date.now() - t0} ms`);
    await s.release();
  }
  console.log(`divisor ${d}: relative L2 difference, optimised vs not: ${relL2(out.all, out.disabled).toExponential(2)}`);
  const f = out.disabled;
  fs.writeFileSync(`../resnet50_d${d}.features.f32`, Buffer.from(f.buffer, f.byteOffset, f.byteLength));
}
fs.writeFileSync("../weights_check.json", JSON.stringify(check, null, 1) + "\n");
