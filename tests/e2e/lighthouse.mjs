// Lighthouse (pinned in package.json) on the built article, as a reader's browser meets it: its
// default mobile preset (a mid-range phone on a slow 4G network, simulated) and its desktop
// preset, each run `LIGHTHOUSE_RUNS` times (default 3), the median reported, with dist/ served
// as plain static files and again gzip-compressed (what a host in front of them adds).
// `cargo xtask bench` runs it; `node tests/e2e/lighthouse.mjs [plain|gzip]` alone.
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import lighthouse from 'lighthouse';
import desktopConfig from 'lighthouse/core/config/desktop-config.js';
import * as chromeLauncher from 'chrome-launcher';
import { serve } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = process.env.DIST ?? path.resolve(here, '../../dist');
const runs = Number(process.env.LIGHTHOUSE_RUNS ?? 3);
const variants = process.argv.slice(2).length ? process.argv.slice(2) : ['plain', 'gzip'];
const CATEGORIES = ['performance', 'accessibility', 'best-practices', 'seo'];
const METRICS = {
  FCP: 'first-contentful-paint', LCP: 'largest-contentful-paint', TBT: 'total-blocking-time', CLS: 'cumulative-layout-shift',
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const chrome = await chromeLauncher.launch({
  chromePath: process.env.CHROME_PATH ?? '/usr/bin/chromium',
  chromeFlags: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const out = path.join(here, 'out');
fs.mkdirSync(out, { recursive: true });
const summary = {};
try {
  for (const variant of variants) {
    const { server, origin } = await serve({ '/': dist }, {}, null, { gzip: variant === 'gzip' });
    try {
      for (const [preset, config] of [['mobile', undefined], ['desktop', desktopConfig]]) {
        const results = [];
        for (let i = 0; i < runs; i++) {
          const { lhr } = await lighthouse(`${origin}/index.html`, { port: chrome.port, output: 'json', logLevel: 'error' }, config);
          results.push(lhr);
          if (i === 0) fs.writeFileSync(path.join(out, `lighthouse-${variant}-${preset}.json`), JSON.stringify(lhr));
        }
        const row = {};
        for (const c of CATEGORIES) row[c] = median(results.map((r) => Math.round(r.categories[c].score * 100)));
        for (const [name, id] of Object.entries(METRICS)) row[name] = median(results.map((r) => r.audits[id].numericValue));
        const failing = new Set();
        for (const r of results) {
          for (const a of Object.values(r.audits)) {
            if (a.scoreDisplayMode === 'numeric' || a.scoreDisplayMode === 'binary') if (a.score !== null && a.score < 0.9) failing.add(a.id);
          }
        }
        const lcpElement = results[0].audits['largest-contentful-paint-element']?.details?.items?.[0]?.items?.[0]?.node?.snippet ?? '?';
        summary[`${variant} ${preset}`] = row;
        console.log(`${variant.padEnd(5)} ${preset.padEnd(7)} ${CATEGORIES.map((c) => `${c} ${row[c]}`).join(', ')}; `
          + `FCP ${(row.FCP / 1000).toFixed(1)} s, LCP ${(row.LCP / 1000).toFixed(1)} s, TBT ${row.TBT.toFixed(0)} ms, CLS ${row.CLS.toFixed(3)} `
          + `(median of ${runs})\n      LCP element: ${lcpElement.slice(0, 100)}\n      audits below 0.9: ${[...failing].join(', ') || 'none'}`);
      }
    } finally {
      server.close();
    }
  }
} finally {
  await chrome.kill();
}
fs.writeFileSync(path.join(out, 'lighthouse.json'), `${JSON.stringify(summary, null, 2)}\n`);
