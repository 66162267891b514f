// Offline checks of the deployment files (issue 8): no Docker engine and no
// cluster runs here, so each file is checked by the tool or schema that
// defines it, and against the built services.
//
//   Dockerfile          its stages, user and command; its build stage run here
//                       on a copy of the build context (.dockerignore applied);
//                       scripts/runtime-packages.sh finds every library's package
//   docker-compose.yml  `docker-compose config` (Debian's Compose, the Compose
//                       file schema) and the stack's shape
//   k8s/                every manifest file, and `kubectl kustomize` of the base
//                       and of each overlay, validated against the Kubernetes
//                       JSON schemas of kubernetes-models (npm, Kubernetes 1.34,
//                       compiled into the package: no download) plus a check for
//                       unknown fields; the drain, probes, scaling and references
//   commands and env    every command an image runs is a built service that
//                       accepts its arguments, and every RT_* variable given to
//                       it is one its --help lists
//
// Services not built yet (build/bin/NAME missing) are skipped, and said so.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import { strictCheck } from './strict.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = process.env.TEST_BIN_DIR || path.join(ROOT, 'build/bin');
const SERVICES = ['edge', 'presence', 'chat-history', 'crdt-merge'];
const KUBECTL = process.env.KUBECTL || 'kubectl';
const OVERLAYS = ['base', 'overlays/dev', 'overlays/prod'];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
  return r;
}

function mustRun(cmd, args, opts) {
  const r = run(cmd, args, opts);
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} failed (${r.status}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

const docsOf = (text) => YAML.parseAllDocuments(text).map((d) => {
  if (d.errors.length) throw new Error(d.errors.map((e) => e.message).join('\n'));
  return d.toJSON();
}).filter((d) => d);

const built = (svc) => fs.existsSync(path.join(BIN, svc));

// ---- what the services accept ------------------------------------------------------

const helpCache = new Map();
/** {vars: Set of RT_* names} from `svc args... --help`, or {error} when it refuses the arguments. */
function accepted(svc, args = []) {
  const key = [svc, ...args].join(' ');
  if (!helpCache.has(key)) {
    const r = run(path.join(BIN, svc), [...args, '--help'], { env: { PATH: process.env.PATH } });
    helpCache.set(key, r.status === 0
      ? { vars: new Set(r.stdout.match(/^\s+(RT_[A-Z0-9_]+)/gm).map((s) => s.trim())) }
      : { error: `${key}: exit ${r.status}: ${r.stderr.trim()}` });
  }
  return helpCache.get(key);
}

// Variables of the public contract (PROTOCOL.md) a service may not list yet.
const PROTOCOL_MD = path.join(ROOT, '..', 'shared', 'PROTOCOL.md');
const PROTOCOL = fs.existsSync(PROTOCOL_MD) ? fs.readFileSync(PROTOCOL_MD, 'utf8') : '';

/**
 * Checks one container: its command is a service that accepts its arguments
 * and every RT_* variable in `env`. Returns notes for the test's diagnostics;
 * throws on a mismatch.
 */
function checkCommand(where, command, env) {
  assert.ok(Array.isArray(command) && command.length > 0, `${where}: no command`);
  const [svc, ...args] = command;
  assert.ok(SERVICES.includes(svc), `${where}: command ${svc} is not one of ${SERVICES.join(', ')}`);
  if (!built(svc)) return [`${where}: ${svc} not built; its command and variables not checked`];
  const acc = accepted(svc, args);
  assert.ok(!acc.error, `${where}: ${acc.error}`);
  const notes = [];
  for (const name of Object.keys(env).filter((k) => k.startsWith('RT_'))) {
    if (acc.vars.has(name)) continue;
    // a variable of the contract the service does not implement yet: said, not failed
    assert.ok(PROTOCOL.includes(`\`${name}\``), `${where}: ${svc} does not accept ${name} (its --help lists ${[...acc.vars].join(', ')})`);
    notes.push(`${where}: ${name} is in PROTOCOL.md but ${svc} --help does not list it yet`);
  }
  return notes;
}

// ---- Dockerfile -----------------------------------------------------------------

function dockerfile() {
  const text = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages = [];
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === 'FROM') stages.push({ from: m[2], ins: [] });
    else stages.at(-1).ins.push({ op: m[1], arg: m[2].trim() });
  }
  return stages;
}

describe('Dockerfile', () => {
  const stages = dockerfile();
  const last = stages.at(-1);
  const get = (op) => last.ins.filter((i) => i.op === op).map((i) => i.arg);

  test('multi-stage on debian:bookworm-slim; the final stage runs as a non-root user', () => {
    assert.ok(stages.length >= 2, 'a build stage and a runtime stage');
    for (const s of stages) assert.match(s.from, /^debian:bookworm-slim(\s|$)/);
    const user = get('USER').at(-1);
    assert.ok(user, 'USER in the final stage');
    assert.match(user, /^[1-9]\d*(:[1-9]\d*)?$/, 'a numeric non-zero uid (runAsNonRoot can check it)');
    // only the build stage's output and the migrations reach the final image
    const copies = get('COPY');
    for (const c of copies) assert.match(c, /^--from=build |^migrations\/ /, `final stage copies ${c}`);
    assert.ok(!get('RUN').join(' ').match(/build-essential|-dev\b/), 'no tool chain in the final stage');
  });

  test('its default command is a service; it sets no RT_* variable a service would not accept', (t) => {
    const cmd = JSON.parse(get('CMD').at(-1));
    const env = Object.fromEntries(get('ENV').map((e) => e.split(/[= ]/, 2)));
    for (const n of checkCommand('Dockerfile CMD', cmd, env)) t.diagnostic(n);
  });

  test('the build stage installs every build library of scripts/deps.sh', () => {
    const deps = fs.readFileSync(path.join(ROOT, 'scripts/deps.sh'), 'utf8');
    const wanted = deps.match(/\blib[a-z0-9.-]+-dev\b/g).filter((p) => p !== 'libcunit1-dev'); // CUnit: unit tests only
    const run0 = stages[0].ins.filter((i) => i.op === 'RUN').map((i) => i.arg).join(' ');
    for (const p of new Set(wanted)) assert.ok(run0.includes(p), `build stage lacks ${p}`);
    assert.ok(run0.includes('protobuf-c-compiler') && run0.includes('build-essential'));
  });

  test('.dockerignore lets in everything the build copies', () => {
    const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    assert.equal(ignore[0], '*');
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1));
    const sources = stages.flatMap((s) => s.ins).filter((i) => i.op === 'COPY' && !i.arg.startsWith('--from'))
      .flatMap((i) => i.arg.split(/\s+/).slice(0, -1));
    for (const src of sources) assert.ok(allowed.includes(src), `COPY ${src} is not let in by .dockerignore`);
  });

  test('the build stage works on the build context alone, and runtime-packages.sh names the libraries', { timeout: 300000 }, (t) => {
    const services = SERVICES.filter(built);
    const ctx = fs.mkdtempSync(path.join(os.tmpdir(), 'rtsync-image-'));
    try {
      for (const src of ['Makefile', 'proto', 'shared', 'services', 'migrations', 'scripts/runtime-packages.sh']) {
        fs.cpSync(path.join(ROOT, src), path.join(ctx, src), { recursive: true });
      }
      // the Dockerfile builds every service; here those the tree builds now
      if (services.length < SERVICES.length) t.diagnostic(`built here: ${services.join(', ')}`);
      mustRun('make', ['-j2', 'MODE=release', ...services.map((s) => `build/bin/${s}`)], { cwd: ctx });
      const pkgs = mustRun(path.join(ctx, 'scripts/runtime-packages.sh'), services.map((s) => path.join(ctx, 'build/bin', s)), { cwd: ctx })
        .trim().split('\n');
      for (const p of ['libc6', 'libnats3.4', 'libpq5', 'libprotobuf-c1', 'libh2o-evloop0.13']) {
        assert.ok(pkgs.some((x) => x.startsWith(p.replace(/[\d.]+$/, ''))), `runtime packages lack ${p}: ${pkgs}`);
      }
      assert.ok(!pkgs.some((p) => p.endsWith('-dev')), `a -dev package among the runtime packages: ${pkgs}`);
      t.diagnostic(`runtime packages: ${pkgs.join(' ')}`);
    } finally {
      fs.rmSync(ctx, { recursive: true, force: true });
    }
  });
});

// ---- docker-compose.yml ------------------------------------------------------------

describe('docker-compose.yml', () => {
  let compose;
  const load = () => {
    if (!compose) {
      // the calling shell's RT_* would show up in the normalized file
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RT_')));
      compose = YAML.parse(mustRun('docker-compose', ['-f', 'docker-compose.yml', 'config'], { env }));
    }
    return compose;
  };

  test('docker-compose config accepts it', () => {
    load();
  });

  test('the stack of `make run`: NATS, PostgreSQL with a volume, migrations, three back-ends, two edges', () => {
    const s = load().services;
    assert.deepEqual(Object.keys(s).sort(),
      ['chat-history', 'crdt-merge', 'edge-1', 'edge-2', 'migrate', 'nats', 'postgres', 'presence']);
    assert.ok(s.postgres.volumes.some((v) => (v.target || v.split(':')[1]) === '/var/lib/postgresql/data'));
    assert.ok(load().volumes.pgdata !== undefined);
    assert.deepEqual(s.migrate.command, ['chat-history', 'migrate']);
    assert.equal(s.migrate.depends_on.postgres.condition, 'service_healthy');
    for (const b of ['presence', 'chat-history', 'crdt-merge']) {
      assert.equal(s[b].depends_on.migrate.condition, 'service_completed_successfully', b);
      assert.equal(s[b].depends_on.nats.condition, 'service_healthy', b);
    }
    const ports = ['edge-1', 'edge-2'].map((e) => s[e].ports[0].published);
    assert.deepEqual(ports.map(Number), [8080, 8081]);
    for (const e of ['edge-1', 'edge-2']) {
      assert.ok(s[e].healthcheck.test.join(' ').includes('/readyz'), `${e} health check`);
      for (const b of ['presence', 'chat-history', 'crdt-merge']) assert.ok(s[e].depends_on[b], `${e} starts after ${b}`);
      // drain (RT_DRAIN_TIMEOUT) fits in the stop grace period
      assert.ok(parseSeconds(s[e].stop_grace_period) > parseSeconds(s[e].environment.RT_DRAIN_TIMEOUT || '8s'));
    }
    for (const name of ['nats', 'postgres']) assert.ok(s[name].healthcheck, `${name} health check`);
  });

  test('every command is a service that accepts its arguments and RT_* variables', (t) => {
    for (const [name, svc] of Object.entries(load().services)) {
      if (svc.image !== 'rtsync:dev') continue;
      for (const n of checkCommand(`compose ${name}`, svc.command, svc.environment || {})) t.diagnostic(n);
    }
  });
});

function parseSeconds(v) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(v));
  assert.ok(m, `duration ${v}`);
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2] || 's'];
}

// ---- Kubernetes -------------------------------------------------------------------

const modelCache = new Map();
async function validateK8s(doc, where) {
  assert.ok(doc.apiVersion && doc.kind, `${where}: apiVersion and kind`);
  const [group, version] = doc.apiVersion.includes('/') ? doc.apiVersion.split('/') : [null, doc.apiVersion];
  const mod = group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`;
  if (!modelCache.has(mod)) modelCache.set(mod, await import(mod).catch(() => null));
  const Model = modelCache.get(mod)?.[doc.kind];
  assert.ok(Model, `${where}: unknown kind ${doc.apiVersion} ${doc.kind}`);
  if (doc.kind === 'Secret' && doc.data) {
    // kustomize folds long base64 values over lines; the API server's decoder skips newlines
    doc = { ...doc, data: Object.fromEntries(Object.entries(doc.data).map(([k, v]) => [k, v.replace(/\s+/g, '')])) };
  }
  try {
    new Model(doc).validate();
  } catch (e) {
    throw new Error(`${where} (${doc.kind} ${doc.metadata?.name}): ${e.message}`);
  }
  const unknown = strictCheck(doc);
  assert.deepEqual(unknown, [], `${where} (${doc.kind} ${doc.metadata?.name}): unknown fields`);
}

function manifestFiles(dir = path.join(ROOT, 'k8s')) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return manifestFiles(p);
    // kustomization.yaml is kustomize's; patches.yaml holds partial objects (checked in the rendered overlays)
    return /\.ya?ml$/.test(e.name) && !['kustomization.yaml', 'patches.yaml'].includes(e.name) ? [p] : [];
  });
}

const rendered = new Map();
function render(overlay) {
  if (!rendered.has(overlay)) {
    rendered.set(overlay, docsOf(mustRun(KUBECTL, ['kustomize', path.join('k8s', overlay)])));
  }
  return rendered.get(overlay);
}

const byKind = (docs, kind) => docs.filter((d) => d.kind === kind);
const find = (docs, kind, name) => docs.find((d) => d.kind === kind && d.metadata.name === name);
const matches = (selector, labels) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** RT_* environment of a container, with envFrom ConfigMaps resolved in `docs`. */
function containerEnv(c, docs, where) {
  const env = {};
  for (const from of c.envFrom || []) {
    const ref = from.configMapRef?.name;
    assert.ok(ref, `${where}: envFrom only from ConfigMaps (secrets go by key)`);
    const cm = find(docs, 'ConfigMap', ref);
    assert.ok(cm, `${where}: ConfigMap ${ref} not in the rendered manifests`);
    Object.assign(env, cm.data);
  }
  for (const e of c.env || []) env[e.name] = e.value ?? e.valueFrom;
  return env;
}

function podSpecs(docs) {
  return docs.filter((d) => ['Deployment', 'StatefulSet', 'Job'].includes(d.kind))
    .map((d) => ({ doc: d, spec: d.spec.template.spec, where: `${d.kind} ${d.metadata.name}` }));
}

const isRtsync = (c) => /(^|\/)rtsync(:|$)/.test(c.image);

describe('Kubernetes manifests', () => {
  test('every manifest file is valid against the Kubernetes schemas', async () => {
    const files = manifestFiles();
    assert.ok(files.length >= 7);
    for (const f of files) {
      for (const [i, doc] of docsOf(fs.readFileSync(f, 'utf8')).entries()) await validateK8s(doc, `${path.relative(ROOT, f)}#${i}`);
    }
  });

  for (const overlay of OVERLAYS) {
    test(`kubectl kustomize k8s/${overlay} renders, and every object is valid`, async () => {
      const docs = render(overlay);
      for (const [i, doc] of docs.entries()) await validateK8s(doc, `k8s/${overlay}#${i}`);
    });
  }

  for (const overlay of ['overlays/dev', 'overlays/prod']) {
    describe(`k8s/${overlay}`, () => {
      test('Deployments for every service, back-ends with two replicas; NATS a three-node cluster', () => {
        const docs = render(overlay);
        for (const s of SERVICES) assert.ok(find(docs, 'Deployment', s), `Deployment ${s}`);
        for (const s of ['presence', 'chat-history', 'crdt-merge']) {
          assert.equal(find(docs, 'Deployment', s).spec.replicas, 2, s);
          assert.ok(byKind(docs, 'PodDisruptionBudget').some((p) => p.metadata.name === s), `PDB ${s}`);
        }
        const nats = find(docs, 'StatefulSet', 'nats');
        assert.equal(nats.spec.replicas, 3);
        const headless = find(docs, 'Service', nats.spec.serviceName);
        assert.equal(headless.spec.clusterIP, 'None');
        const conf = find(docs, 'ConfigMap', nats.spec.template.spec.volumes[0].configMap.name).data['nats.conf'];
        for (let i = 0; i < 3; i++) assert.ok(conf.includes(`nats://nats-${i}.${headless.metadata.name}:6222`), `route to nats-${i}`);
        const client = find(docs, 'Service', 'nats');
        assert.ok(client && matches(client.spec.selector, nats.spec.template.metadata.labels));
      });

      test('the edge: Service, HPA, PDB, probes on /readyz and /healthz, a drain that fits the grace period', () => {
        const docs = render(overlay);
        const edge = find(docs, 'Deployment', 'edge');
        const labels = edge.spec.template.metadata.labels;
        assert.ok(byKind(docs, 'Service').some((s) => s.spec.selector && matches(s.spec.selector, labels) && s.metadata.name !== 'nats'));
        const hpa = byKind(docs, 'HorizontalPodAutoscaler').find((h) => h.spec.scaleTargetRef.name === 'edge');
        assert.ok(hpa && hpa.spec.scaleTargetRef.kind === 'Deployment' && hpa.spec.minReplicas >= 2);
        assert.ok(byKind(docs, 'PodDisruptionBudget').some((p) => matches(p.spec.selector.matchLabels, labels)));
        const spec = edge.spec.template.spec;
        const c = spec.containers[0];
        assert.equal(c.readinessProbe.httpGet.path, '/readyz');
        assert.equal(c.livenessProbe.httpGet.path, '/healthz');
        const port = c.ports.find((p) => p.name === c.readinessProbe.httpGet.port || p.containerPort === c.readinessProbe.httpGet.port);
        const env = containerEnv(c, docs, 'edge');
        assert.equal(Number(env.RT_EDGE_LISTEN.split(':').pop()), port.containerPort, 'probes reach the listen port');
        const [cmd, secs] = c.lifecycle.preStop.exec.command;
        assert.equal(cmd, 'sleep');
        const drain = parseSeconds(env.RT_DRAIN_TIMEOUT || '8s');
        assert.ok(spec.terminationGracePeriodSeconds >= Number(secs) + drain + 2,
          `grace ${spec.terminationGracePeriodSeconds} s < preStop ${secs} s + drain ${drain} s + 2 s`);
        assert.equal(edge.spec.strategy.rollingUpdate.maxUnavailable, 0);
      });

      test('every container has requests and limits; rtsync pods run as non-root', () => {
        for (const { spec, where } of podSpecs(render(overlay))) {
          for (const c of spec.containers) {
            for (const k of ['requests', 'limits']) {
              assert.ok(c.resources?.[k]?.cpu && c.resources[k].memory, `${where}/${c.name}: ${k}`);
            }
            if (isRtsync(c)) {
              assert.ok(spec.securityContext.runAsNonRoot && spec.securityContext.runAsUser > 0, where);
              assert.equal(c.securityContext.allowPrivilegeEscalation, false, where);
            }
          }
        }
      });

      test('the migration Job runs `chat-history migrate`; the JWT and database URL come from the Secret', () => {
        const docs = render(overlay);
        const job = byKind(docs, 'Job')[0];
        assert.deepEqual(job.spec.template.spec.containers[0].command, ['chat-history', 'migrate']);
        const secretOf = (dep, name) => dep.spec.template.spec.containers[0].env.find((e) => e.name === name)?.valueFrom?.secretKeyRef;
        assert.ok(secretOf(find(docs, 'Deployment', 'edge'), 'RT_JWT_SECRET'));
        for (const s of ['chat-history', 'crdt-merge']) assert.ok(secretOf(find(docs, 'Deployment', s), 'RT_DATABASE_URL'), s);
        assert.ok(secretOf(job, 'RT_DATABASE_URL'));
      });

      test('every ConfigMap and Secret referred to exists (prod: the external Secret rtsync-secrets)', () => {
        const docs = render(overlay);
        const have = new Set(docs.filter((d) => ['ConfigMap', 'Secret'].includes(d.kind)).map((d) => `${d.kind}/${d.metadata.name}`));
        const external = overlay.endsWith('prod') ? new Set(['Secret/rtsync-secrets']) : new Set();
        const refs = JSON.stringify(docs, (k, v) => v).matchAll(/"(configMapRef|configMapKeyRef|configMap|secretKeyRef|secretRef)":\{[^}]*?"name":"([^"]+)"/g);
        let n = 0;
        for (const [, kind, name] of refs) {
          const ref = `${kind.startsWith('secret') ? 'Secret' : 'ConfigMap'}/${name}`;
          assert.ok(have.has(ref) || external.has(ref), `${overlay}: ${ref} is referred to but not defined`);
          n++;
        }
        assert.ok(n > 5);
      });

      test('every rtsync container runs a service that accepts its arguments and RT_* variables', (t) => {
        const docs = render(overlay);
        for (const { spec, where } of podSpecs(docs)) {
          for (const c of spec.containers.filter(isRtsync)) {
            for (const n of checkCommand(`${overlay} ${where}`, c.command, containerEnv(c, docs, where))) t.diagnostic(n);
          }
        }
      });
    });
  }

  test('dev runs PostgreSQL in the cluster with a volume; prod uses an external database', () => {
    const pg = find(render('overlays/dev'), 'StatefulSet', 'postgres');
    assert.ok(pg && pg.spec.volumeClaimTemplates.length === 1);
    const url = Buffer.from(find(render('overlays/dev'), 'Secret', byKind(render('overlays/dev'), 'Secret')
      .find((s) => s.metadata.name.startsWith('rtsync-secrets')).metadata.name).data.RT_DATABASE_URL, 'base64').toString();
    assert.match(url, /@postgres:5432\/rtsync/);
    assert.ok(!render('overlays/prod').some((d) => d.metadata.name.startsWith('postgres')), 'no PostgreSQL in prod');
    assert.ok(!byKind(render('overlays/prod'), 'Secret').length, 'prod commits no Secret');
  });
});
