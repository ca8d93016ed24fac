// <fm-figure name="..."> for any page: copy embed.js, worker.js, fm-engine.js and
// fm-engine_bg.wasm (the CPU path's workers), figures.css, fm-explainer.js, fm-explainer_bg.wasm,
// snippets/ and assets/ (the digits) from the build, then
//   <script type="module" src="/path/to/embed.js"></script>
//   <fm-figure name="velocity-field" dataset="spirals" t="0.8"></fm-figure>
// or, from the npm package, `import 'fm-explainer'` in a bundled app (Vite, webpack): every file
// is named by a literal import() or `new URL('./…', import.meta.url)`, the forms bundlers follow
// and copy into their output, and that a plain page resolves beside this file.
// Every other attribute is a setting of the figure (the same as its controls), readable and
// writable as a property too (el.t = 0.5). All figures on a page share one GPU device. The
// reader's changes are kept in the page's address (share="off" opts out); give the element an
// id when two figures of the same name should be linked apart.

// Settings by figure (attribute = setting name). Generated from src/catalog.rs by
// `cargo test --test generated`: edit there.
// generated:start
export const FIGURES = {
  'noise-to-data': [],
  'conditional-paths': ['source', 'target', 't'],
  'velocity-field': ['dataset', 'n', 't'],
  'memorization': ['dataset', 'n', 't'],
  'stochastic-target': ['dataset', 'n', 't'],
  'target-alignment': [],
  'objective-gap': [],
  'alignment-by-dimension': [],
  'digit-memorization': [],
  'cfm-vs-efm': ['dataset'],
  'model-capacity': ['log2width', 'n'],
  'hybrid-tau': ['tau'],
  'new-digits': ['tau', 'batch'],
};
// generated:end
const SETTINGS = [...new Set(Object.values(FIGURES).flat())];
// theme="light" or "dark" pins the figure's colours; without it they follow the reader.
const THEMES = ['light', 'dark'];

// Fetched when the first figure connects, not before: a page that defines the element pays for
// the module only where it shows a figure.
let module;
function load() {
  module ??= (async () => {
    if (!document.querySelector('link[data-fm-figures]')) {
      const css = document.createElement('link');
      css.rel = 'stylesheet';
      // ?no-inline: Vite inlines a file under 4 kB as a data: URL, which a page's strict
      // style-src refuses; the query keeps it a file there, and elsewhere it is ignored.
      css.href = new URL('./figures.css?no-inline', import.meta.url).href;
      css.dataset.fmFigures = '';
      document.head.append(css);
    }
    const m = await import('./fm-explainer.js');
    // The module finds its wasm, its compute worker and the digits beside itself.
    await m.default();
    return m;
  })();
  return module;
}

class FmFigure extends HTMLElement {
  static observedAttributes = ['name', 'theme', ...SETTINGS];

  async connectedCallback() {
    if (this.handle || this.mounting) return;
    this.mounting = true;
    this.classList.add('figure-root');
    this.applyTheme(this.getAttribute('theme'));
    this.setAttribute('role', 'figure');
    try {
      const m = await load();
      // Removed while the module loaded: nothing to mount. (Renamed meanwhile: the name now.)
      if (!this.isConnected) return;
      const name = this.getAttribute('name') ?? '';
      this.handle = m.mountFigure(this, name);
      for (const key of SETTINGS) {
        const value = this.getAttribute(key);
        if (value !== null) this.apply(key, value);
      }
      // The reader's changes go into the page's address under the element's id (or the
      // figure's name), and a link carrying them reopens the figure as it was left.
      if (this.getAttribute('share') !== 'off') this.handle.link(this.id || name);
    } catch (e) {
      this.fail(e.message ?? String(e));
    } finally {
      this.mounting = false;
    }
  }

  disconnectedCallback() {
    this.unmount();
  }

  // Stops the figure and frees its handle now (not whenever the garbage collector runs).
  unmount() {
    this.handle?.remove();
    this.handle?.free();
    this.handle = undefined;
  }

  attributeChangedCallback(key, old, value) {
    if (key === 'theme' && old !== value) return this.applyTheme(value);
    if (!this.handle || value === null || old === value) return;
    if (key === 'theme') {
      this.applyTheme(value);
    } else if (key === 'name') {
      this.unmount();
      this.connectedCallback();
    } else {
      this.apply(key, value);
    }
  }

  apply(key, value) {
    try {
      this.handle.set(key, value);
      this.querySelector(':scope > .fm-setting-error')?.remove();
    } catch (e) {
      let p = this.querySelector(':scope > .fm-setting-error');
      if (!p) {
        p = document.createElement('p');
        p.className = 'figure-status figure-error fm-setting-error';
        this.append(p);
      }
      p.textContent = `Attribute ${key}: ${e.message}`;
    }
  }

  applyTheme(value) {
    if (value === null || value === 'auto') {
      // (this.dataset is the figure's `dataset` setting here, so plain attributes.)
      this.removeAttribute('data-theme');
    } else if (THEMES.includes(value)) {
      this.setAttribute('data-theme', value);
      this.querySelector(':scope > .fm-theme-error')?.remove();
    } else {
      const p = document.createElement('p');
      p.className = 'figure-status figure-error fm-theme-error';
      p.textContent = `Attribute theme: must be one of auto, light, dark, got "${value}"`;
      this.append(p);
      return;
    }
    // Redraw in the new colours.
    if (this.handle) this.handle.redraw();
  }

  fail(message) {
    this.replaceChildren();
    const p = document.createElement('p');
    p.className = 'figure-status figure-error';
    p.textContent = `This figure cannot run: ${message}`;
    this.append(p);
  }
}

for (const key of SETTINGS) {
  Object.defineProperty(FmFigure.prototype, key, {
    get() { return this.handle?.get(key) ?? this.getAttribute(key); },
    set(value) { this.setAttribute(key, String(value)); },
  });
}

if (!customElements.get('fm-figure')) customElements.define('fm-figure', FmFigure);
