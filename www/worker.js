// A compute worker of the page's pool (src/web/pool.rs): the page sends the module it already
// compiled, then training sets and closed-form queries; the answers go back with their buffers
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
  await ready;
  let reply;
  try {
    reply = poolWorkerMessage(data);
  } catch (e) {
    reply = { op: 'error', ticket: data.ticket, error: String(e?.message ?? e) };
  }
  // A slice, once copied into the module, goes back to be filled again by the next load.
  if (data.op === 'load' && data.data) self.postMessage({ op: 'spare', data: data.data }, [data.data.buffer]);
  // Loads and drops expect no answer; an error there surfaces at the next query.
  if (data.ticket === undefined) return;
  const transfer = reply.transfer ?? [];
  delete reply.transfer;
  self.postMessage(reply, transfer);
};
