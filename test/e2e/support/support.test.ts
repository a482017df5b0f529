/**
 * Proves the e2e support pieces work against the real tools: two TLS + htpasswd registries sharing one CA,
 * the busybox base image built without pulling, the synthetic model, buildah (vfs/chroot) building a modelcar
 * from the registry, skopeo copies that keep digests, an unprivileged skopeo, and the registry error messages.
 * Missing tools make it FAIL (requireTools), never skip.
 */
import * as fs from 'fs';
import * as path from 'path';
import { BASE_IMAGE_APPLETS, buildBaseImageLayout, makeTar, pushBaseImage, PushedBaseImage } from './base-image';
import { BuildahStore, buildahStore } from './buildah';
import { describeModelDir, SyntheticModel, writeSyntheticModel } from './model-fixture';
import { dockerConfigJsonFor, LocalRegistry, makeCa, pingV2, startRegistry } from './registry';
import { classifyRegistryError, inspectDigest, rawManifest, skopeoCopy } from './skopeo';
import { asIdentity, E2E_TOOLS, freshWorkDir, requireTools, run, stopwatch } from './tools';

const UNPRIVILEGED = { uid: 1000970000, gid: 1000970000, groups: [4242] };

let work: string;
let source: LocalRegistry | undefined;
let target: LocalRegistry | undefined;
let base: PushedBaseImage;
let model: SyntheticModel;
let store: BuildahStore;
/** The modelcar layout built by buildah (oci:<dir>:latest) and its manifest digest. */
let modelcarOci: string;
let modelcarDigest: string;

const { timings, timed } = stopwatch();

beforeAll(async () => {
  requireTools(E2E_TOOLS);
  work = freshWorkDir('support');
  const ca = await timed('ca', async () => makeCa(path.join(work, 'ca')));
  [source, target] = await timed('start 2 registries', async () => Promise.all([
    startRegistry({ name: 'source', workDir: path.join(work, 'registry-source'), ca }),
    startRegistry({ name: 'target', workDir: path.join(work, 'registry-target'), ca, username: 'pusher', password: 'pusher-secret' }),
  ]));
  base = await timed('build + push base image', async () => pushBaseImage(source!, { workDir: path.join(work, 'base') }));
  model = await timed('write 8 MB model', async () => writeSyntheticModel(path.join(work, 'model'), { totalBytes: 8 * 1024 * 1024, files: 2 }));
  store = buildahStore(path.join(work, 'buildah'));
}, 60_000);

afterAll(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
  // eslint-disable-next-line no-console
  console.log(`e2e support timings (ms): ${JSON.stringify(timings)}`);
});

describe('tools', () => {
  test('requireTools fails naming every missing tool and the install script', () => {
    expect(() => requireTools(['sh', 'no-such-tool-1', 'no-such-tool-2'])).toThrow(
      /missing from PATH: no-such-tool-1, no-such-tool-2\. Install them with: bash scripts\/install-test-tools\.sh/,
    );
    expect(() => requireTools(['sh'])).not.toThrow();
  });

  test('run captures output, reports failures with the command line, and times out', async () => {
    const ok = await run('sh', ['-c', 'echo out; echo err >&2; cat'], { input: 'in' });
    expect(ok).toMatchObject({ code: 0, stdout: 'out\nin', stderr: 'err\n' });
    await expect(run('sh', ['-c', 'echo boom >&2; exit 3'])).rejects.toThrow(/exit 3: sh -c 'echo boom >&2; exit 3'[\s\S]*boom/);
    expect((await run('sh', ['-c', 'exit 4'], { allowFailure: true })).code).toBe(4);
    await expect(run('sleep', ['5'], { timeoutMs: 200 })).rejects.toThrow(/timed out after 200 ms: sleep 5/);
    await expect(run('no-such-tool-1', [])).rejects.toThrow(/cannot run no-such-tool-1.*install-test-tools/);
  });
});

describe('registries', () => {
  test('serve TLS signed by the shared CA, with htpasswd auth, on distinct ports', async () => {
    for (const r of [source!, target!]) {
      expect(r.host).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(r.isRunning()).toBe(true);
      expect(fs.readFileSync(path.join(r.certDir, 'ca.crt'))).toEqual(fs.readFileSync(r.caCertPath));
      expect(path.basename(r.certDir)).toBe(r.host);
      expect(path.dirname(r.certDir)).toBe(r.certsDRoot);
      const ca = fs.readFileSync(r.caCertPath);
      expect(await pingV2(r.host, ca)).toBe(401);
      expect(await pingV2(r.host, ca, { username: r.username, password: 'wrong' })).toBe(401);
      expect(await pingV2(r.host, ca, { username: r.username, password: r.password })).toBe(200);
      const auth = JSON.parse(r.dockerConfigJson).auths[r.host].auth;
      expect(Buffer.from(auth, 'base64').toString()).toBe(`${r.username}:${r.password}`);
      expect(fs.readFileSync(r.authFile, 'utf8')).toBe(r.dockerConfigJson);
    }
    expect(source!.port).not.toBe(target!.port);
    expect(source!.caCertPath).toBe(target!.caCertPath);
    expect(Object.keys(JSON.parse(dockerConfigJsonFor([source!, target!])).auths)).toEqual([source!.host, target!.host]);
  });
});

describe('synthetic model (stand-in for the Hugging Face download)', () => {
  test('has the HF layout, exact total size, valid safetensors headers', async () => {
    expect(model.files.map((f) => f.path)).toEqual([
      'config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json', 'tokenizer.json',
    ]);
    expect(model.totalBytes).toBe(8 * 1024 * 1024);
    expect(model.files.reduce((a, f) => a + f.size, 0)).toBe(8 * 1024 * 1024);
    expect(await describeModelDir(model.dir)).toEqual(model.files);
    const shard = fs.readFileSync(path.join(model.dir, 'model-00001-of-00002.safetensors'));
    const headerLen = Number(shard.readBigUInt64LE(0));
    const header = JSON.parse(shard.subarray(8, 8 + headerLen).toString('utf8'));
    expect(header['model.layers.0.weight'].dtype).toBe('U8');
    const [start, end] = header['model.layers.0.weight'].data_offsets;
    expect(8 + headerLen + end - start).toBe(shard.length);
    const index = JSON.parse(fs.readFileSync(path.join(model.dir, 'model.safetensors.index.json'), 'utf8'));
    expect(index.weight_map).toEqual({ 'model.layers.0.weight': 'model-00001-of-00002.safetensors', 'model.layers.1.weight': 'model-00002-of-00002.safetensors' });
  });

  test('is deterministic per seed, and single-shard works', async () => {
    const again = await writeSyntheticModel(path.join(work, 'model-again'), { totalBytes: 8 * 1024 * 1024, files: 2 });
    expect(again.files).toEqual(model.files);
    const other = await writeSyntheticModel(path.join(work, 'model-seed'), { totalBytes: 8 * 1024 * 1024, files: 2, seed: 'other' });
    expect(other.files.find((f) => f.path.startsWith('model-00001'))!.sha256).not.toBe(model.files.find((f) => f.path.startsWith('model-00001'))!.sha256);
    const single = await writeSyntheticModel(path.join(work, 'model-single'), { totalBytes: 100_000, files: 1 });
    expect(single.files.map((f) => f.path)).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    expect(single.totalBytes).toBe(100_000);
    await expect(writeSyntheticModel(path.join(work, 'model-tiny'), { totalBytes: 100 })).rejects.toThrow(/too small/);
  });
});

describe('base image', () => {
  test('is a deterministic OCI layout with busybox applets', () => {
    const a = buildBaseImageLayout(path.join(work, 'base-a'));
    const b = buildBaseImageLayout(path.join(work, 'base-b'));
    expect(a.manifestDigest).toBe(b.manifestDigest);
    expect(a.manifestDigest).toBe(base.digest);
    expect(BASE_IMAGE_APPLETS).toEqual(expect.arrayContaining(['sh', 'ls', 'cat', 'test', 'id', 'stat', 'sha256sum']));
    // header + 1 data block + 2 end blocks (the listing below has busybox tar check the real headers)
    expect(makeTar([{ name: 'x', type: 'file', mode: 0o644, data: Buffer.from('y') }]).length).toBe(2048);
  });

  test('is pushed by digest and pulls back identical', async () => {
    expect(base.reference).toBe(`${source!.host}/base/busybox@${base.digest}`);
    expect(await inspectDigest(`docker://${base.tagReference}`, source)).toBe(base.digest);
    const raw = await rawManifest(`docker://${base.reference}`, source);
    expect(raw.digest).toBe(base.digest);
    expect(JSON.parse(raw.raw).layers[0].mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    const back = path.join(work, 'base-pulled');
    const d = await skopeoCopy(`docker://${base.reference}`, `oci:${back}:1`, { workDir: work, srcRegistry: source });
    expect(d).toBe(base.digest);
    expect((await rawManifest(`oci:${back}:1`)).digest).toBe(base.digest);
    const listing = await run('busybox', ['tar', '-tvzf', path.join(back, 'blobs', 'sha256', JSON.parse(raw.raw).layers[0].digest.slice(7))]);
    expect(listing.stdout).toMatch(/-rwxr-xr-x root\/root +\d+ 1970-01-01 00:00:00 bin\/busybox/);
    expect(listing.stdout).toMatch(/bin\/sha256sum -> busybox/);
    expect(listing.stdout).toMatch(/drwxrwxrwt root\/root +0 1970-01-01 00:00:00 tmp\//);
  });
});

describe('buildah (root, vfs, chroot) builds a modelcar from the TLS registry', () => {
  test('from + copy + config + commit + push oci: and oci-archive:', async () => {
    const ctr = (await timed('buildah from', async () => store.buildah([
      'from', '--quiet', '--pull-always', '--retry', '0', '--cert-dir', source!.certDir, '--authfile', source!.authFile, base.reference,
    ]))).stdout.trim();
    expect(ctr).toMatch(/working-container/);
    await timed('buildah copy', async () => store.buildah(['copy', '--quiet', '--chown', '0:0', '--chmod', '0444', ctr, `${model.dir}/`, '/models/']));
    await store.buildah(['config', '--label', 'org.opencontainers.image.title=synthetic-model', '--user', '1001', ctr]);
    const run1 = await store.buildah(['run', ctr, '--', 'sh', '-c', 'id -u; sha256sum /models/config.json; stat -c %a /models/tokenizer.json']);
    expect(run1.stdout).toContain(model.files.find((f) => f.path === 'config.json')!.sha256);
    expect(run1.stdout).toMatch(/^1001\n[\s\S]*\n444\n$/);
    await timed('buildah commit', async () => store.buildah(['commit', '--quiet', '--timestamp', '0', ctr, 'modelcar']));
    const ociDir = path.join(work, 'modelcar-oci');
    const archive = path.join(work, 'modelcar.tar');
    await timed('buildah push oci', async () => store.buildah(['push', '--quiet', 'modelcar', `oci:${ociDir}:latest`]));
    await timed('buildah push oci-archive', async () => store.buildah(['push', '--quiet', 'modelcar', `oci-archive:${archive}:latest`]));
    modelcarOci = `oci:${ociDir}:latest`;
    const m = await rawManifest(modelcarOci);
    modelcarDigest = m.digest;
    expect(await inspectDigest(modelcarOci)).toBe(modelcarDigest);
    expect(await inspectDigest(`oci-archive:${archive}:latest`)).toBe(modelcarDigest);
    const manifest = JSON.parse(m.raw);
    expect(manifest.layers).toHaveLength(2);
    expect(manifest.annotations['org.opencontainers.image.base.digest']).toBe(base.digest);
  });

  test('skopeo: oci-archive: extracts to a temp dir, oci: does not (--tmpdir, not TMPDIR)', async () => {
    const notADir = path.join(work, 'not-a-dir');
    fs.writeFileSync(notADir, '');
    const archive = `oci-archive:${path.join(work, 'modelcar.tar')}:latest`;
    // oci: never needs the temp dir
    expect(await inspectDigest(modelcarOci, undefined, { env: { ...process.env, TMPDIR: notADir } })).toBe(modelcarDigest);
    const viaFlag = await run('skopeo', ['--tmpdir', notADir, 'inspect', modelcarOci]);
    expect(viaFlag.code).toBe(0);
    // oci-archive: extracts first; skopeo 1.9.3 uses /var/tmp whatever TMPDIR says, --tmpdir moves it
    const bad = await run('skopeo', ['--tmpdir', notADir, 'inspect', archive], { allowFailure: true });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/creating temp directory: .*not a directory/);
    expect(await inspectDigest(archive, undefined, { env: { ...process.env, TMPDIR: notADir } })).toBe(modelcarDigest);
  });

  test('skopeo copy --preserve-digests to the target registry keeps the digest; buildah pulls it back', async () => {
    const ref = `${target!.host}/models/synthetic:1`;
    const pushed = await timed('skopeo copy to target', async () => skopeoCopy(modelcarOci, `docker://${ref}`, { workDir: work, destRegistry: target }));
    expect(pushed).toBe(modelcarDigest);
    expect(await inspectDigest(`docker://${ref}`, target)).toBe(modelcarDigest);
    // creds on the command line work too
    const withCreds = await run('skopeo', ['inspect', '--format', '{{.Digest}}', '--cert-dir', target!.certDir, '--creds', `${target!.username}:${target!.password}`, `docker://${ref}`]);
    expect(withCreds.stdout.trim()).toBe(modelcarDigest);
    // pull back by digest and compare /models with the model written on disk
    const ctr = (await store.buildah(['from', '--quiet', '--retry', '0', '--cert-dir', target!.certDir, '--authfile', target!.authFile, `${target!.host}/models/synthetic@${modelcarDigest}`])).stdout.trim();
    const mnt = (await store.buildah(['mount', ctr])).stdout.trim();
    try {
      expect(await describeModelDir(path.join(mnt, 'models'))).toEqual(model.files);
      expect(fs.readlinkSync(path.join(mnt, 'bin', 'sh'))).toBe('busybox');
    } finally {
      await store.buildah(['umount', ctr]);
    }
  });

  test('skopeo as an unprivileged uid with only group read access, empty environment', async () => {
    const dir = path.join(work, 'unprivileged');
    const layout = path.join(dir, 'layout');
    const certDir = path.join(dir, 'certs');
    const out = path.join(dir, 'out');
    fs.mkdirSync(certDir, { recursive: true });
    fs.cpSync(modelcarOci.slice('oci:'.length, -':latest'.length), layout, { recursive: true });
    fs.copyFileSync(target!.caCertPath, path.join(certDir, 'ca.crt'));
    fs.writeFileSync(path.join(dir, 'auth.json'), target!.dockerConfigJson);
    const group = UNPRIVILEGED.groups[0];
    const chownTree = (p: string) => {
      fs.chownSync(p, 0, group);
      if (fs.statSync(p).isDirectory()) {
        fs.chmodSync(p, 0o750);
        for (const e of fs.readdirSync(p)) chownTree(path.join(p, e));
      } else {
        fs.chmodSync(p, 0o640);
      }
    };
    for (const p of [layout, certDir, path.join(dir, 'auth.json')]) chownTree(p);
    fs.mkdirSync(out);
    fs.chownSync(out, UNPRIVILEGED.uid, UNPRIVILEGED.gid);
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

    const inspect = await run(...asIdentity(UNPRIVILEGED, 'skopeo', ['inspect', '--format', '{{.Digest}}', `oci:${layout}:latest`]), { env, cwd: out });
    expect(inspect.stdout.trim()).toBe(modelcarDigest);
    const id = await run(...asIdentity(UNPRIVILEGED, 'id', []), { env });
    expect(id.stdout).toMatch(/^uid=1000970000 gid=1000970000 groups=1000970000,4242\b/);
    const digestFile = path.join(out, 'digest');
    await run(...asIdentity(UNPRIVILEGED, 'skopeo', [
      'copy', '--quiet', '--preserve-digests', '--digestfile', digestFile, '--dest-cert-dir', certDir, '--dest-authfile', path.join(dir, 'auth.json'),
      `oci:${layout}:latest`, `docker://${target!.host}/models/unprivileged:1`,
    ]), { env, cwd: out });
    expect(fs.readFileSync(digestFile, 'utf8')).toBe(modelcarDigest);
    expect(fs.statSync(digestFile).uid).toBe(UNPRIVILEGED.uid);
    // without the group, reading the layout fails
    const denied = await run(...asIdentity({ uid: UNPRIVILEGED.uid, gid: UNPRIVILEGED.gid }, 'skopeo', ['inspect', `oci:${layout}:latest`]), { env, cwd: out, allowFailure: true });
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/permission denied/);
  });
});

describe('registry failures look the way step scripts will report them', () => {
  test('wrong credentials, untrusted CA, missing tag, registry down, restart', async () => {
    const ref = `docker://${target!.host}/models/synthetic:1`;
    const badAuth = path.join(work, 'bad-auth.json');
    fs.writeFileSync(badAuth, dockerConfigJsonFor([{ host: target!.host, username: target!.username, password: 'wrong' }]));
    const otherCa = await makeCa(path.join(work, 'other-ca'));
    const otherCertDir = path.join(work, 'other-certs');
    fs.mkdirSync(otherCertDir);
    fs.copyFileSync(otherCa.certPath, path.join(otherCertDir, 'ca.crt'));

    const skopeo = async (args: string[]) => run('skopeo', args, { allowFailure: true });
    const wrongCreds = await skopeo(['inspect', '--cert-dir', target!.certDir, '--authfile', badAuth, ref]);
    expect(wrongCreds.code).toBe(1);
    expect(classifyRegistryError(wrongCreds.stderr)).toBe('unauthorized');
    const pushWrongCreds = await skopeo(['copy', '--dest-cert-dir', target!.certDir, '--dest-authfile', badAuth, modelcarOci, `docker://${target!.host}/x/y:1`]);
    expect(classifyRegistryError(pushWrongCreds.stderr)).toBe('unauthorized');
    const noCa = await skopeo(['inspect', '--authfile', target!.authFile, ref]);
    expect(classifyRegistryError(noCa.stderr)).toBe('untrustedCertificate');
    const wrongCa = await skopeo(['inspect', '--cert-dir', otherCertDir, '--authfile', target!.authFile, ref]);
    expect(classifyRegistryError(wrongCa.stderr)).toBe('untrustedCertificate');
    const certsDRootIsWrong = await skopeo(['inspect', '--cert-dir', target!.certsDRoot, '--authfile', target!.authFile, ref]);
    expect(classifyRegistryError(certsDRootIsWrong.stderr)).toBe('untrustedCertificate');
    const missing = await skopeo(['inspect', '--cert-dir', target!.certDir, '--authfile', target!.authFile, `docker://${target!.host}/models/synthetic:nope`]);
    expect(classifyRegistryError(missing.stderr)).toBe('manifestUnknown');
    const buildahWrongCreds = await store.buildah(['from', '--quiet', '--retry', '0', '--cert-dir', target!.certDir, '--creds', `${target!.username}:wrong`, ref.slice('docker://'.length)], { allowFailure: true });
    expect(buildahWrongCreds.code).toBe(125);
    expect(classifyRegistryError(buildahWrongCreds.stderr)).toBe('unauthorized');

    await target!.stop();
    expect(target!.isRunning()).toBe(false);
    await target!.stop(); // idempotent
    const down = await skopeo(['inspect', '--cert-dir', target!.certDir, '--authfile', target!.authFile, ref]);
    expect(down.code).toBe(1);
    expect(classifyRegistryError(down.stderr)).toBe('connectionRefused');
    expect(down.stderr).toContain(`pinging container registry ${target!.host}`);

    await timed('registry restart', async () => target!.restart());
    expect(target!.isRunning()).toBe(true);
    expect(await inspectDigest(ref, target)).toBe(modelcarDigest); // storage survived the restart
    expect(fs.readFileSync(target!.logPath, 'utf8')).toMatch(/listening on 127\.0\.0\.1:\d+, tls/);
  });
});
