/**
 * The KServe modelcar contract check (test/e2e/support/modelcar-contract.ts) against images built by hand in this
 * test and pushed to the world's registry: it accepts a good one and refuses each way of breaking the contract, so
 * scenario 1, which runs it on the pipeline's pushed image, proves something.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { startWorld, stopWorld, World } from './world';
import { makeTar, ociArchitecture } from '../support/base-image';
import { checkModelcarContract } from '../support/modelcar-contract';
import { freshWorkDir, run } from '../support/tools';

jest.setTimeout(120_000);

let work: string;
let world: World;

beforeAll(async () => {
  work = freshWorkDir('kserve-contract');
  world = await startWorld(work);
}, 120_000);

afterAll(async () => {
  await stopWorld(world);
});

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const OCI_TAR = 'application/vnd.oci.image.layer.v1.tar';

type Entry = Parameters<typeof makeTar>[0][number];

const GOOD_MODEL: Entry[] = [
  { name: 'models', type: 'dir', mode: 0o755 },
  { name: 'models/config.json', type: 'file', mode: 0o644, data: Buffer.from('{"architectures": ["Tiny"]}\n') },
  { name: 'models/weights', type: 'dir', mode: 0o755 },
  { name: 'models/weights/model.safetensors', type: 'file', mode: 0o644, data: Buffer.alloc(4096, 7) },
];

interface HandMade {
  /** Entries of the layer added on the world's busybox base; none: the base alone. */
  readonly model?: Entry[];
  readonly mediaType?: string;
  readonly entrypoint?: string[];
}

/** Writes the base image plus `img.model` as an OCI layout by hand and pushes it to quay as contract:<tag>; returns its reference. */
async function pushHandMade(tag: string, img: HandMade): Promise<string> {
  const base = world.base.layout;
  const dir = path.join(work, 'layouts', tag);
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer | string) => {
    const digest = sha256(data);
    fs.writeFileSync(path.join(blobs, digest.slice(7)), data);
    return digest;
  };
  const baseBlob = (digest: string) => fs.readFileSync(path.join(base.ociDir, 'blobs', 'sha256', digest.slice(7)));
  // The world's base is an image index: this host's manifest (the one whose config and layer the layout names).
  const baseManifest = JSON.parse(baseBlob(base.platformManifests?.[ociArchitecture()] ?? base.manifestDigest).toString());
  const config = JSON.parse(baseBlob(base.configDigest).toString());
  put(baseBlob(base.layerDigest));
  const layers = [...baseManifest.layers];
  if (img.model) {
    const tar = makeTar(img.model);
    layers.push({ mediaType: img.mediaType ?? OCI_TAR, digest: put(tar), size: tar.length });
    config.rootfs.diff_ids.push(sha256(tar));
    config.history.push({ created: '1970-01-01T00:00:00Z', created_by: `kserve-contract.test.ts: ${tag}` });
  }
  if (img.entrypoint) config.config.Entrypoint = img.entrypoint;
  const configJson = JSON.stringify(config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(configJson), size: configJson.length },
    layers,
  });
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: put(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }));
  const ref = `${world.quay.host}/contract/modelcar:${tag}`;
  await run('skopeo', ['copy', '--quiet', '--preserve-digests', '--dest-cert-dir', world.quay.certDir, '--dest-authfile', world.quay.authFile, `oci:${dir}:${tag}`, `docker://${ref}`]);
  return ref;
}

const check = (ref: string, name: string) => checkModelcarContract(world.quay, ref, path.join(work, 'checks', name));

/** The check's error for `ref`; fails the test when the check passes. */
async function refusal(ref: string, name: string): Promise<string> {
  try {
    await check(ref, name);
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error(`the contract check accepted ${ref}`);
}

describe('KServe modelcar contract check', () => {
  test('accepts a hand-made modelcar: busybox base, /models readable by any uid, no Entrypoint, a tar layer', async () => {
    const report = await check(await pushHandMade('good', { model: GOOD_MODEL }), 'good');
    expect(report.modelFiles).toEqual({ 'config.json': 28, 'weights/model.safetensors': 4096 });
    expect(report.layerMediaTypes).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip', OCI_TAR]);
  });

  test('fails when the image sets an Entrypoint: KServe\'s args would go to it', async () => {
    const message = await refusal(await pushHandMade('entrypoint', { model: GOOD_MODEL, entrypoint: ['/bin/echo'] }), 'entrypoint');
    expect(message).toMatch(/the image sets Entrypoint \["\/bin\/echo"\]: KServe gives the modelcar container args only/);
    // and KServe's commands, run as a runtime runs them (Entrypoint + args), do not do their job
    expect(message).toMatch(/KServe's modelcar container did not link \/mnt\/models and sleep \(exit 0, \/mnt\/models -> nothing\): sh -c ln -sf/);
    // the only problems
    expect(message.split('\n- ')).toHaveLength(4);
  });

  test('fails when a layer is zstd (KServe\'s oci+fetch cannot read it)', async () => {
    const ref = await pushHandMade('zstd', { model: GOOD_MODEL, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' });
    await expect(check(ref, 'zstd')).rejects.toThrow(/layer 2 has media type application\/vnd\.oci\.image\.layer\.v1\.tar\+zstd: KServe's oci\+fetch reads tar and tar\+gzip layers and fails on zstd/);
  });

  test('fails when entries are named ./models/... (oci+fetch extracts models/... only)', async () => {
    const ref = await pushHandMade('dot-slash', { model: GOOD_MODEL.map((e) => ({ ...e, name: `./${e.name}` })) });
    await expect(check(ref, 'dot-slash')).rejects.toThrow(/layer 2 names entries \["\.\/models","\.\/models\/config\.json","\.\/models\/weights"\]: KServe's oci\+fetch extracts only entries named models\/\.\.\./);
  });

  test('fails when a model file is not readable by any uid', async () => {
    const ref = await pushHandMade('private', { model: GOOD_MODEL.map((e) => (e.name === 'models/config.json' ? { ...e, mode: 0o600 } : e)) });
    await expect(check(ref, 'private')).rejects.toThrow('/models/config.json has mode 0600: not readable by any uid');
  });

  test('fails when /models is missing or empty', async () => {
    await expect(check(await pushHandMade('no-models', {}), 'no-models')).rejects.toThrow(
      /\/models is not a directory in the image[^]*KServe's init container check failed \(exit 1\): NOK/);
    await expect(check(await pushHandMade('empty', { model: [GOOD_MODEL[0]] }), 'empty')).rejects.toThrow(
      /\/models holds no file: KServe's init container refuses an empty \/models[^]*KServe's init container check failed \(exit 1\): NOK/);
  });

  test('fails when the base lacks a tool KServe calls (ln whited out by the model layer)', async () => {
    const ref = await pushHandMade('no-ln', { model: [...GOOD_MODEL, { name: 'bin/.wh.ln', type: 'file', mode: 0o644, data: Buffer.alloc(0) }] });
    // Only the file system check sees it: Debian's static busybox runs its applets from its shell without PATH
    // lookup, so the commands still work on this base; on another base (ubi-micro's coreutils) they would not.
    expect(await refusal(ref, 'no-ln')).toBe(`${ref} breaks KServe's modelcar contract:\n`
      + '- ln is not on the image\'s PATH (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin): KServe\'s modelcar commands call it');
  });
});
