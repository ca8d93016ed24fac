// A compute worker of the page's pool (src/web/pool/): it runs the engine's own module (engine/,
// src/engine/), which answers the page's jobs and posts the answers itself, their arrays moved.
// No SharedArrayBuffer, so host pages need no cross-origin isolation.
import init, { engineMessage } from './fm-engine.js';

const ready = init();
const failed = (e) => self.postMessage({ failed: { error: String(e?.message ?? e) } });
ready.catch(failed);
self.onmessage = async ({ data }) => {
  try {
    await ready;
    engineMessage(data);
  } catch (e) {
    // A module that did not start, or a trap (a Rust panic) that left its state unknown: the
    // page fails the calls waiting here and replaces this worker.
    failed(e);
  }
};
