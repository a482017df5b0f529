/**
 * The world the end-to-end scenarios (and the benchmark) run the synthesized modelcar pipeline in:
 *
 * - two `docker-registry` servers on 127.0.0.1 with TLS (one throwaway CA) and htpasswd, standing in for the
 *   OpenShift internal registry and quay.io; the base image (static busybox, made locally) is pushed to the first;
 * - the pipeline synthesized from our constructs like the default app, with the two targets pointed at those
 *   registries, written to disk with `GitOpsLayout.write` and read back: the runner gets the YAML users apply;
 * - the CA as the ConfigMaps `registry-ca` (pushes) and `base-ca` (base image pull), and each registry's credentials as a docker-config Secret, mounted by
 *   the runner the way the cluster mounts them.
 *
 * The Hugging Face hub is the one part that cannot run here (no internet). Only the download task's `fetch` step is
 * replaced, by HF_HUB_STAND_IN: it copies a synthetic model (test/e2e/support/model-fixture.ts) into the run's model
 * directory and writes a fixed commit sha. Everything after it (checksums, results, build, validation, pushes)
 * is the synthesized YAML, run for real by test/e2e/runner.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { App, Chart, Duration, Size } from 'cdk8s';
import * as yaml from 'js-yaml';
import {
  ArtifactFormat, GitOpsLayout, ImageReference, ModelcarBuilder, ModelcarPipeline, PushTarget, RegistryCredentials, RegistryTrust,
} from '../../../src';
import { Manifest, RunPipelineOptions, RunPipelineResult, runPipeline } from '../runner/tekton-runner';
import { pushBaseImage, PushedBaseImage } from '../support/base-image';
import { SyntheticModel } from '../support/model-fixture';
import { dockerConfigJsonFor, LocalRegistry, makeCa, startRegistry, TestCa } from '../support/registry';
import { E2E_TOOLS, INSTALL_HINT, requireTools, run } from '../support/tools';

export const NAMESPACE = 'private-ai-demo';
export const FS_GROUP = 1000970000;
export const MODEL_REPO = 'e2e-org/synthetic-model';
/** The commit sha the hub stand-in reports as resolved. */
export const MODEL_COMMIT = '0123456789abcdef0123456789abcdef01234567';
/** Where the hub stand-in finds the synthetic model inside the step. */
const FIXTURE_MOUNT = '/e2e-fixtures/hf-hub-model';

export interface World {
  readonly work: string;
  readonly ca: TestCa;
  readonly internal: LocalRegistry;
  readonly quay: LocalRegistry;
  readonly base: PushedBaseImage;
}

/** Starts both registries and pushes the base image. Fails (never skips) when a tool is missing. */
export async function startWorld(work: string): Promise<World> {
  requireTools(E2E_TOOLS);
  // The pipeline's Python steps run as uid 1000970000: a python3 under /root (pyenv) is out of its reach.
  if (!fs.existsSync('/usr/bin/python3')) throw new Error(`/usr/bin/python3 is missing. Install it with: ${INSTALL_HINT}`);
  const ca = await makeCa(path.join(work, 'ca'));
  const [internal, quay] = await Promise.all([
    startRegistry({ name: 'internal', workDir: path.join(work, 'registry-internal'), ca, username: 'pipeline', password: 'internal-secret' }),
    // A port holding "401" (like 40133, the port of the flake in issue #13): every error line naming quay's port
    // looks like an HTTP 401 to a careless classifier, so the scenarios prove the pushes' diagnoses are not fooled.
    startRegistry({ name: 'quay', workDir: path.join(work, 'registry-quay'), ca, username: 'robot', password: 'quay-secret', portContaining: '401' }),
  ]);
  const base = await pushBaseImage(internal, { workDir: path.join(work, 'base') });
  return { work, ca, internal, quay, base };
}

export async function stopWorld(world: World | undefined): Promise<void> {
  if (!world) return;
  await Promise.all([world.internal.stop(), world.quay.stop()]);
}

export interface SynthOptions {
  /** Default: the layout builder (the library's default). */
  readonly builder?: ModelcarBuilder;
  readonly artifactFormat?: ArtifactFormat;
  /** Runs to synthesize (name => tags); each run gets a fresh volume unless `existingClaim` is set. */
  readonly runs: { readonly name: string; readonly tags: string[] }[];
  readonly existingClaim?: string;
  /** Push retries (PushTarget.retries). Default the library's. */
  readonly retries?: number;
}

/** Repository of the model image in each registry. */
export function repositoryOf(registry: LocalRegistry): string {
  return `${registry.host}/${NAMESPACE}/synthetic-model`;
}

/**
 * Synthesizes the pipeline like the default app (internal, then quay) with the local registries, writes it with
 * GitOpsLayout into `outdir` and returns the documents read back from the YAML files.
 */
export function synthesizePipeline(world: World, outdir: string, opts: SynthOptions): Manifest[] {
  const app = new App();
  const chart = new Chart(app, NAMESPACE, { namespace: NAMESPACE, disableResourceNameHashes: true });
  const trust = RegistryTrust.fromConfigMap('registry-ca');
  const [baseName, baseDigest] = world.base.reference.split('@');
  const modelcar = new ModelcarPipeline(chart, 'modelcar', {
    name: 'modelcar-pipeline',
    builder: opts.builder,
    artifactFormat: opts.artifactFormat,
    baseImage: ImageReference.fromDigest(baseName, baseDigest),
    baseImageTrust: RegistryTrust.fromConfigMap('base-ca'),
    baseImageCredentials: RegistryCredentials.fromDockerConfigSecret('base-pull'),
    // Bounds for a stuck step here (the benchmark's 2 GiB build takes under 2 minutes); the run's
    // timeout defaults to these in a row.
    downloadTimeout: Duration.minutes(10),
    buildTimeout: Duration.minutes(30),
    pushTargets: [
      PushTarget.registry({
        name: 'internal',
        repository: repositoryOf(world.internal),
        trust,
        retries: opts.retries,
        timeout: Duration.minutes(15),
        credentials: RegistryCredentials.fromDockerConfigSecret('internal-push'),
      }),
      PushTarget.registry({
        name: 'quay',
        repository: repositoryOf(world.quay),
        trust,
        retries: opts.retries,
        timeout: Duration.minutes(15),
        credentials: RegistryCredentials.fromDockerConfigSecret('quay-push'),
      }),
    ],
  });
  for (const r of opts.runs) {
    modelcar.addRun(r.name, {
      name: r.name,
      model: { repo: MODEL_REPO },
      tags: r.tags,
      fsGroup: FS_GROUP,
      storage: Size.gibibytes(10),
      existingClaim: opts.existingClaim,
    });
  }
  GitOpsLayout.write(app, { outdir, namespace: NAMESPACE });
  return readManifests(outdir);
}

/** Every YAML document under `dir`, in path order. */
export function readManifests(dir: string): Manifest[] {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(e.name)) files.push(p);
    }
  };
  walk(dir);
  return files.flatMap((f) => yaml.loadAll(fs.readFileSync(f, 'utf8')) as Manifest[]).filter((d) => d && d.kind);
}

/**
 * HF_HUB_STAND_IN: replaces the download task's hub fetch (the only part that cannot run here) with a copy of the
 * synthetic model and a fixed commit sha. It keeps the step's env (MODEL_DIR, RESOLVED_REVISION_FILE) and identity.
 */
export const HF_HUB_STAND_IN = `#!/bin/sh
# HF_HUB_STAND_IN: the Hugging Face hub cannot run here; this writes the synthetic model instead.
set -eu
mkdir -p "\${MODEL_DIR}"
cp -R ${FIXTURE_MOUNT}/. "\${MODEL_DIR}/"
printf '%s' '${MODEL_COMMIT}' > "\${RESOLVED_REVISION_FILE}"
echo "HF_HUB_STAND_IN wrote $(find "\${MODEL_DIR}" -type f | wc -l) files for ${MODEL_REPO}@${MODEL_COMMIT}"
`;

export type StepOverride = (task: string, step: string, spec: any) => any | undefined;

/**
 * Wraps a step's script in a shell script that runs `before`, the original script (with its own interpreter, or
 * `sh -e` without a shebang, as Tekton runs it), then `after`; the step's exit code is the original's unless
 * `after` exits. Used to stage failures (a truncated blob, content changed between build and push) at a
 * precise point of the real pipeline.
 */
export function wrapStep(spec: any, opts: { before?: string; after?: string }): any {
  const original: string = spec.script;
  const invoke = original.startsWith('#!') ? '/tmp/e2e-original-step' : 'sh -e /tmp/e2e-original-step';
  const script = `#!/bin/sh
set -u
${opts.before ?? ''}
cat > /tmp/e2e-original-step <<'E2E_ORIGINAL_STEP_END'
${original}
E2E_ORIGINAL_STEP_END
chmod 0755 /tmp/e2e-original-step
rc=0
${invoke} || rc=$?
${opts.after ?? ''}
exit "\${rc}"
`;
  return { ...spec, script };
}

export interface RunModelcarOptions {
  readonly manifests: Manifest[];
  readonly pipelineRun: string;
  readonly workDir: string;
  readonly model: SyntheticModel;
  readonly claims?: Record<string, string>;
  /** More step overrides (the hub stand-in is always applied). */
  readonly overrides?: StepOverride;
  /** Replace a secret or config map (e.g. wrong credentials, another CA). */
  readonly secrets?: Record<string, Record<string, string>>;
  readonly configMaps?: Record<string, Record<string, string>>;
  readonly freshVolumeMode?: number;
  readonly log?: (line: string) => void;
  /** Measure each TaskRun: passed through to the runner. */
  readonly extra?: Partial<RunPipelineOptions>;
}

/** Runs one PipelineRun of the synthesized YAML with the hub stand-in, the registries' CA and credentials. */
export async function runModelcar(world: World, opts: RunModelcarOptions): Promise<RunPipelineResult> {
  const dockerConfig = (r: LocalRegistry) => ({ '.dockerconfigjson': dockerConfigJsonFor([r]) });
  return runPipeline({
    manifests: opts.manifests,
    pipelineRun: opts.pipelineRun,
    workDir: opts.workDir,
    claims: opts.claims,
    secrets: {
      'base-pull': dockerConfig(world.internal),
      'internal-push': dockerConfig(world.internal),
      'quay-push': dockerConfig(world.quay),
      ...opts.secrets,
    },
    configMaps: {
      'registry-ca': { 'ca.crt': fs.readFileSync(world.ca.certPath, 'utf8') },
      'base-ca': { 'ca.crt': fs.readFileSync(world.ca.certPath, 'utf8') },
      ...opts.configMaps,
    },
    hostMounts: [{ hostPath: opts.model.dir, containerPath: FIXTURE_MOUNT }],
    freshVolumeMode: opts.freshVolumeMode,
    stepOverrides: (task, step, spec) => {
      if (task === 'download-model' && step === 'fetch') return { ...spec, script: HF_HUB_STAND_IN };
      return opts.overrides?.(task, step, spec);
    },
    log: opts.log,
    cleanup: true,
    ...opts.extra,
  });
}

/** The digest a registry serves for `repo:tag` (skopeo inspect through TLS + credentials), or undefined if absent. */
export async function servedDigest(registry: LocalRegistry, reference: string): Promise<string | undefined> {
  const r = await run('skopeo', [
    'inspect', '--raw', '--cert-dir', registry.certDir, '--authfile', registry.authFile, `docker://${reference}`,
  ], { allowFailure: true, timeoutMs: 60_000 });
  if (r.code !== 0) {
    if (/manifest unknown|name unknown/.test(r.stderr)) return undefined;
    throw new Error(`skopeo inspect ${reference} failed: ${r.stderr}`);
  }
  return `sha256:${createHash('sha256').update(r.stdout).digest('hex')}`;
}
