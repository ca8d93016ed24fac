// The npm package as a blog author meets it: the tarball tools/package.mjs packed, installed
// (npm install <tarball>, offline: it has no dependencies) into scratch projects, and one post with
// two figures (velocity-field, 2-D; digit-memorization, over the MNIST digits) that imports the
// element by its package name, as the README says, four ways: a plain page with an import map,
// the output of `vite build` and of webpack 5 (no configuration either), each served as static
// files (the built ones under the README's strict Content-Security-Policy), and the Vite dev
// server. In each the figures must draw, the compute workers start, the digits load and the
// stylesheet apply, with no failed request, no error and no policy violation. Then tsc checks
// the package's types.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { serve, launch, suite, assert, figuresInked } from './harness.mjs';
import { CSP } from './hostile.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const tarball = process.argv[2] ?? fs.readFileSync(path.join(root, 'target/npm/latest'), 'utf8').trim();
const scratch = path.join(here, 'out/package-install');
fs.rmSync(scratch, { recursive: true, force: true });
const bin = (name, file) => path.join(here, 'node_modules', name, file);

// The post, the same in every app; the app's script is the README's `import 'fm-explainer'`, and
// a handle on the functions (the same module instance as the figures') for the test to ask.
const POST = `<p>A post with three figures of flow matching: the closed-form velocity field,</p>
<fm-figure name="velocity-field" dataset="spirals" t="0.8"></fm-figure>
<p>digits generated with the closed form, each the copy of a training digit,</p>
<fm-figure name="digit-memorization"></fm-figure>
<p>and a trained network's new digits (the digits lab: its own worker, module and weights).</p>
<fm-figure name="new-digits"></fm-figure>`;
const SCRIPT = `import 'fm-explainer';
window.fmApi = () => import('fm-explainer/api');
`;
const html = (head) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A blog post</title><link rel="icon" href="data:,">
${head}
</head><body>
${POST}
</body></html>
`;

/// The size of the package's digits, which each post must fetch whole.
let digitsBytes;

/// A scratch project named `name` with the tarball installed and `files` ({ path: text }).
function project(name, files) {
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `a-blog-${name}`, private: true, type: 'module' }));
  for (const [file, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  execFileSync('npm', ['install', tarball, '--offline', '--no-audit', '--no-fund'], { cwd: dir, stdio: 'pipe' });
  digitsBytes ??= fs.statSync(path.join(dir, 'node_modules/fm-explainer/assets/digits.bin')).size;
  return dir;
}

/// Runs `args` with node in `cwd`; its output goes into the error when it fails.
function node(args, cwd) {
  try {
    return execFileSync(process.execPath, args, { cwd, encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    throw new Error(`node ${args.join(' ')} failed:\n${e.stdout}${e.stderr}`);
  }
}

/// The blog of each kind, made when first asked for.
const projects = {
  plain: () => project('plain', {
    'index.html': html(`<script type="importmap">{ "imports": { "fm-explainer": "/node_modules/fm-explainer/embed.js", "fm-explainer/api": "/node_modules/fm-explainer/fm-explainer.js" } }</script>
<script type="module">${SCRIPT}</script>`),
  }),
  vite: () => project('vite', { 'index.html': html('<script type="module" src="/main.js"></script>'), 'main.js': SCRIPT }),
  webpack: () => project('webpack', { 'src/index.js': SCRIPT }),
};
const made = {};
const blog = (kind) => (made[kind] ??= projects[kind]());
const browser = await launch({ webgpu: false });

/// Opens the post at `url` and checks it: both figures drawn, compute workers started (the pool's
/// count through the API, each a worker the browser ran), the digits fetched whole, figures.css
/// applied, no response >= 400, no console error or page error, no policy violation.
// Polls `fn(arg)` from here, one evaluation at a time, until it is true: Playwright's
// waitForFunction polls inside the page with a predicate it evaluates there, which a strict
// Content-Security-Policy (no 'unsafe-eval') refuses once the first check has failed ("figure 1
// did not draw (EvalError ...)" on the webpack post, whenever the figure was not drawn at once).
async function until(page, fn, arg, timeout) {
  const end = Date.now() + timeout;
  for (;;) {
    if (await page.evaluate(fn, arg)) return true;
    if (Date.now() > end) throw new Error(`not true within ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function checkPost(url) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  const started = Date.now();
  try {
    const page = await context.newPage();
    const errors = [];
    const failed = [];
    const fallbacks = [];
    const binaries = [];
    const workers = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
      // What the pool says when its workers cannot start (the CPU path then stays on the page).
      if (/compute workers? (unavailable|failed|did not start)/.test(m.text())) fallbacks.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('worker', (w) => workers.push(w.url()));
    context.on('response', async (r) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
      if (/\.(bin|fmu)$/.test(new URL(r.url()).pathname)) binaries.push({ url: r.url(), status: r.status(), bytes: (await r.body().catch(() => Buffer.alloc(0))).length });
    });
    await page.addInitScript(() => {
      window.__violations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
      // Every error a figure shows, even one that a later draw replaces: reported with the result.
      window.__shown = new Set();
      new MutationObserver(() => {
        for (const e of document.querySelectorAll('.figure-error')) window.__shown.add(e.textContent);
      }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['class'] });
    });
    await page.goto(url);
    const figures = page.locator('fm-figure');
    for (let i = 0; i < 3; i++) {
      await figures.nth(i).evaluate((el) => el.scrollIntoView({ block: 'center' }));
      // Drawn, or an error box that stays (a second: the message says why). A canvas that cannot
      // be read yet counts as not drawn, and what it threw is kept for the report.
      const selector = JSON.stringify(`fm-figure:nth-of-type(${i + 1})`);
      let why = '';
      const settled = `(() => {
        try { if ((${figuresInked})(${selector})) return true; } catch (e) { (window.__unread ??= new Set()).add(String(e)); }
        const error = document.querySelector(${selector} + ' .figure-error');
        if (!error) { window.__errorSince = undefined; return false; }
        window.__errorSince ??= performance.now();
        return performance.now() - window.__errorSince > 1000;
      })()`;
      const drawn = await until(page, settled, undefined, 120000)
        .then(() => page.evaluate(figuresInked, JSON.parse(selector)), (e) => { why = e.message; return false; })
        .catch((e) => { why = `its canvas could not be read: ${e.message}`; return false; });
      if (!drawn) {
        const text = await figures.nth(i).textContent();
        const seen = await page.evaluate(() => [...window.__shown, ...(window.__unread ?? [])].join(' | ')).catch((e) => String(e));
        throw new Error(`figure ${i + 1} did not draw${why ? ` (${why})` : ''}: "${text.slice(0, 300)}"; shown or thrown: ${seen}; failed requests: ${failed.join(', ')}; errors: ${errors.join('\n')}`);
      }
    }
    // Digits generated over all 10,000 training digits: the download arrived and was read.
    const status = page.locator('fm-figure[name=digit-memorization] .figure-status');
    await until(page, (el) => /over 10000 digits/.test(el.textContent), await status.elementHandle(), 120000).catch(async (e) => {
      throw new Error(`digit-memorization: "${await status.textContent()}": ${e.message}`);
    });
    // The digits lab ran in the app's build: its worker, its module, the weights.
    const lab = page.locator('fm-figure[name=new-digits] .figure-status');
    await until(page, (el) => /held-out digits: [\d.]+\./.test(el.textContent), await lab.elementHandle(), 120000).catch(async (e) => {
      throw new Error(`new-digits: "${await lab.textContent()}": ${e.message}; failed requests: ${failed.join(', ')}; errors: ${errors.join('\n')}`);
    });
    const weights = binaries.filter((b) => new URL(b.url).pathname.endsWith('.fmu'));
    // One download a lab (the first and its helpers, one a core, at most 3), each whole.
    const size = fs.statSync(path.join(root, 'www/weights/digits-unet.fmu')).size;
    assert(weights.length >= 1 && weights.length <= 3 && weights.every((w) => w.status === 200 && w.bytes === size), `weights: ${JSON.stringify(weights)}`);
    const api = await page.evaluate(async () => {
      const m = await window.fmApi();
      return { workers: await m.computeWorkers(), backend: await m.backendName() };
    });
    const style = await page.evaluate(() => {
      const s = getComputedStyle(document.querySelector('fm-figure'));
      return { radius: s.borderRadius, accent: s.getPropertyValue('--fm-accent').trim() };
    });
    const violations = await page.evaluate(() => window.__violations);
    const [shown, unread] = await page.evaluate(() => [[...window.__shown], [...(window.__unread ?? [])]]);
    const seconds = (Date.now() - started) / 1000;
    assert(api.backend === 'cpu', `backend ${api.backend}`);
    assert(api.workers >= 1 && workers.length >= api.workers, `compute workers: ${api.workers} in the pool, ${workers.length} started (${workers.join(', ')}); ${fallbacks.join('; ')}`);
    assert(fallbacks.length === 0, `the pool fell back to the page's thread: ${fallbacks.join('; ')}`);
    const digits = binaries.filter((b) => b.bytes > 1e6 && new URL(b.url).pathname.endsWith('.bin'));
    assert(digits.length >= 1 && digits.every((b) => b.status === 200 && (!digitsBytes || b.bytes === digitsBytes)), `digits: ${JSON.stringify(binaries)}`);
    assert(style.radius === '8px' && style.accent === '#c81e5a', `figures.css not applied: ${JSON.stringify(style)}`);
    assert(failed.length === 0, `responses >= 400: ${failed.join(', ')}`);
    assert(errors.length === 0, `errors: ${errors.join('\n')}`);
    assert(violations.length === 0, `policy violations: ${violations.join('\n')}`);
    return `3 figures drawn, ${api.workers} compute workers started (${[...new Set(workers.map((w) => new URL(w).pathname))].join(', ')}), digits ${digits[0].status} (${digits[0].bytes} B from ${new URL(digits[0].url).pathname}), the lab's weights ${weights[0].status} (${weights[0].bytes} B from ${new URL(weights[0].url).pathname}), figures.css applied, 0 responses >= 400, 0 errors, 0 violations, in ${seconds.toFixed(1)} s${shown.length ? `; errors shown then drawn over: ${shown.join(' | ')}` : ''}${unread.length ? `; canvases not yet readable: ${unread.join(' | ')}` : ''}`;
  } finally {
    await context.close();
  }
}

/// Serves `index.html` of `dir` without its figures as lazy.html and opens it: the element is
/// defined but, with no figure on the page, the module's wasm is not fetched; a figure added
/// later fetches it and draws.
async function checkLazy(origin, dir) {
  fs.writeFileSync(path.join(dir, 'lazy.html'), fs.readFileSync(path.join(dir, 'index.html'), 'utf8').replace(/<fm-figure[^>]*><\/fm-figure>/g, ''));
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  try {
    const page = await context.newPage();
    const requested = [];
    context.on('request', (r) => requested.push(new URL(r.url()).pathname));
    await page.goto(`${origin}/lazy.html`);
    await until(page, () => !!customElements.get('fm-figure'), undefined, 30000);
    await page.waitForTimeout(1000);
    const before = requested.length;
    assert(!requested.some((p) => p.endsWith('.wasm')), `the wasm was fetched with no figure on the page: ${requested.join(', ')}`);
    await page.evaluate(() => document.body.insertAdjacentHTML('beforeend', '<fm-figure name="velocity-field"></fm-figure>'));
    await until(page, figuresInked, 'fm-figure', 120000);
    assert(requested.some((p) => p.endsWith('.wasm')), `a figure drew but no wasm was fetched: ${requested.join(', ')}`);
    return `lazy: ${before} requests and no wasm before a figure, the wasm once one connected`;
  } finally {
    await context.close();
  }
}

const t = suite('the npm package');
await t.check('plain page: npm install <tarball>, an import map names the package, the post draws, workers and digits', async () => {
  const plain = blog('plain');
  const installed = path.join(plain, 'node_modules/fm-explainer');
  const manifest = JSON.parse(fs.readFileSync(path.join(installed, 'package.json'), 'utf8'));
  const entries = [manifest.exports['.'], manifest.exports['./api'].default, manifest.exports['./api'].types, manifest.types];
  for (const entry of entries) assert(fs.existsSync(path.join(installed, entry)), `${entry} is declared but missing`);
  const { server, origin } = await serve({ '/': plain });
  try {
    const detail = `${await checkPost(`${origin}/index.html`)}; ${await checkLazy(origin, plain)}`;
    return `${path.basename(tarball)}: ${fs.statSync(tarball).size} B packed, installed with npm ${execFileSync('npm', ['--version'], { encoding: 'utf8' }).trim()}; ${detail}`;
  } finally {
    server.close();
  }
});

await t.check('vite build (Vite 8, no config), served as static files under a strict CSP: the post draws, workers and digits', async () => {
  const dir = blog('vite');
  const start = Date.now();
  node([bin('vite', 'bin/vite.js'), 'build', '--logLevel', 'warn'], dir);
  const built = (Date.now() - start) / 1000;
  const { server, origin } = await serve({ '/': path.join(dir, 'dist') }, { 'content-security-policy': CSP });
  try {
    return `built in ${built.toFixed(1)} s; ${await checkPost(`${origin}/index.html`)}; ${await checkLazy(origin, path.join(dir, 'dist'))}`;
  } finally {
    server.close();
  }
});

await t.check('vite dev server (its dependency pre-bundling): the post draws, workers and digits', async () => {
  const dir = blog('vite');
  fs.rmSync(path.join(dir, 'node_modules/.vite'), { recursive: true, force: true });
  const { createServer } = await import(bin('vite', 'dist/node/index.js'));
  const server = await createServer({ root: dir, logLevel: 'warn', server: { host: '127.0.0.1', port: 0, strictPort: false } });
  await server.listen();
  try {
    return await checkPost(`http://127.0.0.1:${server.httpServer.address().port}/index.html`);
  } finally {
    await server.close();
  }
});

await t.check('webpack 5 (zero config: src/index.js to dist/main.js), served as static files under a strict CSP: the post draws, workers and digits', async () => {
  const dir = blog('webpack');
  const start = Date.now();
  node([bin('webpack-cli', 'bin/cli.js'), '--mode', 'production', '--no-stats'], dir);
  const built = (Date.now() - start) / 1000;
  fs.writeFileSync(path.join(dir, 'dist/index.html'), html('<script defer src="main.js"></script>'));
  const { server, origin } = await serve({ '/': path.join(dir, 'dist') }, { 'content-security-policy': CSP });
  try {
    return `built in ${built.toFixed(1)} s; ${await checkPost(`${origin}/index.html`)}; ${await checkLazy(origin, path.join(dir, 'dist'))}`;
  } finally {
    server.close();
  }
});
await browser.close();

await t.check('tsc --noEmit: a typed use of the package passes; a wrong option type is reported', async () => {
  const plain = blog('plain');
  const tsc = path.join(here, 'node_modules/.bin/tsc');
  const flags = ['--noEmit', '--strict', '--module', 'esnext', '--moduleResolution', 'bundler', '--target', 'es2022', '--lib', 'es2022,dom'];
  fs.writeFileSync(path.join(plain, 'typed.ts'), `import init, { closedFormVelocity, createTrainer, sampleClosedForm, loadDigits, mountFigure, figures, type TrainerOptions, type FigureSpec } from 'fm-explainer/api';
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
  fs.writeFileSync(path.join(plain, 'wrong.ts'), `import { createTrainer } from 'fm-explainer/api';
await createTrainer({ data: new Float32Array(4), dim: 2, hidden: '64' });
`);
  const run = (file) => {
    try {
      execFileSync(tsc, [...flags, file], { cwd: plain, encoding: 'utf8', stdio: 'pipe' });
      return { code: 0, out: '' };
    } catch (e) {
      return { code: e.status, out: `${e.stdout}${e.stderr}` };
    }
  };
  fs.writeFileSync(path.join(plain, 'wrong-name.ts'), `import { mountFigure } from 'fm-explainer/api';
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
