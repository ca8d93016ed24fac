// Starts the article's module: what Trunk would otherwise inject as an inline script, in a file
// of its own so that the page runs under a Content-Security-Policy without 'unsafe-inline'.
//
// The first screen is text: the module (its glue and its wasm, most of the page's bytes) is
// fetched only once the page has loaded and painted and the browser is idle, or at once when a
// figure comes within a screen of the viewport, whichever is first. Until then nothing of it
// competes with the text, the styles and the math font for a slow network or a slow CPU.
let started = null;
function start() {
  started ??= (async () => {
    const [bindings, { measureWhenSeen }] = await Promise.all([import('./fm-explainer.js'), import('./speed.js')]);
    const wasm = await bindings.default({ module_or_path: new URL('fm-explainer_bg.wasm', import.meta.url) });
    window.wasmBindings = bindings;
    dispatchEvent(new CustomEvent('TrunkApplicationStarted', { detail: { wasm } }));
    measureWhenSeen(bindings);
  })();
  return started;
}

const figures = document.querySelectorAll('[data-figure]');
if ('IntersectionObserver' in window && figures.length > 0) {
  const near = new IntersectionObserver((entries) => {
    if (!entries.some((e) => e.isIntersecting)) return;
    near.disconnect();
    start();
  }, { rootMargin: '100% 0px' });
  figures.forEach((f) => near.observe(f));
} else {
  start();
}
const whenIdle = () => ('requestIdleCallback' in window ? requestIdleCallback(start, { timeout: 2000 }) : setTimeout(start, 200));
if (document.readyState === 'complete') whenIdle();
else addEventListener('load', whenIdle, { once: true });
