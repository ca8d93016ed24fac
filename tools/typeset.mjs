// Typesets the article's maths at build time. The source (www/index.html) writes formulas in TeX,
// \( ... \) inline and \[ ... \] displayed; run by Trunk after each build on its staging
// directory, this turns each into MathML Core with Temml, so the served page has native maths and
// no maths JavaScript, and copies the math font (STIX Two Math, with its OpenType MATH table) beside
// it with Temml's stylesheet (maths.css). A formula Temml cannot parse fails the build with the formula and its line.
import fs from 'node:fs';
import path from 'node:path';
import { ensurePackages, tools } from './install.mjs';

ensurePackages('node_modules/temml/dist/temml.mjs', 'typeset');
ensurePackages('node_modules/@fontsource/stix-two-math/files', 'typeset');
ensurePackages('node_modules/subset-font/package.json', 'typeset');
const { default: temml } = await import('temml');
const { default: subsetFont } = await import('subset-font');

const staging = process.env.TRUNK_STAGING_DIR ?? process.argv[2];
if (!staging) {
  console.error('typeset: no TRUNK_STAGING_DIR (run by Trunk) and no directory given');
  process.exit(1);
}

// Inline style attributes Temml writes (math-depth, display, padding), turned into classes of
// maths.css: a page under a Content-Security-Policy without 'unsafe-inline' refuses them.
const styleClasses = new Map();
function withoutInlineStyles(mathml) {
  return mathml.replace(/<([a-z]+)([^>]*?) style="([^"]*)"([^>]*)>/g, (tag, name, before, style, after) => {
    if (!styleClasses.has(style)) styleClasses.set(style, `tml-s${styleClasses.size}`);
    const cls = styleClasses.get(style);
    let attrs = `${before}${after}`;
    attrs = /\sclass="/.test(attrs) ? attrs.replace(/\sclass="([^"]*)"/, ` class="$1 ${cls}"`) : `${attrs} class="${cls}"`;
    return `<${name}${attrs}>`;
  });
}

/// The page with every \( \) and \[ \] replaced by MathML; `file` names it in errors.
export function typeset(html, file) {
  let count = 0;
  const out = html.replace(/\\\[([\s\S]+?)\\\]|\\\(([\s\S]+?)\\\)/g, (match, display, inline, at) => {
    const tex = display ?? inline;
    try {
      count++;
      const mathml = withoutInlineStyles(temml.renderToString(tex.trim(), { displayMode: display !== undefined, throwOnError: true }));
      // A displayed formula scrolls sideways inside a box of its own where the column is narrower
      // than it (a phone), with a shadow at the edge it scrolls to (style.css, .formula).
      return display === undefined ? mathml : `<span class="formula">${mathml}</span>`;
    } catch (e) {
      const line = html.slice(0, at).split('\n').length;
      throw new Error(`${file}:${line}: ${e.message}\n  in: ${match}`);
    }
  });
  return { out, count };
}

// The characters the maths shows, for the font's subset.
const mathText = new Set();
for (const name of ['index.html']) {
  const file = path.join(staging, name);
  const { out, count } = typeset(fs.readFileSync(file, 'utf8'), `www/${name}`);
  fs.writeFileSync(file, out);
  for (const m of out.match(/<math[\s\S]*?<\/math>/g) ?? []) {
    const text = m.replace(/<[^>]+>/g, '')
      .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
      .replace(/&#([0-9]+);/g, (_, d) => String.fromCodePoint(Number(d)));
    for (const c of text) mathText.add(c);
  }
  console.log(`typeset: ${count} formulas in ${name}`);
}
// Temml's stylesheet for STIX Two Math (the classes its MathML uses: accent and italic corrections
// per engine, array alignment, display maths), pointed at the font shipped beside it.
const temmlDist = path.join(tools, 'node_modules/temml/dist');
const css = fs.readFileSync(path.join(temmlDist, 'Temml-STIX2.css'), 'utf8');
// font-display: swap: the text shows at once in a fallback font rather than waiting for this one.
const pointed = css.replace("url('./STIXTwoMath.woff2')", "url('fonts/stix-two-math.woff2') format('woff2');\n  font-display: swap");
if (pointed === css) {
  console.error('typeset: Temml-STIX2.css no longer names ./STIXTwoMath.woff2; update typeset.mjs');
  process.exit(1);
}
const rules = [...styleClasses].map(([style, cls]) => `math.${cls}, math .${cls} { ${style} }`).join('\n');
fs.writeFileSync(path.join(staging, 'maths.css'), `${pointed}\n/* Temml's inline styles, as classes (tools/typeset.mjs). */\n${rules}\n`);
// The font cut down to the glyphs the page's maths uses (and printable ASCII), with HarfBuzz's
// subsetter (npm subset-font): it keeps the OpenType MATH table and the size variants and parts
// of the kept glyphs that stretchy operators are built from. 403 KB whole, about 13 KB here.
const font = fs.readFileSync(path.join(tools, 'node_modules/@fontsource/stix-two-math/files/stix-two-math-latin-400-normal.woff2'));
for (let c = 0x20; c < 0x7f; c++) mathText.add(String.fromCharCode(c));
// A single-letter <mi> shows its mathematical italic form (text-transform: math-auto maps x to
// U+1D465), and mathvariant="bold" its bold form: those code points, for each letter used.
const MATH_ITALIC_GREEK = { '∇': 0x1d6fb, '∂': 0x1d715, 'ϵ': 0x1d716, 'ϑ': 0x1d717, 'ϰ': 0x1d718, 'ϕ': 0x1d719, 'ϱ': 0x1d71a, 'ϖ': 0x1d71b };
for (const c of [...mathText]) {
  const code = c.codePointAt(0);
  if (code >= 0x41 && code <= 0x5a) {
    mathText.add(String.fromCodePoint(0x1d434 + code - 0x41, 0x1d400 + code - 0x41));
  } else if (code >= 0x61 && code <= 0x7a) {
    mathText.add(code === 0x68 ? 'ℎ' : String.fromCodePoint(0x1d44e + code - 0x61));
    mathText.add(String.fromCodePoint(0x1d41a + code - 0x61));
  } else if (code >= 0x391 && code <= 0x3a9) {
    mathText.add(String.fromCodePoint(0x1d6e2 + code - 0x391));
  } else if (code >= 0x3b1 && code <= 0x3c9) {
    mathText.add(String.fromCodePoint(0x1d6fc + code - 0x3b1));
  } else if (MATH_ITALIC_GREEK[c]) {
    mathText.add(String.fromCodePoint(MATH_ITALIC_GREEK[c]));
  }
}
const subset = await subsetFont(font, [...mathText].join(''), { targetFormat: 'woff2' });
fs.mkdirSync(path.join(staging, 'fonts'), { recursive: true });
fs.writeFileSync(path.join(staging, 'fonts/stix-two-math.woff2'), subset);
console.log(`typeset: the math font subset to ${mathText.size} characters, ${font.length} -> ${subset.length} bytes`);
