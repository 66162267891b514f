// Integration-test harness: starts an isolated rtsync stack for one test file
// on free loopback ports -- its own nats-server, optionally its own PostgreSQL
// (copied from a template data dir made once per machine by
// `scripts/stack.sh pg-init`), back-end services and N edges -- and gives the
// test control over every process (kill, restart, stop/start PostgreSQL).
//
//   import { startStack } from './lib/stack.js';
//   let stack;
//   before(async () => { stack = await startStack({ services: ['chat-history'], edges: 2 }); });
//   after(() => stack?.stop());
//   stack.edges[0].ws    // 'ws://127.0.0.1:PORT' (also .http, .port, .name 'edge-1')
//
// Options of startStack: see its comment at the end of this file. Controls:
//   stack.kill(name, signal?)       signal (default graceful) and wait → {code, signal, ms}
//   stack.signal(name, sig)         send only (SIGSTOP, SIGCONT ...)
//   stack.start(name, {env}?)       start a stopped process again, same port, wait ready
//   stack.restart(name, {signal, env}?)
//   stack.stopPg(mode?) / startPg() mode 'fast' | 'smart' | 'immediate' | 'kill'
//   stack.addEdge({env}?) / addService(kind, {env}?)   one more process
//   stack.waitReady(url, ms?)       poll until 200
//   stack.psql(sql)                 → psql -At output as rtsync
//   stack.natsConnections()         NATS monitor /connz entries
//   stack.natsUrl, stack.databaseUrl, stack.nats.monitorUrl, stack.pid(name),
//   stack.isRunning(name), stack.names, stack.logs(name), stack.printLogs(),
//   stack.withLogs(fn) (prints the logs when fn throws), stack.stop({allowExits}?)
// Process names: nats, postgres, edge-N, <service>-N.
// Environment: TEST_BIN_DIR (binaries, default build/bin), RT_TEST_KEEP_TMP=1
// (keep the PostgreSQL scratch dirs), RT_TEST_QUIET_LOGS=1 (no log tails on failure).
//
// Every process's stdout/stderr goes to build/test-logs/<test>/<name>.log; when
// the test process ends with failures the tails of those logs are printed.
// Children get SIGKILL when the test process dies, however it dies (setpriv
// --pdeathsig), so no stack outlives its test.

import { spawn, spawnSync, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const STACK_SH = path.join(ROOT, 'scripts/stack.sh');
const IS_ROOT = process.getuid() === 0;
const PG_OWNER = 'postgres';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- free ports -------------------------------------------------------------------

// Ports come from below the kernel's ephemeral range, so that outgoing client
// sockets do not take the port of a process the test is restarting.
const takenPorts = new Set();

function canBind(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** A loopback TCP port nobody listens on now and this process never handed out. */
export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (takenPorts.has(port)) continue;
    if (await canBind(port)) {
      takenPorts.add(port);
      return port;
    }
  }
  throw new Error('no free port found');
}

const CRASH_SIGNALS = new Set(['SIGSEGV', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGILL', 'SIGTRAP', 'SIGSYS']);
const PORT_IN_USE = /address already in use|EADDRINUSE|could not bind|bind: address/i;

// ---- small HTTP and wait helpers ----------------------------------------------------

/** GET url → {status, body} (no keep-alive); rejects on connection errors. */
export function httpGet(url, timeoutMs = 2000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
  });
}

/** Polls url until it answers 200 (e.g. an edge's /readyz). */
export async function waitReady(url, timeoutMs = 20000, isDead = () => null) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  for (;;) {
    const dead = isDead();
    if (dead) throw new Error(`${url}: ${dead}`);
    try {
      const r = await httpGet(url, 1000);
      if (r.status === 200) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready after ${timeoutMs} ms (${last})`);
    await sleep(50);
  }
}

// ---- process registry: nothing outlives the test process -------------------------------

const live = new Set(); // Proc with a running child
const stacks = new Set();

function killAllNow() {
  for (const p of live) {
    try {
      process.kill(p.child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

let hooksInstalled = false;
function installExitHooks() {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', (code) => {
    killAllNow();
    if ((code || process.exitCode) && !process.env.RT_TEST_QUIET_LOGS) {
      for (const s of stacks) s.printLogs({ lines: 40 });
    }
  });
  for (const [sig, n] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
    process.on(sig, () => {
      killAllNow();
      process.exit(128 + n);
    });
  }
}

// ---- PostgreSQL data dirs -------------------------------------------------------------

function pgBinDir() {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const base = '/usr/lib/postgresql';
  const vers = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => /^\d+$/.test(v)) : [];
  if (!vers.length) throw new Error('PostgreSQL server not installed (run scripts/deps.sh)');
  return path.join(base, vers.sort((a, b) => b - a)[0], 'bin');
}

// The postgres user must be able to reach a data dir; a checkout below a
// closed directory (/root/...) gets its scratch space in /var/tmp instead.
function pgReachable(dir) {
  if (!IS_ROOT) return true;
  return spawnSync('runuser', ['-u', PG_OWNER, '--', 'test', '-x', dir]).status === 0;
}

let scratchBase;
function scratchDir() {
  if (scratchBase) return scratchBase;
  const build = path.join(ROOT, 'build');
  fs.mkdirSync(build, { recursive: true });
  if (pgReachable(build)) {
    scratchBase = build;
  } else {
    const h = createHash('sha1').update(ROOT).digest('hex').slice(0, 10);
    scratchBase = path.join('/var/tmp', `rtsync-test-${h}`);
    fs.mkdirSync(scratchBase, { recursive: true, mode: 0o755 });
  }
  return scratchBase;
}

// The template is keyed by the server version and by stack.sh (which holds
// the cluster settings), so a change of either makes a new one.
function pgTemplate() {
  const bin = pgBinDir();
  const key = createHash('sha1').update(bin).update(fs.readFileSync(STACK_SH)).digest('hex').slice(0, 10);
  const tpl = path.join(scratchDir(), `pg-template-${key}`);
  if (fs.existsSync(path.join(tpl, 'PG_VERSION'))) return tpl;
  const tmp = `${tpl}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  const r = spawnSync(STACK_SH, ['pg-init', tmp], { encoding: 'utf8', env: { ...process.env, PG_BIN: bin } });
  if (r.status !== 0) throw new Error(`scripts/stack.sh pg-init failed:\n${r.stderr}${r.stdout}`);
  try {
    fs.renameSync(tmp, tpl);
  } catch {
    fs.rmSync(tmp, { recursive: true, force: true }); // another test file made it first
  }
  for (const d of fs.readdirSync(scratchDir())) {
    if (/^pg-template-[0-9a-f]+$/.test(d) && path.join(scratchDir(), d) !== tpl) {
      fs.rmSync(path.join(scratchDir(), d), { recursive: true, force: true }); // made by an older stack.sh
    }
  }
  return tpl;
}

function copyTemplate(dest) {
  const r = spawnSync('cp', ['-a', pgTemplate(), dest], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cp template: ${r.stderr}`);
}

// ---- one managed process --------------------------------------------------------------

class Proc {
  constructor(stack, spec) {
    this.stack = stack;
    Object.assign(this, spec); // name, kind, port, cmd(), env, ready()
    this.child = null;
    this.exit = null; // {code, signal} of the last exit
    this.expectingExit = false;
    this.logFile = path.join(stack.logDir, `${spec.name}.log`);
    // graceful stop: PostgreSQL fast shutdown; nats-server exits 1 on SIGTERM
    this.stopSignal = { postgres: 'SIGINT', nats: 'SIGINT' }[spec.kind] || 'SIGTERM';
  }

  get running() {
    return this.child !== null && this.exit === null;
  }

  spawn(extraEnv = {}) {
    const [cmd, ...args] = this.cmd();
    const wrapper = ['--pdeathsig', 'SIGKILL'];
    if (this.asPg && IS_ROOT) wrapper.push(`--reuid=${PG_OWNER}`, `--regid=${PG_OWNER}`, '--init-groups');
    const own = typeof this.env === 'function' ? this.env() : this.env;
    const env = { ...this.stack.baseEnv, ...own, ...extraEnv };
    this.lastEnv = env;
    const fd = fs.openSync(this.logFile, 'a');
    fs.writeSync(fd, `\n=== ${new Date().toISOString()} start: ${[cmd, ...args].join(' ')}\n`);
    this.logOffset = fs.fstatSync(fd).size;
    this.exit = null;
    this.expectingExit = false;
    const argv = ['setpriv', ...wrapper, '--', cmd, ...args];
    if (this.stack.cpus) argv.unshift('taskset', '-c', this.stack.cpus);
    const child = spawn(argv[0], argv.slice(1), { env, cwd: ROOT, stdio: ['ignore', fd, fd] });
    fs.closeSync(fd);
    this.child = child;
    live.add(this);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        live.delete(this);
        this.exit = { code, signal };
        if (!this.expectingExit && !this.stack.stopping) {
          this.stack.unexpectedExits.push({ name: this.name, code, signal });
          process.stderr.write(`[stack] ${this.name} exited unexpectedly (code ${code}, signal ${signal})\n`);
        }
        resolve(this.exit);
      });
    });
    child.on('error', (e) => process.stderr.write(`[stack] ${this.name}: ${e.message}\n`));
  }

  // The log written since the last start.
  recentLog() {
    try {
      const all = fs.readFileSync(this.logFile);
      return all.subarray(this.logOffset || 0).toString();
    } catch {
      return '';
    }
  }

  deadReason() {
    return this.exit ? `${this.name} exited (code ${this.exit.code}, signal ${this.exit.signal})` : null;
  }

  // Starts and waits until ready; on a first start, a port lost to someone
  // else is replaced by a new free one (up to 5 times).
  async start({ env, newPorts = false } = {}) {
    for (let attempt = 0; ; attempt++) {
      if (this.beforeStart) await this.beforeStart();
      this.spawn(env);
      try {
        await this.ready();
        return;
      } catch (e) {
        if (this.running) await this.kill('SIGKILL', { timeoutMs: 5000 }).catch(() => {});
        const inUse = PORT_IN_USE.test(this.recentLog());
        if (newPorts && inUse && attempt < 5 && this.repickPorts) {
          this.stack.unexpectedExits = this.stack.unexpectedExits.filter((x) => x.name !== this.name);
          await this.repickPorts();
          continue;
        }
        const tail = this.recentLog().split('\n').slice(-30).join('\n');
        throw new Error(`${this.name} did not become ready: ${e.message}\n--- ${this.logFile} ---\n${tail}`);
      }
    }
  }

  signal(sig) {
    if (!this.running) throw new Error(`${this.name} is not running`);
    process.kill(this.child.pid, sig);
  }

  async kill(sig = this.stopSignal, { timeoutMs = 15000 } = {}) {
    if (!this.running) return this.exit;
    this.expectingExit = true;
    const t0 = Date.now();
    this.signal(sig);
    let timer;
    const timeout = new Promise((r) => (timer = setTimeout(() => r(null), timeoutMs)));
    const res = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (res) return { ...res, ms: Date.now() - t0 };
    process.kill(this.child.pid, 'SIGKILL');
    await this.exited;
    throw new Error(`${this.name} did not exit within ${timeoutMs} ms of ${sig}; killed`);
  }
}

// ---- the stack ------------------------------------------------------------------------

function defaultTestName() {
  const main = process.argv[1] ? path.basename(process.argv[1]) : 'test';
  return main.replace(/\.(test|spec)?\.?[cm]?js$/, '') || 'test';
}

// Inherited RT_* settings would make tests depend on the developer's shell.
function inheritedEnv() {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('RT_') || k === 'RT_LOG_LEVEL') env[k] = v;
  }
  return env;
}

const usedNames = new Map();

export class Stack {
  constructor(opts) {
    let name = opts.name || defaultTestName();
    const n = (usedNames.get(name) || 0) + 1;
    usedNames.set(name, n);
    if (n > 1) name = `${name}-${n}`;
    this.name = name;
    this.opts = opts;
    this.binDir = opts.binDir || process.env.TEST_BIN_DIR || path.join(ROOT, 'build/bin');
    this.logDir = path.join(ROOT, 'build/test-logs', name);
    fs.rmSync(this.logDir, { recursive: true, force: true });
    fs.mkdirSync(this.logDir, { recursive: true });
    this.tmpDir = null;
    this.procs = new Map();
    this.edges = [];
    this.nats = null;
    this.pg = null;
    this.unexpectedExits = [];
    this.claimedCids = new Set(); // NATS connections already attributed to a service
    this.stopping = false;
    this.baseEnv = { ...inheritedEnv(), ...(opts.env || {}) };
    this.cpus = opts.cpus || null;
  }

  /** Names of all processes, in start order. */
  get names() {
    return [...this.procs.keys()];
  }

  get natsUrl() {
    return this.nats.url;
  }

  get databaseUrl() {
    return this.pg ? this.pg.url : undefined;
  }

  proc(name) {
    const p = this.procs.get(name);
    if (!p) throw new Error(`no process ${name} in this stack (have: ${this.names.join(', ')})`);
    return p;
  }

  // env for a process: stack-wide env, then envFor[kind], then envFor[name]
  envOf(kind, name, extra = {}) {
    const f = this.opts.envFor || {};
    return { ...(f[kind] || {}), ...(f[name] || {}), ...extra };
  }

  commonEnv() {
    const env = { RT_NATS_URL: this.nats.url };
    if (this.pg) env.RT_DATABASE_URL = this.pg.url;
    return env;
  }

  add(spec) {
    const p = new Proc(this, spec);
    this.procs.set(spec.name, p);
    return p;
  }

  async startNats() {
    const args = this.opts.natsArgs || [];
    const nats = { port: 0, monitorPort: 0 };
    const pick = async () => {
      nats.port = await freePort();
      nats.monitorPort = await freePort();
      nats.url = `nats://127.0.0.1:${nats.port}`;
      nats.monitorUrl = `http://127.0.0.1:${nats.monitorPort}`;
    };
    await pick();
    this.nats = nats;
    const p = this.add({
      name: 'nats',
      kind: 'nats',
      env: {},
      // the project's settings (max_payload) unless the test brings its own config file
      cmd: () => ['nats-server', ...(args.includes('-c') ? [] : ['-c', path.join(ROOT, 'scripts/nats.conf')]),
        '-a', '127.0.0.1', '-p', `${nats.port}`, '-m', `${nats.monitorPort}`, ...args],
      ready: () => waitReady(`${nats.monitorUrl}/healthz`, 10000, () => p.deadReason()),
      repickPorts: pick,
    });
    await p.start({ newPorts: true });
  }

  async startPostgres() {
    const base = path.join(scratchDir(), 'test-tmp');
    fs.mkdirSync(base, { recursive: true });
    removeOrphanDirs(base);
    this.tmpDir = fs.mkdtempSync(path.join(base, `${this.name}.${process.pid}.`));
    fs.chmodSync(this.tmpDir, 0o755);
    const dataDir = path.join(this.tmpDir, 'pg');
    copyTemplate(dataDir);
    const pg = { dataDir, port: 0 };
    const pick = async () => {
      pg.port = await freePort();
      pg.url = `postgresql://rtsync@127.0.0.1:${pg.port}/rtsync`;
    };
    await pick();
    this.pg = pg;
    const settings = Object.entries(this.opts.pgSettings || {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
    const p = this.add({
      name: 'postgres',
      kind: 'postgres',
      asPg: true,
      env: {},
      cmd: () => [path.join(pgBinDir(), 'postgres'), '-D', dataDir, '-p', `${pg.port}`, ...settings],
      ready: () => waitPgReady(dataDir, 30000, () => p.deadReason()),
      repickPorts: pick,
    });
    await p.start({ newPorts: true });
  }

  async addService(kind, { env = {}, ready } = {}) {
    let i = 1;
    while (this.procs.has(`${kind}-${i}`)) i++;
    const name = `${kind}-${i}`;
    const bin = path.join(this.binDir, kind);
    if (!fs.existsSync(bin)) throw new Error(`${bin} not built`);
    const p = this.add({
      name,
      kind,
      env: { ...this.commonEnv(), RT_INSTANCE_ID: name, ...this.envOf(kind, name, env) },
      cmd: () => [bin],
      // connections that exist before the start are not this service's
      beforeStart: async () => {
        const conns = await this.natsConnections().catch(() => []);
        p.natsBaseline = new Set(conns.map((c) => c.cid));
      },
      ready: () => this.waitServiceReady(p, ready),
    });
    await p.start();
    return p;
  }

  // A back-end service is ready when NATS shows a new client connection of its
  // own (named after RT_INSTANCE_ID, or any new one with subscriptions);
  // `ready: 'none'` skips the check, a RegExp waits for a log line.
  async waitServiceReady(p, ready = this.opts.serviceReady) {
    if (ready === 'none') return;
    const deadline = Date.now() + 15000;
    if (ready instanceof RegExp) {
      while (!ready.test(p.recentLog())) {
        if (p.deadReason()) throw new Error(p.deadReason());
        if (Date.now() > deadline) throw new Error(`no log line matching ${ready}`);
        await sleep(50);
      }
      return;
    }
    const before = p.natsBaseline || new Set();
    for (;;) {
      if (p.deadReason()) throw new Error(p.deadReason());
      const conns = await this.natsConnections().catch(() => []);
      const mine = conns.find((c) => c.name === p.name && c.subscriptions > 0);
      const fresh = conns.find((c) => !before.has(c.cid) && !this.claimedCids.has(c.cid) && c.subscriptions > 0);
      if (mine || fresh) {
        this.claimedCids.add((mine || fresh).cid);
        return;
      }
      if (Date.now() > deadline) throw new Error('no NATS connection with subscriptions after 15 s');
      await sleep(50);
    }
  }

  /** The NATS server's client connections ({cid, name, subscriptions, ...}). */
  async natsConnections() {
    const r = await httpGet(`${this.nats.monitorUrl}/connz?limit=1024`);
    return JSON.parse(r.body).connections || [];
  }

  async addEdge({ env = {} } = {}) {
    const i = this.edges.length + 1;
    const name = `edge-${i}`;
    const bin = path.join(this.binDir, 'edge');
    if (!fs.existsSync(bin)) throw new Error(`${bin} not built`);
    const edge = { name, port: 0 };
    const pick = async () => {
      edge.port = await freePort();
      edge.http = `http://127.0.0.1:${edge.port}`;
      edge.ws = `ws://127.0.0.1:${edge.port}`;
    };
    await pick();
    const own = { ...this.commonEnv(), RT_EDGE_ID: name, ...this.envOf('edge', name, env) };
    const p = this.add({
      name,
      kind: 'edge',
      // the listen address follows the port, which may be re-picked
      env: () => ({ ...own, RT_EDGE_LISTEN: `127.0.0.1:${edge.port}` }),
      cmd: () => [bin],
      ready: () => waitReady(`${edge.http}/readyz`, this.opts.readyTimeoutMs || 20000, () => p.deadReason()),
      repickPorts: pick,
    });
    this.edges.push(edge);
    await p.start({ newPorts: true });
    return edge;
  }

  // ---- controls ----

  /**
   * Sends `signal` (default: the graceful one, SIGTERM; SIGINT for nats and
   * postgres) and waits for the exit → {code, signal, ms}.
   */
  kill(name, signal, opts) {
    return this.proc(name).kill(signal, opts);
  }

  /** Sends a signal without waiting (SIGSTOP, SIGCONT, SIGHUP ...). */
  signal(name, sig) {
    this.proc(name).signal(sig);
  }

  /** Starts a stopped process again on the same port; waits until ready. */
  async start(name, { env } = {}) {
    const p = this.proc(name);
    if (p.running) throw new Error(`${name} is already running`);
    await p.start({ env });
  }

  /** Stops (gracefully by default, e.g. 'SIGKILL' for a crash) and starts again. */
  async restart(name, { signal, env } = {}) {
    await this.kill(name, signal);
    await this.start(name, { env });
  }

  /** PostgreSQL shutdown: mode 'fast' (SIGINT), 'smart' (SIGTERM), 'immediate' (SIGQUIT), 'kill'. */
  stopPg(mode = 'fast') {
    const sig = { fast: 'SIGINT', smart: 'SIGTERM', immediate: 'SIGQUIT', kill: 'SIGKILL' }[mode];
    if (!sig) throw new Error(`bad mode ${mode}`);
    return this.kill('postgres', sig, { timeoutMs: 30000 });
  }

  startPg() {
    return this.start('postgres');
  }

  isRunning(name) {
    return this.proc(name).running;
  }

  pid(name) {
    return this.proc(name).child.pid;
  }

  waitReady(url, timeoutMs) {
    return waitReady(url, timeoutMs);
  }

  /** Runs SQL with psql as rtsync → stdout (unaligned, tuples only). */
  psql(sql, { db = 'rtsync', user = 'rtsync' } = {}) {
    if (!this.pg) throw new Error('this stack has no PostgreSQL');
    return new Promise((resolve, reject) => {
      execFile(
        'psql',
        ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-h', '127.0.0.1', '-p', `${this.pg.port}`, '-U', user, '-d', db, '-c', sql],
        { encoding: 'utf8' },
        (err, stdout, stderr) => (err ? reject(new Error(`psql: ${stderr || err.message}`)) : resolve(stdout.trimEnd())),
      );
    });
  }

  /** The whole log of a process. */
  logs(name) {
    try {
      return fs.readFileSync(this.proc(name).logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** Prints the last `lines` lines of the logs (all processes by default) to stderr. */
  printLogs({ names = this.names, lines = 60 } = {}) {
    for (const n of names) {
      const text = this.logs(n).split('\n').slice(-lines).join('\n');
      process.stderr.write(`\n----- ${this.logDir}/${n}.log (last ${lines} lines) -----\n${text}\n`);
    }
  }

  /** Wraps a test function so that a failure prints the logs first. */
  withLogs(fn) {
    return async (...args) => {
      try {
        return await fn(...args);
      } catch (e) {
        this.printLogs();
        throw e;
      }
    };
  }

  /**
   * Stops everything: edges (SIGTERM), services, NATS, PostgreSQL (fast);
   * removes the scratch dir (unless RT_TEST_KEEP_TMP). Rejects when a process
   * had exited on its own during the test, or crashed (SIGSEGV, SIGABRT ...)
   * while stopping: a crash must fail the test.
   */
  async stop({ allowExits = false } = {}) {
    if (this.stopping) return;
    this.stopping = true;
    const group = (kinds) => [...this.procs.values()].filter((p) => kinds(p.kind));
    const warn = (msg) => process.stderr.write(`[stack] ${msg}\n`);
    const stopOne = async (p, sig, ms) => {
      const r = await p.kill(sig, { timeoutMs: ms }).catch((e) => warn(e.message));
      // a crash or a sanitizer report while draining shows up here
      if (r && r.ms !== undefined && r.code !== 0 && r.signal !== sig) {
        warn(`${p.name} ended with code ${r.code} signal ${r.signal} after ${sig} (see ${p.logFile})`);
        if (CRASH_SIGNALS.has(r.signal)) this.unexpectedExits.push({ name: p.name, code: r.code, signal: r.signal });
      }
    };
    const down = (procs, sig, ms) => Promise.all(procs.map((p) => stopOne(p, sig, ms)));
    await down(group((k) => k === 'edge'), 'SIGTERM', 12000);
    await down(group((k) => !['edge', 'nats', 'postgres'].includes(k)), 'SIGTERM', 12000);
    await down(group((k) => k === 'nats'), 'SIGINT', 5000);
    await down(group((k) => k === 'postgres'), 'SIGINT', 20000);
    if (this.tmpDir && !process.env.RT_TEST_KEEP_TMP) fs.rmSync(this.tmpDir, { recursive: true, force: true });
    if (this.unexpectedExits.length && !allowExits) {
      const list = this.unexpectedExits.map((x) => `${x.name} (code ${x.code}, signal ${x.signal})`).join(', ');
      this.printLogs({ names: [...new Set(this.unexpectedExits.map((x) => x.name))] });
      throw new Error(`processes crashed or exited on their own during the test: ${list}`);
    }
  }
}

// Scratch dirs of test processes that died without cleaning up (NAME.PID.XXXXXX).
function removeOrphanDirs(base) {
  for (const d of fs.readdirSync(base)) {
    const m = /\.(\d+)\.[^.]+$/.exec(d);
    if (!m || Number(m[1]) === process.pid) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (e) {
      if (e.code === 'ESRCH') fs.rmSync(path.join(base, d), { recursive: true, force: true });
    }
  }
}

async function waitPgReady(dataDir, timeoutMs, isDead) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = isDead();
    if (dead) throw new Error(dead);
    try {
      const lines = fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
      if (lines[7] && lines[7].trim() === 'ready') return;
    } catch {
      /* not written yet */
    }
    if (Date.now() > deadline) throw new Error(`PostgreSQL not ready after ${timeoutMs} ms`);
    await sleep(25);
  }
}

/**
 * Starts an isolated stack. Options:
 *   name        log dir name under build/test-logs/ (default: the test file's name)
 *   pg          start PostgreSQL (default: true when services are asked for)
 *   pgSettings  {fsync: 'off', ...} extra server settings
 *   services    ['presence', 'chat-history', {name: 'crdt-merge', replicas: 2}]
 *   edges       number of edges (default 1)
 *   env         environment for every process (RT_* from the caller's shell are dropped)
 *   envFor      {edge: {...}, 'edge-2': {...}, presence: {...}}: by kind or by name
 *   natsArgs    extra nats-server arguments
 *   cpus        pin every process to these cores (`taskset -c` list), as
 *               benchmarks do to keep servers off the load generator's core
 *   serviceReady 'nats' (default) | 'none' | RegExp on the service's log
 *   binDir      default $TEST_BIN_DIR or build/bin
 */
export async function startStack(opts = {}) {
  installExitHooks();
  const stack = new Stack(opts);
  stacks.add(stack);
  const services = (opts.services || []).map((s) => (typeof s === 'string' ? { name: s, replicas: 1 } : s));
  try {
    await stack.startNats();
    if (opts.pg ?? services.length > 0) await stack.startPostgres();
    for (const s of services) {
      for (let i = 0; i < (s.replicas || 1); i++) await stack.addService(s.name, { env: s.env });
    }
    for (let i = 0; i < (opts.edges ?? 1); i++) await stack.addEdge();
  } catch (e) {
    await stack.stop({ allowExits: true }).catch(() => {});
    throw e;
  }
  return stack;
}
