// The digits lab's worker (digits-lab/, src/digits_lab.rs): its own module, fetched only when a
// figure that runs the digits' network nears the viewport. Requests are answered one at a time,
// in order; every reply is posted by the module, as bytes (src/digits_lab.rs's `encode`).
import init, { labMessage } from './fm-digits.js';

let queue = init();
self.onmessage = ({ data }) => {
  queue = queue.then(() => labMessage(data)).catch((e) => {
    // The module failed (a trap): no reply of its own; the request's call fails.
    self.postMessage({ failed: { ticket: Number.isInteger(data?.ticket) ? data.ticket : null, error: String(e?.message ?? e) } });
  });
};
