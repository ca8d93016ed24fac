// Starts the article's module: what Trunk would otherwise inject as an inline script, in a file
// of its own so that the page runs under a Content-Security-Policy without 'unsafe-inline'.
import init, * as bindings from './fm-explainer.js';
import { measureWhenSeen } from './speed.js';

const wasm = await init({ module_or_path: new URL('fm-explainer_bg.wasm', import.meta.url) });
window.wasmBindings = bindings;
dispatchEvent(new CustomEvent('TrunkApplicationStarted', { detail: { wasm } }));
measureWhenSeen(bindings);
