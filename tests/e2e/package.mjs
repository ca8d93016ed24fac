// The npm package as a blog author meets it: installs the tarball tools/package.mjs packed into a
// scratch project (npm install <tarball>, offline: it has no dependencies), serves the project,
// and opens a page that imports the element by its package name (an import map) and shows a
// figure; the figure must draw, the digits asset must be reachable beside the element, and the
// package's declared entry points must exist.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { serve, launch, suite, assert, figuresInked } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const tarball = process.argv[2] ?? fs.readFileSync(path.join(root, 'target/npm/latest'), 'utf8').trim();
const scratch = path.join(here, 'out/package-install');
fs.rmSync(scratch, { recursive: true, force: true });
fs.mkdirSync(scratch, { recursive: true });
fs.writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ name: 'a-blog', private: true, type: 'module' }));
fs.writeFileSync(path.join(scratch, 'index.html'), `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A blog post</title><link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "fm-explainer": "/node_modules/fm-explainer/embed.js" } }</script>
<script type="module">import 'fm-explainer';</script>
</head><body>
<p>A post with one figure of flow matching:</p>
<fm-figure name="velocity-field" dataset="spirals" t="0.8"></fm-figure>
</body></html>
`);

const t = suite('the npm package');
await t.check('npm install <tarball> into a scratch project; a page imports the element by its package name and a figure draws', async () => {
  execFileSync('npm', ['install', tarball, '--offline', '--no-audit', '--no-fund'], { cwd: scratch, stdio: 'pipe' });
  const installed = path.join(scratch, 'node_modules/fm-explainer');
  const manifest = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8'));
  const entries = [manifest.exports['.'], manifest.exports['./api'].default, manifest.exports['./api'].types, manifest.types];
  for (const entry of entries) assert(fs.existsSync(path.join(installed, entry)), `${entry} is declared but missing`);
  const { server, origin } = await serve({ '/': scratch });
  const browser = await launch({ webgpu: false });
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    const errors = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${origin}/index.html`);
    await page.waitForFunction(figuresInked, 'fm-figure', { timeout: 120000 });
    const t08 = await page.evaluate(() => document.querySelector('fm-figure').t);
    const digits = await page.evaluate(async () => (await fetch('/node_modules/fm-explainer/assets/digits.bin')).status);
    assert(Number(t08) === 0.8, `the attribute t=0.8 reads back as ${t08}`);
    assert(digits === 200, `the digits asset answers ${digits}`);
    assert(errors.length === 0, `errors: ${errors.join('\n')}`);
  } finally {
    await browser.close();
    server.close();
  }
  const packed = fs.statSync(tarball).size;
  return `${path.basename(tarball)}: ${packed} B packed; installed with npm ${execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim()}; velocity-field drawn from node_modules/fm-explainer`;
});
await t.check('tsc --noEmit: a typed use of the package passes; a wrong option type is reported', async () => {
  const tsc = path.join(here, 'node_modules/.bin/tsc');
  const flags = ['--noEmit', '--strict', '--module', 'esnext', '--moduleResolution', 'bundler', '--target', 'es2022', '--lib', 'es2022,dom'];
  fs.writeFileSync(path.join(scratch, 'typed.ts'), `import init, { closedFormVelocity, createTrainer, sampleClosedForm, loadDigits, mountFigure, figures, type TrainerOptions, type FigureSpec } from 'fm-explainer/api';
await init();
const data = new Float32Array([0, 0, 1, 1, 2, 0]);
const u: Float32Array = await closedFormVelocity(data, 2, new Float32Array([0.5, 0.5]), 0.5);
const options: TrainerOptions = { data, dim: 2, hidden: 64, depth: 3, target: 'efm', efmSamples: 128 };
const trainer = await createTrainer(options);
const losses: Float32Array = await trainer.train(100);
const x1: Float32Array = await trainer.sample(new Float32Array(8), 20);
const hybrid: Float32Array = await trainer.sample(new Float32Array(8), 20, 0.3);
const copies: Float32Array = await sampleClosedForm(data, 2, new Float32Array(8), 50);
const width: number = trainer.settings.hidden;
const digits = await loadDigits();
const pixels: number = digits.dim * digits.n;
const handle = mountFigure(document.body, 'velocity-field');
handle.set('t', 0.8);
const t: string | undefined = handle.get('t');
const specs: FigureSpec[] = figures();
const ranges: string[] = specs.flatMap((f) => f.settings.map((s) => s.kind === 'number' ? \`\${s.min}..\${s.max}\` : s.options.map((o) => o.value).join()));
await trainer.free();
console.log(u, losses, x1, hybrid, copies, width, pixels, t, ranges);
`);
  fs.writeFileSync(path.join(scratch, 'wrong.ts'), `import { createTrainer } from 'fm-explainer/api';
await createTrainer({ data: new Float32Array(4), dim: 2, hidden: '64' });
`);
  const run = (file) => {
    try {
      execFileSync(tsc, [...flags, file], { cwd: scratch, encoding: 'utf8', stdio: 'pipe' });
      return { code: 0, out: '' };
    } catch (e) {
      return { code: e.status, out: `${e.stdout}${e.stderr}` };
    }
  };
  fs.writeFileSync(path.join(scratch, 'wrong-name.ts'), `import { mountFigure } from 'fm-explainer/api';
mountFigure(document.body, 'velocity-feild');
`);
  const ok = run('typed.ts');
  assert(ok.code === 0, `typed.ts: ${ok.out}`);
  const wrong = run('wrong.ts');
  const errors = wrong.out.split('\n').filter((l) => /error TS/.test(l));
  assert(wrong.code !== 0 && errors.length === 1 && /wrong\.ts\(2,.*error TS2322: Type 'string' is not assignable to type 'number'/.test(errors[0]), `wrong.ts: ${wrong.out}`);
  const wrongName = run('wrong-name.ts');
  const nameErrors = wrongName.out.split('\n').filter((l) => /error TS/.test(l));
  assert(wrongName.code !== 0 && nameErrors.length === 1 && /wrong-name\.ts\(2,.*error TS2345: Argument of type '"velocity-feild"' is not assignable to parameter of type 'FigureName'/.test(nameErrors[0]), `wrong-name.ts: ${wrongName.out}`);
  return `typed.ts: 0 errors; wrong.ts: ${errors[0].trim()}; wrong-name.ts: ${nameErrors[0].trim()}`;
});
process.exit(t.finish() ? 0 : 1);
