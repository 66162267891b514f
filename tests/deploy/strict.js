// Unknown-field check for Kubernetes objects (what kubeconform's -strict
// does): the schema validators of kubernetes-models accept fields the API
// does not know (a misspelt `readinessProbes` would pass), so this walks an
// object along the model's type declarations (the package's .d.ts files,
// generated from the same OpenAPI schemas) and reports every field that is
// not declared.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pkgDir = (name) => path.dirname(require.resolve(`${name}/package.json`));
const MODELS = pkgDir('kubernetes-models');

const parsed = new Map(); // file → {props: Map(name → type), imports: Map(alias → file)} | null

// An import specifier of a .d.ts → the .d.ts file it names.
function resolveImport(from, spec) {
  if (spec.startsWith('.')) return path.resolve(path.dirname(from), spec.replace(/\.js$/, '.d.ts'));
  const m = /^(@[^/]+\/[^/]+|[^/]+)\/(.+)$/.exec(spec);
  return m ? path.join(pkgDir(m[1]), `${m[2].replace(/\.js$/, '')}.d.ts`) : null;
}

// The first interface of a model's .d.ts: its property names and their types.
function parse(file) {
  if (parsed.has(file)) return parsed.get(file);
  let result = null;
  if (file && fs.existsSync(file)) {
    const text = fs.readFileSync(file, 'utf8').replace(/\/\*\*[\s\S]*?\*\//g, '');
    const imports = new Map();
    for (const [, alias, spec] of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) imports.set(alias, resolveImport(file, spec));
    const body = /^export interface \w+(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}$/m.exec(text);
    if (body) {
      const props = new Map();
      let cur = null;
      for (const line of body[1].split('\n')) {
        const m = /^ {4}"([^"]+)"\??: (.*)$/.exec(line);
        if (m) {
          cur = m[1];
          props.set(cur, m[2]);
        } else if (cur && line.trim()) {
          props.set(cur, `${props.get(cur)} ${line.trim()}`);
        }
      }
      result = { props, imports };
    }
  }
  parsed.set(file, result);
  return result;
}

// Walks `value` as type `type` (a declaration's text) declared in `model`.
function walk(value, type, model, where, out) {
  if (value === null || typeof value !== 'object') return;
  type = type.replace(/;$/, '').trim();
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, m[1], model, `${where}[${i}]`, out));
  } else if ((m = /^\{ \[key: string\]: (.+?);? \}$/.exec(type))) {
    for (const [k, v] of Object.entries(value)) walk(v, m[1], model, `${where}.${k}`, out);
  } else if (/^I\w+$/.test(type) && model.imports.has(type)) {
    check(value, parse(model.imports.get(type)), where, out);
  }
}

function check(value, model, where, out) {
  if (!model || Array.isArray(value)) return; // a scalar alias (Quantity, IntOrString ...)
  for (const [k, v] of Object.entries(value)) {
    const type = model.props.get(k);
    if (type === undefined) out.push(`${where}.${k}`);
    else walk(v, type, model, `${where}.${k}`, out);
  }
}

/** Paths of the fields of a Kubernetes object that its schema does not declare ([] if none). */
export function strictCheck(doc) {
  const [group, version] = doc.apiVersion.includes('/') ? doc.apiVersion.split('/') : [null, doc.apiVersion];
  const file = path.join(MODELS, ...(group ? [group, version] : [version]), `${doc.kind}.d.ts`);
  const model = parse(file);
  if (!model) throw new Error(`no model for ${doc.apiVersion} ${doc.kind}`);
  const out = [];
  check(doc, model, doc.kind, out);
  return out;
}
