// ort_latency.js: ONNX Runtime's latency for one row and a batch of 64 on a macc export, the
// reference of bench_predict.sh (in-process, one intra-op thread, like the daemon's loop).
//
//   NODE_PATH=.../node_modules node ort_latency.js MODEL.onnx DIM ITERATIONS
'use strict';
const ort = require('onnxruntime-node');

async function main() {
  const [model, dimArg, itArg] = process.argv.slice(2);
  const dim = Number(dimArg);
  const iters = Number(itArg);
  const s = await ort.InferenceSession.create(model,
    { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  for (const rows of [1, 64]) {
    const ns = [];
    for (let i = 0; i < iters; i++) {
      const x = new Float32Array(rows * dim).map(() => Math.random());
      const t = new ort.Tensor('float32', x, [rows, dim]);
      const t0 = process.hrtime.bigint();
      await s.run({ input: t });
      ns.push(Number(process.hrtime.bigint() - t0));
    }
    ns.sort((a, b) => a - b);
    const us = (q) => (ns[Math.floor(ns.length * q)] / 1e3).toFixed(1);
    console.log(`ort predict ${String(rows).padStart(4)} row${rows === 1 ? ' ' : 's'}: ` +
      `p50 ${us(0.5).padStart(8)} us  p90 ${us(0.9).padStart(8)}  p99 ${us(0.99).padStart(8)}`);
  }
}

main().catch((e) => {
  console.error(`ort_latency.js: ${e.message}`);
  process.exit(1);
});
