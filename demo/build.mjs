// Builds the demo app into build/demo/ (served by the edge at / and /assets/):
// index.html, assets/app.js (one ES module bundle), assets/app.css.
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = process.argv[2] || path.join(here, '../build/demo');
fs.mkdirSync(path.join(out, 'assets'), { recursive: true });
await esbuild.build({
  entryPoints: [path.join(here, 'src/main.js')],
  bundle: true,
  format: 'esm',
  target: 'es2020',
  minify: true,
  sourcemap: true,
  outfile: path.join(out, 'assets/app.js'),
  logLevel: 'warning',
});
fs.copyFileSync(path.join(here, 'src/app.css'), path.join(out, 'assets/app.css'));
fs.copyFileSync(path.join(here, 'index.html'), path.join(out, 'index.html'));
console.log(`demo: built ${out}`);
