// ort_run.js: run an ONNX model with ONNX Runtime (the npm package onnxruntime-node) on raw
// float32 rows, for the export checks (test_export_ort.sh through onnx_compare.py).
//
//   node ort_run.js MODEL.onnx INPUT.f32 ROWS DIM[xDIM...] OUTPREFIX
//
// INPUT.f32 holds ROWS rows of the model's input, little-endian float32, row after row; the
// input tensor is [ROWS, DIM...]. Every output of the model is written to OUTPREFIX.NAME.f32
// (float32, row after row). Rows go through the session in batches of 1000, so the dynamic
// batch dimension of the exported graph is exercised. Exit status 0, or 1 with the error.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, input, rowsArg, dimsArg, prefix] = process.argv.slice(2);
  if (!prefix) {
    throw new Error('usage: node ort_run.js MODEL.onnx INPUT.f32 ROWS DIM[xDIM...] OUTPREFIX');
  }
  const rows = Number(rowsArg);
  const dims = dimsArg.split('x').map(Number);
  const per = dims.reduce((a, b) => a * b, 1);
  const buf = fs.readFileSync(input);
  if (buf.length !== rows * per * 4) {
    throw new Error(`${input}: ${buf.length} bytes, expected ${rows * per * 4}`);
  }
  const x = new Float32Array(buf.buffer, buf.byteOffset, rows * per);
  const opts = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' };
  const session = await ort.InferenceSession.create(model, opts);
  const outs = {};
  for (const name of session.outputNames) {
    outs[name] = [];
  }
  for (let i = 0; i < rows; i += 1000) {
    const n = Math.min(1000, rows - i);
    const t = new ort.Tensor('float32', x.subarray(i * per, (i + n) * per), [n, ...dims]);
    const r = await session.run({ [session.inputNames[0]]: t });
    for (const name of session.outputNames) {
      outs[name].push(Buffer.from(r[name].data.buffer, r[name].data.byteOffset,
        r[name].data.byteLength));
    }
  }
  for (const name of session.outputNames) {
    fs.writeFileSync(`${prefix}.${name}.f32`, Buffer.concat(outs[name]));
  }
}

main().catch((e) => {
  console.error(`ort_run.js: ${e.message}`);
  process.exit(1);
});
