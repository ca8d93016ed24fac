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
const { default: temml } = await import('temml');

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
      return withoutInlineStyles(temml.renderToString(tex.trim(), { displayMode: display !== undefined, throwOnError: true }));
    } catch (e) {
      const line = html.slice(0, at).split('\n').length;
      throw new Error(`${file}:${line}: ${e.message}\n  in: ${match}`);
    }
  });
  return { out, count };
}

for (const name of ['index.html']) {
  const file = path.join(staging, name);
  const { out, count } = typeset(fs.readFileSync(file, 'utf8'), `www/${name}`);
  fs.writeFileSync(file, out);
  console.log(`typeset: ${count} formulas in ${name}`);
}
// Temml's stylesheet for STIX Two Math (the classes its MathML uses: accent and italic corrections
// per engine, array alignment, display maths), pointed at the font shipped beside it.
const temmlDist = path.join(tools, 'node_modules/temml/dist');
const css = fs.readFileSync(path.join(temmlDist, 'Temml-STIX2.css'), 'utf8');
const pointed = css.replace("url('./STIXTwoMath.woff2')", "url('fonts/stix-two-math.woff2') format('woff2')");
if (pointed === css) {
  console.error('typeset: Temml-STIX2.css no longer names ./STIXTwoMath.woff2; update typeset.mjs');
  process.exit(1);
}
const rules = [...styleClasses].map(([style, cls]) => `math.${cls}, math .${cls} { ${style} }`).join('\n');
fs.writeFileSync(path.join(staging, 'maths.css'), `${pointed}\n/* Temml's inline styles, as classes (tools/typeset.mjs). */\n${rules}\n`);
const font = path.join(tools, 'node_modules/@fontsource/stix-two-math/files/stix-two-math-latin-400-normal.woff2');
fs.mkdirSync(path.join(staging, 'fonts'), { recursive: true });
fs.copyFileSync(font, path.join(staging, 'fonts/stix-two-math.woff2'));
