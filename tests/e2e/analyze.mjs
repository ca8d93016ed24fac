import fs from 'node:fs';
const ev = JSON.parse(fs.readFileSync('/tmp/trace.json', 'utf8')).traceEvents;
// main thread of the renderer: the thread with most RunTask under CrRendererMain
const names = {}; for (const e of ev) if (e.name === 'thread_name') names[`${e.pid}:${e.tid}`] = e.args.name;
const tasks = ev.filter((e) => e.ph === 'X' && e.name === 'RunTask' && names[`${e.pid}:${e.tid}`] === 'CrRendererMain' && e.dur > 40000);
for (const t of tasks) {
  const kids = ev.filter((e) => e.ph === 'X' && e.pid === t.pid && e.tid === t.tid && e.ts >= t.ts && e.ts + (e.dur||0) <= t.ts + t.dur && e !== t && (e.dur||0) > 2000);
  const agg = {};
  for (const k of kids) { const key = k.name + (k.args?.data?.functionName ? ':' + k.args.data.functionName : '') + (k.args?.data?.type ? ':' + k.args.data.type : ''); agg[key] = Math.max(agg[key] ?? 0, k.dur / 1000); }
  console.log((t.dur / 1000).toFixed(1), 'ms task at', ((t.ts) / 1000).toFixed(0), JSON.stringify(Object.entries(agg).sort((a, b) => b[1] - a[1]).slice(0, 14).map(([k, v]) => `${k} ${v.toFixed(1)}`)));
}
