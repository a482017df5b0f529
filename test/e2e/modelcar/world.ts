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
 * The Hugging Face hub is the one part that cannot run here (no internet): a fake hub and CDN over TLS on 127.0.0.1
 * (test/e2e/support/fake-hub.ts, STAND-IN FOR THE HUB, its certificate from the same throwaway CA) serve the
 * synthetic model (test/e2e/support/model-fixture.ts) as commit MODEL_COMMIT of MODEL_REPO. The download task's
 * real fetch step talks to it, trusting its CA through the ConfigMap `hub-ca` (the `huggingFaceTrust` prop);
 * everything (fetch, checksums, results, build, validation, pushes) is the synthesized YAML, run for real by
 * test/e2e/runner.
 */
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { App, Chart, Duration, Size } from 'cdk8s';
import * as yaml from 'js-yaml';
import {
  ArtifactFormat, GitOpsLayout, ImageReference, ModelcarBuilder, ModelcarPipeline, ModelcarPipelineRun, ModelRegistry, PublishMode, PushTarget,
  RegistryCredentials, RegistryTrust, VolumeCleanup,
} from '../../../src';
import { IMAGE_USERS } from '../../../src/modelcar/image-inventory';
import { Manifest, RunPipelineOptions, RunPipelineResult, runPipeline } from '../runner/tekton-runner';
import { pushBaseImage, PushedBaseImage } from '../support/base-image';
import { FakeHub, hubFilesOf, startFakeHub } from '../support/fake-hub';
import { SyntheticModel } from '../support/model-fixture';
import { dockerConfigJsonFor, LocalRegistry, makeCa, startRegistry, TestCa } from '../support/registry';
import { E2E_TOOLS, INSTALL_HINT, requireTools, run } from '../support/tools';

export const NAMESPACE = 'private-ai-demo';
export const FS_GROUP = 1000970000;
export const MODEL_REPO = 'e2e-org/synthetic-model';
/** The commit of MODEL_REPO (branch main) the fake hub serves: the model given to `publishModel`. */
export const MODEL_COMMIT = '0123456789abcdef0123456789abcdef01234567';

export interface World {
  readonly work: string;
  readonly ca: TestCa;
  readonly internal: LocalRegistry;
  readonly quay: LocalRegistry;
  readonly base: PushedBaseImage;
  /**
   * The `pipeline` service account's token: the runner mounts it where Kubernetes does, and the internal registry
   * takes it as the password of user `serviceaccount`, as the OpenShift internal registry does.
   */
  readonly serviceAccountToken: string;
  /** STAND-IN FOR THE HUGGING FACE HUB (and its CDN), TLS on 127.0.0.1. */
  readonly hub: FakeHub;
}

/** Starts both registries and pushes the base image. Fails (never skips) when a tool is missing. */
export async function startWorld(work: string): Promise<World> {
  requireTools(E2E_TOOLS);
  // The pipeline's Python steps run as uid 1000970000: a python3 under /root (pyenv) is out of its reach.
  if (!fs.existsSync('/usr/bin/python3')) throw new Error(`/usr/bin/python3 is missing. Install it with: ${INSTALL_HINT}`);
  const ca = await makeCa(path.join(work, 'ca'));
  // Short enough for htpasswd's bcrypt (72 bytes); a real token is a longer JWT, handled the same way.
  const serviceAccountToken = `sa-token-${randomBytes(16).toString('hex')}`;
  const [internal, quay] = await Promise.all([
    startRegistry({ name: 'internal', workDir: path.join(work, 'registry-internal'), ca, username: 'serviceaccount', password: serviceAccountToken }),
    // A port holding "401" (like 40133, the port of the flake in issue #13): every error line naming quay's port
    // looks like an HTTP 401 to a careless classifier, so the scenarios prove the pushes' diagnoses are not fooled.
    startRegistry({ name: 'quay', workDir: path.join(work, 'registry-quay'), ca, username: 'robot', password: 'quay-secret', portContaining: '401' }),
  ]);
  // An image index of two platforms, pinned by its digest, as the default base (ubi-micro's index) is: the layout
  // builder's default platforms take a manifest each from it.
  const base = await pushBaseImage(internal, { workDir: path.join(work, 'base'), architectures: ['amd64', 'arm64'] });
  const hub = await startFakeHub({ ca, workDir: path.join(work, 'hub') });
  return { work, ca, internal, quay, base, serviceAccountToken, hub };
}

export async function stopWorld(world: World | undefined): Promise<void> {
  if (!world) return;
  await Promise.all([world.internal.stop(), world.quay.stop(), world.hub?.stop()]);
}

/** Publishes `model` on the fake hub as `commit` of MODEL_REPO, branch `main` (replacing what main pointed to). */
export function publishModel(world: World, model: SyntheticModel, commit: string = MODEL_COMMIT): void {
  world.hub.addCommit(MODEL_REPO, commit, hubFilesOf(model), ['main']);
}

export interface SynthOptions {
  /** Default: the layout builder (the library's default). */
  readonly builder?: ModelcarBuilder;
  readonly artifactFormat?: ArtifactFormat;
  /**
   * Runs to synthesize (variant => tags); each run gets a fresh volume unless `existingClaim` is set. A variant's
   * PipelineRun is named `<variant>-<hash of its inputs>`: `runNameOf()` finds it, and `runModelcar()` takes either.
   * fsGroup: default FS_GROUP; 'namespace' sets none, like the default app (the namespace's SCC assigns it).
   */
  readonly runs: {
    readonly name: string;
    readonly tags: string[];
    readonly fsGroup?: number | 'namespace';
    readonly forceRebuild?: boolean;
    readonly registeredModelName?: string;
    /** The model revision. Default: none (main). */
    readonly revision?: string;
  }[];
  /** Called with each run's construct (e.g. for its servingReference()). */
  readonly onRun?: (name: string, run: ModelcarPipelineRun) => void;
  /**
   * Credentials like the default app: the internal push with the service account's token
   * (`PushTarget.openshiftInternal`'s default), the base image with the service account's docker secrets
   * (`$(credentials.path)`). Default: docker config Secrets for both.
   */
  readonly serviceAccountCredentials?: boolean;
  readonly existingClaim?: string;
  /** Push retries (PushTarget.retries). Default the library's. */
  readonly retries?: number;
  /** Tekton retries of the download task (ModelcarPipelineProps.downloadRetries). Default the library's. */
  readonly downloadRetries?: number;
  /** Byte range of one download request (ModelcarPipelineProps.downloadChunkSize). Default the library's. */
  readonly downloadChunkSize?: Size;
  /** Register each run's image (ModelcarPipelineProps.modelRegistry). Default none. */
  readonly modelRegistry?: ModelRegistry;
  /** What a run gives back of its volume (ModelcarPipelineProps.volumeCleanup). Default the library's. */
  readonly volumeCleanup?: VolumeCleanup;
  /** The base image, `host/repository@sha256:...` in the internal registry. Default the world's (an image index of two platforms). */
  readonly baseImage?: string;
  /** How the model reaches the first registry: the volume mode unless given (the volume-only options are then left out). */
  readonly publishMode?: PublishMode;
  /** The first target's host, instead of world.internal's (a fault proxy in front of it, a token-auth registry). */
  readonly internal?: { readonly host: string };
  /**
   * The image's repository name under NAMESPACE at both targets (repositoryOf's `name`), e.g. a fresh one per run
   * that must find nothing published. Default 'synthetic-model'.
   */
  readonly repositoryName?: string;
}

/** Repository of the model image in each registry: `host/NAMESPACE/name` (default name 'synthetic-model'). */
export function repositoryOf(registry: { readonly host: string }, name: string = 'synthetic-model'): string {
  return `${registry.host}/${NAMESPACE}/${name}`;
}

/**
 * Synthesizes the pipeline like the default app (internal, then quay) with the local registries, writes it with
 * GitOpsLayout into `outdir` and returns the documents read back from the YAML files.
 */
export function synthesizePipeline(world: World, outdir: string, opts: SynthOptions): Manifest[] {
  const app = new App();
  const chart = new Chart(app, NAMESPACE, { namespace: NAMESPACE, disableResourceNameHashes: true });
  const trust = RegistryTrust.fromConfigMap('registry-ca');
  const [baseName, baseDigest] = (opts.baseImage ?? world.base.reference).split('@');
  const streams = opts.publishMode?.streams ?? false;
  // The volume mode's own options, refused with PublishMode.streaming().
  const volume = streams ? {} : {
    artifactFormat: opts.artifactFormat,
    downloadRetries: opts.downloadRetries,
    downloadChunkSize: opts.downloadChunkSize,
    volumeCleanup: opts.volumeCleanup,
    // Bounds for a stuck step here (the benchmark's 2 GiB build takes under 2 minutes); the run's
    // timeout defaults to these in a row.
    downloadTimeout: Duration.minutes(10),
    buildTimeout: Duration.minutes(30),
  };
  const modelcar = new ModelcarPipeline(chart, 'modelcar', {
    name: 'modelcar-pipeline',
    builder: opts.builder,
    publishMode: opts.publishMode,
    ...volume,
    baseImage: ImageReference.fromDigest(baseName, baseDigest),
    baseImageTrust: RegistryTrust.fromConfigMap('base-ca'),
    baseImageCredentials: opts.serviceAccountCredentials ? RegistryCredentials.fromServiceAccount() : RegistryCredentials.fromDockerConfigSecret('base-pull'),
    huggingFaceEndpoint: world.hub.hubUrl,
    huggingFaceTrust: RegistryTrust.fromConfigMap('hub-ca'),
    modelRegistry: opts.modelRegistry,
    pushTargets: [
      PushTarget.registry({
        name: 'internal',
        repository: repositoryOf(opts.internal ?? world.internal, opts.repositoryName),
        trust,
        retries: opts.retries,
        timeout: Duration.minutes(15),
        credentials: opts.serviceAccountCredentials ? RegistryCredentials.fromServiceAccountToken() : RegistryCredentials.fromDockerConfigSecret('internal-push'),
      }),
      PushTarget.registry({
        name: 'quay',
        repository: repositoryOf(world.quay, opts.repositoryName),
        trust,
        retries: opts.retries,
        timeout: Duration.minutes(15),
        credentials: RegistryCredentials.fromDockerConfigSecret('quay-push'),
      }),
    ],
  });
  for (const r of opts.runs) {
    const pipelineRun = modelcar.addRun(r.name, {
      name: r.name,
      model: { repo: MODEL_REPO, revision: r.revision },
      tags: r.tags,
      fsGroup: r.fsGroup === 'namespace' ? undefined : r.fsGroup ?? FS_GROUP,
      storage: streams ? undefined : Size.gibibytes(10),
      existingClaim: opts.existingClaim,
      forceRebuild: r.forceRebuild,
      registeredModelName: r.registeredModelName,
    });
    opts.onRun?.(r.name, pipelineRun);
  }
  GitOpsLayout.write(app, { outdir, namespace: NAMESPACE });
  return readManifests(outdir);
}

/**
 * The PipelineRun names of the synthesized variants, variant => name (`<variant>-<10 hex digits of the inputs' hash>`,
 * see PipelineRunProps.nameFromInputs).
 */
export function runNames(manifests: Manifest[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const d of manifests) {
    const m = d.kind === 'PipelineRun' ? /^(.*)-[0-9a-f]{10}$/.exec(d.metadata?.name ?? '') : null;
    if (m) out[m[1]] = d.metadata.name;
  }
  return out;
}

/** The PipelineRun name of a variant (or the name itself when it is already a run's name); throws when there is none. */
export function runNameOf(manifests: Manifest[], variant: string): string {
  if (manifests.some((d) => d.kind === 'PipelineRun' && d.metadata?.name === variant)) return variant;
  const name = runNames(manifests)[variant];
  if (!name) throw new Error(`no PipelineRun for variant "${variant}" in the manifests (runs: ${JSON.stringify(runNames(manifests))})`);
  return name;
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
  /** The variant (as given to synthesizePipeline) or the PipelineRun's name. */
  readonly pipelineRun: string;
  readonly workDir: string;
  /** The model the fake hub serves on main for this run (published before the run). */
  readonly model: SyntheticModel;
  /** The commit main points to for this run. Default MODEL_COMMIT. */
  readonly commit?: string;
  readonly claims?: Record<string, string>;
  /** Step overrides (staged failures). */
  readonly overrides?: StepOverride;
  /** Replace a secret or config map (e.g. wrong credentials, another CA). */
  readonly secrets?: Record<string, Record<string, string>>;
  readonly configMaps?: Record<string, Record<string, string>>;
  readonly freshVolumeMode?: number;
  readonly log?: (line: string) => void;
  /** Measure each TaskRun: passed through to the runner. */
  readonly extra?: Partial<RunPipelineOptions>;
}

/**
 * What the runner knows of the namespace, as strict as a cluster: the `pipeline` service account (the runs' default)
 * with the base image's docker secret linked in `secrets` (Tekton's credential handling puts it in
 * `$(credentials.path)`; the internal push secret only in imagePullSecrets, which Tekton ignores) and its token;
 * independent tasks run at once, as Tekton runs them.
 */
export function clusterLike(world: World): Partial<RunPipelineOptions> {
  return {
    maxParallel: 8,
    serviceAccounts: { pipeline: { secrets: ['base-pull'], imagePullSecrets: ['internal-push'], token: world.serviceAccountToken } },
    // OpenShift Pipelines as installed: its `pipeline` service account gets pipelines-scc, so every step runs as
    // its image's own USER (skopeo as root, Python as 1001) with the namespace's fsGroup; and the analysis team's
    // namespace LimitRange: 1 CPU and 2 GiB for every container without its own limits, as real cgroup limits.
    scc: { policy: 'pipelines-scc', uidRange: `${FS_GROUP}/10000` },
    imageUsers: IMAGE_USERS,
    limitRange: { cpu: '1', memory: '2Gi' },
  };
}

/** Runs one PipelineRun of the synthesized YAML against the fake hub, with the registries' CA and credentials. */
export async function runModelcar(world: World, opts: RunModelcarOptions): Promise<RunPipelineResult> {
  publishModel(world, opts.model, opts.commit);
  const dockerConfig = (r: LocalRegistry) => ({ '.dockerconfigjson': dockerConfigJsonFor([r]) });
  return runPipeline({
    manifests: opts.manifests,
    pipelineRun: runNameOf(opts.manifests, opts.pipelineRun),
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
      'hub-ca': { 'ca.crt': fs.readFileSync(world.ca.certPath, 'utf8') },
      ...opts.configMaps,
    },
    freshVolumeMode: opts.freshVolumeMode,
    stepOverrides: opts.overrides,
    log: opts.log,
    cleanup: true,
    ...clusterLike(world),
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
