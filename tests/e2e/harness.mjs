// Shared by the browser tests and the benchmark: a static server for dist/ (and, for the
// benchmark, TensorFlow.js from node_modules) and Debian's Chromium driven by playwright-core.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json', '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/// Serves `routes` ({ urlPrefix: directory }) on an ephemeral port of 127.0.0.1, with `headers`
/// on every file served (a Content-Security-Policy, say); `rewrite(html)` edits the HTML pages
/// served (the other engines' tests add their error recorder). `gzip: true` compresses every
/// response for a client that accepts it, as a host in front of the static files would.
export async function serve(routes, headers = {}, rewrite = null, { gzip = false } = {}) {
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    for (const [prefix, dir] of Object.entries(routes)) {
      if (!url.startsWith(prefix)) continue;
      let file = path.join(dir, url.slice(prefix.length));
      if (!file.startsWith(path.resolve(dir))) break;
      if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
      if (!fs.existsSync(file)) break;
      const zip = gzip && /\bgzip\b/.test(req.headers['accept-encoding'] ?? '');
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', ...(zip ? { 'content-encoding': 'gzip', vary: 'accept-encoding' } : {}), ...headers });
      if (rewrite && file.endsWith('.html')) {
        const html = rewrite(fs.readFileSync(file, 'utf8'));
        res.end(zip ? zlib.gzipSync(html) : html);
      } else if (zip) {
        fs.createReadStream(file).pipe(zlib.createGzip()).pipe(res);
      } else {
        fs.createReadStream(file).pipe(res);
      }
      return;
    }
    res.writeHead(404).end('not found');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/// Chromium with (`webgpu: true`: SwiftShader WebGPU) or without an adapter.
export async function launch({ webgpu }) {
  const args = [
    '--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-dev-shm-usage',
  ];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  return chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args, headless: true });
}

/// Opens `url`, collecting console errors and page errors, and waits for the wasm bindings
/// (the article's; `wait: false` for pages that load the module themselves).
export async function open(browser, url, { width = 1280, height = 900, wait = true } = {}) {
  const page = await browser.newPage({ viewport: { width, height } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(url);
  if (wait) await page.waitForFunction(() => window.wasmBindings && window.wasmBindings.backendName, null, { timeout: 60000 });
  return { page, errors };
}

/// A tiny test runner: named checks, a summary, and the exit code. `E2E_ONLY=<regex>` runs only
/// the checks whose label matches (while working on one; CI runs them all).
export function suite(name) {
  const results = [];
  const only = process.env.E2E_ONLY ? new RegExp(process.env.E2E_ONLY) : null;
  return {
    async check(label, fn) {
      if (only && !only.test(label)) return;
      const start = Date.now();
      try {
        const detail = await fn();
        results.push({ label, ok: true, ms: Date.now() - start });
        console.log(`  ok    ${label}${detail ? `: ${detail}` : ''}`);
      } catch (e) {
        results.push({ label, ok: false, ms: Date.now() - start });
        console.log(`  FAIL  ${label}: ${e?.stack ?? e}`);
      }
    },
    finish() {
      const failed = results.filter((r) => !r.ok);
      console.log(`${name}: ${results.length - failed.length} passed, ${failed.length} failed`);
      return failed.length === 0;
    },
  };
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

/// Runs in the page: whether every element matching `selector` has canvases and each has ink
/// (more than 1 in 200 sampled pixels away from white), i.e. the figure drew something.
export function figuresInked(selector) {
  const roots = [...document.querySelectorAll(selector)];
  return roots.length > 0 && roots.every((r) => {
    const canvases = [...r.querySelectorAll('canvas')];
    return canvases.length > 0 && canvases.every((c) => {
      const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let ink = 0;
      for (let i = 0; i < px.length; i += 16) if (px[i] < 200 || px[i + 1] < 200 || px[i + 2] < 200) ink++;
      return ink > px.length / 16 / 200;
    });
  });
}

/// Runs in the page: whether any canvas matching `selector` has ink (a dark pixel among every
/// 16th), i.e. some figure has drawn, whatever the others are doing.
export function anyCanvasInked(selector) {
  return [...document.querySelectorAll(selector)].some((c) => {
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    for (let i = 0; i < px.length; i += 64) if (px[i] < 200) return true;
    return false;
  });
}
