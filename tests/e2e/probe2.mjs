import path from 'node:path';
import fs from 'node:fs';
import { serve, launch } from './harness.mjs';
const dist = path.resolve('../../dist');
const { server, origin } = await serve({ '/': dist });
const webgpu = process.env.MODE !== 'cpu';
const browser = await launch({ webgpu });
const p7 = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await p7.goto(`${origin}/index.html${webgpu ? '?backend=webgpu' : ''}`);
await p7.waitForFunction(() => window.wasmBindings, null, { timeout: 60000 });
await p7.waitForTimeout(1500);
const cdp = await p7.context().newCDPSession(p7);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
await cdp.send('Profiler.start');
const height = await p7.evaluate(() => document.documentElement.scrollHeight);
for (let y = 0; y < height; y += 400) { await p7.evaluate((y) => window.scrollTo(0, y), y); await p7.waitForTimeout(500); }
const { profile } = await cdp.send('Profiler.stop');
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map(); for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const dt = profile.timeDeltas; const incl = {};
profile.samples.forEach((id, i) => {
  const seen = new Set(); let cur = id;
  while (cur !== undefined) { const name = byId.get(cur).callFrame.functionName || '(anon)'; if (!seen.has(name)) { seen.add(name); incl[name] = (incl[name] ?? 0) + (dt[i] ?? 0); } cur = parent.get(cur); }
});
const top = Object.entries(incl).filter(([k]) => /draw|Sketch|figure|render|plot|chart|frame|fill|stroke/i.test(k)).sort((a, b) => b[1] - a[1]).slice(0, 40);
for (const [k, v] of top) console.log((v / 1000).toFixed(0).padStart(6), 'ms', k.slice(0, 150));
await browser.close(); server.close();
