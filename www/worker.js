// A compute worker of the page's pool (src/web/pool/): the page sends the module it already
// compiled, then training sets, networks and queries; the answers go back with their buffers
// transferred. No SharedArrayBuffer, so host pages need no cross-origin isolation.
import init, { poolWorkerMessage } from './fm-explainer.js';

let ready = null;
self.onmessage = async ({ data }) => {
  if (data.op === 'init') {
    ready = init({ module_or_path: data.module });
    try {
      await ready;
      self.postMessage({ op: 'ready' });
    } catch (e) {
      self.postMessage({ op: 'failed', error: String(e?.message ?? e) });
    }
    return;
  }
  let reply;
  try {
    await ready;
    reply = poolWorkerMessage(data);
  } catch (e) {
    // A trap (a Rust panic) leaves the module's state unknown: the page replaces this worker.
    const trap = e instanceof WebAssembly.RuntimeError;
    reply = { op: 'error', ticket: data.ticket, error: String(e?.message ?? e), trap };
  }
  // A slice, once copied into the module, goes back to be filled again by the next load.
  if (data.op === 'load' && data.data) self.postMessage({ op: 'spare', data: data.data }, [data.data.buffer]);
  // Loads and drops expect no answer; an error there surfaces at the next query.
  if (data.ticket === undefined) {
    // But a trap must be known at once.
    if (reply.trap) self.postMessage(reply);
    return;
  }
  const transfer = reply.transfer ?? [];
  delete reply.transfer;
  self.postMessage(reply, transfer);
};
