// /gpu-check.html: runs gpuKernelReport() and shows its rows as a table (text only).
// The report lives in the digits lab's module (it carries the U-Net), not in the article's.
import init, { gpuKernelReport } from './fm-digits.js';

const status = document.getElementById('status');
const table = document.getElementById('report');
const cell = (row, text, numeric) => {
  const td = row.insertCell();
  td.textContent = text;
  if (numeric) td.className = 'num';
};
try {
  await init();
  const report = await gpuKernelReport();
  const body = table.tBodies[0];
  for (const r of report.rows) {
    const row = body.insertRow();
    row.className = r.passed ? 'pass' : 'fail';
    cell(row, r.kernel);
    cell(row, r.sizes);
    cell(row, Number.isFinite(r.error) ? `${r.error.toExponential(2)} ${r.unit}` : '–', true);
    cell(row, r.tolerance.toExponential(0), true);
    cell(row, Number.isFinite(r.gpuMs) ? r.gpuMs.toFixed(1) : '–', true);
    cell(row, r.cpuMs.toFixed(1), true);
    cell(row, r.passed ? 'pass' : `FAIL${r.failure ? `: ${r.failure}` : ''}`);
  }
  table.hidden = false;
  const failed = report.rows.filter((r) => !r.passed).length;
  status.textContent = failed === 0
    ? `All ${report.rows.length} kernels match the CPU on ${report.adapter}.`
    : `${failed} of ${report.rows.length} kernels do not match the CPU on ${report.adapter}.`;
  document.body.dataset.done = failed === 0 ? 'pass' : 'fail';
} catch (e) {
  status.textContent = `The check could not run: ${e?.message ?? e}`;
  document.body.dataset.done = 'error';
}
