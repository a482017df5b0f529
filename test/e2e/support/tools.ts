/**
 * Host tools for the end-to-end tests: check they are installed, run them.
 *
 * The e2e tests drive the real tools the pipeline's step scripts use (buildah, skopeo,
 * a real registry, openssl...). When one is missing the tests FAIL with a message telling
 * how to install it; they never skip silently.
 */
import { spawn, SpawnOptions } from 'child_process';
import * as fs from 'fs';
import type { Socket } from 'net';
import * as os from 'os';
import * as path from 'path';

/** The command that installs every tool the tests need (Debian packages). */
export const INSTALL_HINT = 'bash scripts/install-test-tools.sh';

/** The tools the e2e support modules use, by command name. */
export const E2E_TOOLS = ['buildah', 'skopeo', 'docker-registry', 'htpasswd', 'openssl', 'busybox', 'setpriv'] as const;

/** The absolute path of `name` found on PATH (or `name` itself when it is a path to an executable), else undefined. */
export function which(name: string, envPath: string = process.env.PATH ?? ''): string | undefined {
  const candidates = name.includes('/') ? [name] : envPath.split(path.delimiter).filter(Boolean).map((d) => path.join(d, name));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Throws one error naming every missing tool and how to install them.
 * Call it in `beforeAll` of every e2e test file: a missing tool is a failure, never a skip.
 */
export function requireTools(names: readonly string[]): void {
  const missing = names.filter((n) => which(n) === undefined);
  if (missing.length > 0) {
    throw new Error(
      `e2e tests need these tools, missing from PATH: ${missing.join(', ')}. ` +
      `Install them with: ${INSTALL_HINT} (Debian/Ubuntu, needs root or sudo).`,
    );
  }
}

export interface RunOptions {
  readonly cwd?: string;
  /** Environment of the child; defaults to this process's. */
  readonly env?: NodeJS.ProcessEnv;
  /** Kill the command (SIGKILL) and fail after this many ms. Default 120 000. */
  readonly timeoutMs?: number;
  /** Written to the child's stdin, which is then closed. */
  readonly input?: string | Buffer;
  /** Resolve with the result instead of throwing when the exit code is not 0 (a timeout still throws). */
  readonly allowFailure?: boolean;
}

export interface RunResult {
  readonly command: string;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly durationMs: number;
}

/** Quotes one argument for display (error messages, logs). */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, "'\\''")}'`;
}

/** The command line as a shell would show it. */
export function formatCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map(shellQuote).join(' ');
}

/** Last `max` characters of a string, for error messages. */
function tail(text: string, max = 4000): string {
  return text.length <= max ? text : `...${text.slice(text.length - max)}`;
}

/**
 * Runs a command without a shell, capturing stdout and stderr.
 * Throws (with the command line, the exit status and the output) when it exits non-zero,
 * unless `allowFailure`; always throws on timeout or when it cannot be started.
 */
export async function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const command = formatCommand(cmd, args);
  const started = Date.now();
  const spawnOpts: SpawnOptions = { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] };
  return new Promise<RunResult>((resolve, reject) => {
    const child = spawn(cmd, [...args], spawnOpts);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${e.message}${(e as NodeJS.ErrnoException).code === 'ENOENT' ? ` (is it installed? ${INSTALL_HINT})` : ''}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const result: RunResult = {
        command,
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        durationMs: Date.now() - started,
      };
      if (timedOut) {
        reject(new Error(`timed out after ${timeoutMs} ms: ${command}\n--- stdout:\n${tail(result.stdout)}\n--- stderr:\n${tail(result.stderr)}`));
      } else if (code !== 0 && !opts.allowFailure) {
        reject(new Error(`exit ${code ?? signal}: ${command}\n--- stdout:\n${tail(result.stdout)}\n--- stderr:\n${tail(result.stderr)}`));
      } else {
        resolve(result);
      }
    });
    child.stdin!.on('error', () => { /* the child may exit without reading its input */ });
    child.stdin!.end(opts.input);
  });
}

export interface Identity {
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups; none when empty or omitted. */
  readonly groups?: readonly number[];
}

/**
 * [cmd, args] that run `cmd args` as another identity with util-linux `setpriv` (we are root in the tests).
 * The environment is the caller's: pass `env` to `run` to control it (e.g. an empty env without HOME).
 * Example: `run(...asIdentity({ uid: 1000970000, gid: 0, groups: [4242] }, 'skopeo', ['inspect', ...]))`.
 */
export function asIdentity(id: Identity, cmd: string, args: readonly string[]): [string, string[]] {
  const groups = id.groups && id.groups.length > 0 ? ['--groups', id.groups.join(',')] : ['--clear-groups'];
  return ['setpriv', ['--reuid', String(id.uid), '--regid', String(id.gid), ...groups, '--', cmd, ...args]];
}

/**
 * Root of this repository (the directory holding package.json), found from this file's location.
 */
export function repoRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${__dirname}`);
    dir = parent;
  }
  return dir;
}

/**
 * A fresh, empty work directory for `name`, outside the checkout: under `os.tmpdir()`, which
 * the jest global setup points at the run's own temp root, removed by the global teardown after
 * it checked that nothing (mount, process) still uses it. `MODELCAR_KEEP_TEST_TMP=1` keeps it
 * to read the logs after a failure. Readable by every uid, since steps run under other
 * identities walk through it to their volumes. A script outside jest (the benchmark) removes it
 * itself.
 */
export function freshWorkDir(name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `e2e-${name}-`));
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** A stopwatch for a suite's setup figures: `timed(name, f)` runs f and records its milliseconds in `timings`. */
export function stopwatch(): { timings: Record<string, number>; timed: <T>(name: string, f: () => Promise<T>) => Promise<T> } {
  const timings: Record<string, number> = {};
  return {
    timings,
    timed: async (name, f) => {
      const t0 = Date.now();
      try {
        return await f();
      } finally {
        timings[name] = Date.now() - t0;
      }
    },
  };
}

/**
 * Pipes two sockets both ways' error handling together: either one failing destroys both, and each is in `live`
 * while open (for a close() that leaves no socket behind).
 */
export function pairSockets(a: Socket, b: Socket, live: Set<Socket>): void {
  for (const s of [a, b]) {
    live.add(s);
    s.on('close', () => live.delete(s));
    s.on('error', () => {
      a.destroy();
      b.destroy();
    });
  }
}
