// The generated ResNet-50 of internal/resnet (resnet.Generate,
// resnet.GenerateInput), computed here independently in JavaScript, and
// written as an ONNX model with explicit BatchNormalization nodes, so
// that the Go side's batch-norm folding is checked too.

const M64 = (1n << 64n) - 1n;

// splitmix64 and u(key) exactly as documented on resnet.Generate.
function splitmix64(x) {
  x = (x + 0x9e3779b97f4a7c15n) & M64;
  let z = x;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

function makeU(seed) {
  const mix = (BigInt(seed) * 0x9e3779b97f4a7c15n) & M64;
  return (key) => Number(splitmix64(key ^ mix) >> 40n) / 16777216;
}

// layers50 mirrors resnet.Layers50: torchvision's module order.
export function layers50(divisor) {
  const ls = [{ name: "conv1", bn: "bn1", cin: 3, cout: 64 / divisor, k: 7, s: 2, p: 3 }];
  const blocks = [3, 4, 6, 3];
  const widths = [[64, 256], [128, 512], [256, 1024], [512, 2048]];
  let cin = 64 / divisor;
  for (let li = 0; li < 4; li++) {
    const mid = widths[li][0] / divisor, out = widths[li][1] / divisor;
    for (let b = 0; b < blocks[li]; b++) {
      const s = b === 0 && li > 0 ? 2 : 1;
      const p = `layer${li + 1}.${b}.`;
      ls.push({ name: p + "conv1", bn: p + "bn1", cin, cout: mid, k: 1, s: 1, p: 0 });
      ls.push({ name: p + "conv2", bn: p + "bn2", cin: mid, cout: mid, k: 3, s, p: 1 });
      ls.push({ name: p + "conv3", bn: p + "bn3", cin: mid, cout: out, k: 1, s: 1, p: 0 });
      if (b === 0) {
        ls.push({ name: p + "downsample.0", bn: p + "downsample.1", cin, cout: out, k: 1, s, p: 0, shortcut: true });
      }
      cin = out;
    }
  }
  return ls;
}

// generate mirrors resnet.Generate: the weights and batch-norm
// parameters of every layer, as Float32Arrays.
export function generate(seed, divisor) {
  const u = makeU(seed);
  return layers50(divisor).map((l, idx) => {
    const fanIn = l.cin * l.k * l.k;
    const scale = Math.sqrt(6 / fanIn);
    const base = BigInt(idx) << 32n;
    const weight = new Float32Array(l.cout * fanIn);
    for (let i = 0; i < weight.length; i++) {
      weight[i] = scale * (2 * u(base | BigInt(i)) - 1);
    }
    const bn = (q, f) => {
      const v = new Float32Array(l.cout);
      for (let j = 0; j < l.cout; j++) v[j] = f(u(base | (1n << 31n) | (BigInt(q) << 24n) | BigInt(j)));
      return v;
    };
    return {
      ...l,
      weight,
      gamma: bn(0, (x) => 1 + 0.25 * (2 * x - 1)),
      beta: bn(1, (x) => 0.1 * (2 * x - 1)),
      mean: bn(2, (x) => 0.1 * (2 * x - 1)),
      variance: bn(3, (x) => 0.5 + x),
    };
  });
}

// generateInput mirrors resnet.GenerateInput.
export function generateInput(seed, n, h, w) {
  const u = makeU(seed);
  const x = new Float32Array(n * 3 * h * w);
  const base = 0xffffn << 32n;
  for (let i = 0; i < x.length; i++) x[i] = 2 * (2 * u(base | BigInt(i)) - 1);
  return x;
}

// A minimal protocol-buffer writer, enough for onnx.proto's ModelProto.
class PB {
  constructor() {
    this.chunks = [];
  }
  raw(buf) {
    this.chunks.push(buf);
    return this;
  }
  varint(n) {
    const b = [];
    let v = BigInt(n);
    while (v >= 0x80n) {
      b.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    b.push(Number(v));
    return this.raw(Buffer.from(b));
  }
  tag(field, wire) {
    return this.varint((field << 3) | wire);
  }
  int(field, n) {
    return this.tag(field, 0).varint(n);
  }
  float(field, f) {
    const b = Buffer.alloc(4);
    b.writeFloatLE(f);
    return this.tag(field, 5).raw(b);
  }
  bytes(field, buf) {
    return this.tag(field, 2).varint(buf.length).raw(buf);
  }
  string(field, s) {
    return this.bytes(field, Buffer.from(s, "utf8"));
  }
  msg(field, m) {
    return this.bytes(field, m.done());
  }
  done() {
    return Buffer.concat(this.chunks);
  }
}

const FLOAT = 1; // TensorProto.DataType
const ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS = 7; // AttributeProto.AttributeType

function tensor(name, dims, data) {
  const t = new PB();
  for (const d of dims) t.int(1, d); // dims
  t.int(2, FLOAT); // data_type
  t.string(8, name); // name
  t.bytes(9, Buffer.from(data.buffer, data.byteOffset, data.byteLength)); // raw_data, little-endian
  return t;
}

function attrInts(name, v) {
  const a = new PB().string(1, name);
  for (const x of v) a.int(8, x); // ints
  return a.int(20, ATTR_INTS);
}

function attrInt(name, v) {
  return new PB().string(1, name).int(3, v).int(20, ATTR_INT);
}

function attrFloat(name, v) {
  return new PB().string(1, name).float(2, v).int(20, ATTR_FLOAT);
}

function node(op, inputs, outputs, attrs = []) {
  const n = new PB();
  for (const i of inputs) n.string(1, i);
  for (const o of outputs) n.string(2, o);
  n.string(3, outputs[0]).string(4, op);
  for (const a of attrs) n.msg(5, a);
  return n;
}

function valueInfo(name, dims) {
  const shape = new PB();
  for (const d of dims) {
    const dim = new PB();
    if (typeof d === "string") dim.string(2, d); // dim_param
    else dim.int(1, d); // dim_value
    shape.msg(1, dim);
  }
  const tt = new PB().int(1, FLOAT).msg(2, shape); // TypeProto.Tensor
  return new PB().string(1, name).msg(2, new PB().msg(1, tt));
}

// onnxModel returns the ONNX model (opset 17) of the network convs
// (generate's output): Conv without bias, BatchNormalization (eps 1e-5),
// Relu, MaxPool 3x3/2 pad 1, Add, GlobalAveragePool and Flatten, from
// "input" [N, 3, H, W] to "features" [N, C].
export function onnxModel(convs) {
  const g = new PB();
  const nodes = [];
  const inits = [];
  const convBN = (c, x, relu) => {
    inits.push(tensor(c.name + ".weight", [c.cout, c.cin, c.k, c.k], c.weight));
    inits.push(tensor(c.bn + ".weight", [c.cout], c.gamma));
    inits.push(tensor(c.bn + ".bias", [c.cout], c.beta));
    inits.push(tensor(c.bn + ".running_mean", [c.cout], c.mean));
    inits.push(tensor(c.bn + ".running_var", [c.cout], c.variance));
    nodes.push(node("Conv", [x, c.name + ".weight"], [c.name], [
      attrInts("kernel_shape", [c.k, c.k]), attrInts("strides", [c.s, c.s]), attrInts("pads", [c.p, c.p, c.p, c.p]),
    ]));
    nodes.push(node("BatchNormalization", [c.name, c.bn + ".weight", c.bn + ".bias", c.bn + ".running_mean", c.bn + ".running_var"], [c.bn], [attrFloat("epsilon", 1e-5)]));
    if (!relu) return c.bn;
    nodes.push(node("Relu", [c.bn], [c.bn + ".relu"]));
    return c.bn + ".relu";
  };
  let x = convBN(convs[0], "input", true);
  nodes.push(node("MaxPool", [x], ["maxpool"], [attrInts("kernel_shape", [3, 3]), attrInts("strides", [2, 2]), attrInts("pads", [1, 1, 1, 1])]));
  x = "maxpool";
  for (let i = 1; i < convs.length;) {
    let a = convBN(convs[i], x, true);
    a = convBN(convs[i + 1], a, true);
    a = convBN(convs[i + 2], a, false);
    let short = x;
    i += 3;
    if (i < convs.length && convs[i].shortcut) {
      short = convBN(convs[i], x, false);
      i++;
    }
    const name = convs[i - 1].name.split(".").slice(0, 2).join(".");
    nodes.push(node("Add", [a, short], [name + ".add"]));
    nodes.push(node("Relu", [name + ".add"], [name]));
    x = name;
  }
  nodes.push(node("GlobalAveragePool", [x], ["avgpool"]));
  nodes.push(node("Flatten", ["avgpool"], ["features"], [attrInt("axis", 1)]));
  for (const n of nodes) g.msg(1, n);
  g.string(2, "resnet50_generated");
  for (const t of inits) g.msg(5, t);
  g.msg(11, valueInfo("input", ["N", 3, "H", "W"]));
  g.msg(12, valueInfo("features", ["N", convs[convs.length - 1].cout]));
  const m = new PB();
  m.int(1, 8); // ir_version
  m.string(2, "style internal/resnet testdata");
  m.msg(7, g);
  m.msg(8, new PB().string(1, "").int(2, 17)); // opset_import
  return m.done();
}
