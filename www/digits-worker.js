// The digits lab's worker (digits-lab/, src/digits_lab.rs): its own module, fetched only when a
// figure that runs the digits' network nears the viewport. Requests are answered one at a time,
// in order; requests come and replies go as bytes (src/digits_lab.rs's `encode`), every reply
// posted by the module.
import init, { labMessage } from './fm-digits.js';

let queue = init();
self.onmessage = ({ data }) => {
  queue = queue.then(() => labMessage(data)).catch((e) => {
    // The module failed (a trap): no reply of its own, and its state is lost; the page fails
    // every call waiting on this worker and starts a fresh one for the next.
    self.postMessage({ failed: { error: String(e?.message ?? e) } });
  });
};
