// Shrinks the release module after each `trunk build --release`: Binaryen's wasm-opt (npm
// `binaryen`, pinned; the same tool Trunk would download, which needs a network) run on the
// staging directory's modules in place (fm-explainer_bg.wasm, the article's; fm-engine_bg.wasm, the
// compute workers'; fm-digits_bg.wasm, the digits lab's). Development builds (`trunk serve`) skip it
// to stay fast to rebuild. Prints the module's size, raw and gzipped, before and after.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { ensurePackages, tools } from './install.mjs';

const staging = process.env.TRUNK_STAGING_DIR ?? process.argv[2];
if (!staging) {
  console.error('optimize-wasm: no TRUNK_STAGING_DIR (run by Trunk) and no directory given');
  process.exit(1);
}
if (process.env.TRUNK_PROFILE && process.env.TRUNK_PROFILE !== 'release') process.exit(0);
ensurePackages('node_modules/binaryen/bin/wasm-opt', 'optimize-wasm');

const sizes = (wasm) => {
  const bytes = fs.readFileSync(wasm);
  return `${(bytes.length / 1024).toFixed(0)} KiB, ${(zlib.gzipSync(bytes, { level: 9 }).length / 1024).toFixed(0)} KiB gzipped`;
};
// -Oz: the module's maths is already optimised by LLVM at opt-level 3; Binaryen's size passes
// remove what LLVM leaves (the bench compares the kernels' speed). The features are those the
// Rust target emits (wasm SIMD for the CPU closed form among them).
const features = ['--enable-simd', '--enable-bulk-memory', '--enable-nontrapping-float-to-int', '--enable-sign-ext',
  '--enable-mutable-globals', '--enable-multivalue', '--enable-reference-types'];
// --low-memory-unused: the module's lowest kilobyte is never addressed (the linker puts the
// 1 MiB stack first, growing down towards 0, and the data after it), so Binaryen may fold a
// pointer's small constant offsets into its loads and stores: about 3 KB gzipped less.
// --converge repeats the passes while they still shrink the module.
for (const name of ['fm-explainer_bg.wasm', 'fm-engine_bg.wasm', 'fm-digits_bg.wasm']) {
  const wasm = path.join(staging, name);
  const before = sizes(wasm);
  execFileSync(path.join(tools, 'node_modules/binaryen/bin/wasm-opt'),
    ['-Oz', '--converge', '--low-memory-unused', ...features, wasm, '-o', wasm], { stdio: 'inherit' });
  console.log(`optimize-wasm: ${name} ${before} -> ${sizes(wasm)}`);
}
