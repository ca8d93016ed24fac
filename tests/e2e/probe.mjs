import path from 'node:path';
import fs from 'node:fs';
import { serve, launch } from './harness.mjs';
const dist = path.resolve('../../dist');
const { server, origin } = await serve({ '/': dist });
const webgpu = process.env.MODE !== 'cpu';
const browser = await launch({ webgpu });
const p7 = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await p7.addInitScript(() => {
  window.longTasks = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.longTasks.push([e.startTime, e.duration]); }).observe({ type: 'longtask', buffered: true });
});
await p7.goto(`${origin}/index.html${webgpu ? '?backend=webgpu' : ''}`);
await p7.waitForFunction(() => window.wasmBindings, null, { timeout: 60000 });
await p7.waitForTimeout(1500);
await browser.startTracing(p7, { path: '/tmp/trace.json', categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8.execute', 'blink', 'cc', 'gpu', 'toplevel'] });
const height = await p7.evaluate(() => document.documentElement.scrollHeight);
for (let y = 0; y < height; y += 400) { await p7.evaluate((y) => window.scrollTo(0, y), y); await p7.waitForTimeout(500); }
await browser.stopTracing();
console.log('longtasks', JSON.stringify(await p7.evaluate(() => window.longTasks.map(([s, d]) => [Math.round(s), Math.round(d)]))));
await browser.close(); server.close();
