// `node tests/e2e/slowest.mjs [count]`: the slowest checks of the browser suites that ran last
// (each suite leaves its checks' times in tests/e2e/out/times/), slowest first.
import fs from 'node:fs';
import path from 'node:path';
import { TIMES, slowest } from './harness.mjs';

const suites = fs.existsSync(TIMES)
  ? fs.readdirSync(TIMES).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(fs.readFileSync(path.join(TIMES, f), 'utf8')))
  : [];
slowest(suites, Number(process.argv[2] ?? 10));
