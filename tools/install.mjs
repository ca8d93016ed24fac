// Installs the pinned npm packages of tools/ (npm ci) when `probe` (a path under tools/) is
// missing: a fresh clone, or one made before a package was added. Shared by the build hooks.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const tools = path.dirname(fileURLToPath(import.meta.url));

export function ensurePackages(probe, who) {
  if (fs.existsSync(path.join(tools, probe))) return;
  console.log(`${who}: installing the pinned npm packages of tools/ (npm ci)`);
  try {
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: tools, stdio: 'inherit' });
  } catch (e) {
    console.error(`${who}: tools/${probe} is missing and \`npm ci\` in tools/ failed (${e.message}): run it by hand`);
    process.exit(1);
  }
}
