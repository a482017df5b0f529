import { Duration } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ArtifactFormat } from './artifact-format';
import { ImageReference } from './image-reference';
import { PushTarget, RegistryCredentials, RegistryCredentialsSource, RegistryTrust } from './push-target';
import { loadScript } from './scripts';
import { Param, ParamValue } from '../tekton/params';
import { TaskVolume, VolumeMount } from '../tekton/step';
import { Task } from '../tekton/task';
import { Workspace } from '../tekton/workspaces';

/**
 * The name of the workspace every modelcar task shares.
 *
 * @internal
 */
export const SOURCE_WORKSPACE = 'source';

/**
 * Declares the RUN_ID param every modelcar task takes. The pipeline passes
 * `$(context.pipelineRun.uid)`: Tekton substitutes pipeline context only in the Pipeline,
 * never inside a referenced Task.
 *
 * @internal
 */
export function addRunId(task: Task): Param {
  return task.addParam('RUN_ID', { description: 'Unique id of the run (the pipeline passes the PipelineRun uid): names this run\'s directory' });
}

/**
 * The per-run directory on the shared workspace, keyed by the PipelineRun's uid: a run
 * can never read what another run left on a reused volume.
 *
 * @internal
 */
export function runDir(ws: Workspace, runId: Param): string {
  return `${ws.path}/modelcar-runs/${runId.reference}`;
}

/**
 * The download's SHA256SUMS (paths relative to the model directory): beside the model
 * directory, not in it, so that no repo file can collide with it.
 *
 * @internal
 */
export function sumsPath(ws: Workspace, runId: Param): string {
  return `${runDir(ws, runId)}/SHA256SUMS`;
}

/** @internal */
export function artifactPath(ws: Workspace, runId: Param, format: ArtifactFormat): string {
  return `${runDir(ws, runId)}/${format === ArtifactFormat.OCI_ARCHIVE ? 'image.tar' : 'image'}`;
}

/**
 * Adds the debug preamble as the task's first step.
 *
 * @internal
 */
export function addPreamble(task: Task, ws: Workspace, runId: Param, image: ImageReference, label: string, artifact?: string): void {
  const env: Record<string, kplus.EnvValue> = {
    TASK_LABEL: kplus.EnvValue.fromValue(label),
    WORKSPACE: ws.pathEnvValue(),
    RUN_DIR: kplus.EnvValue.fromValue(runDir(ws, runId)),
    RUN_ID: runId.envValue(),
  };
  if (artifact) env.ARTIFACT_PATH = kplus.EnvValue.fromValue(artifact);
  // Only a task that reads the artifact carries the check that it can (a step carries only the code it runs).
  task.addStep({ name: 'debug', image: image.toString(), env, script: loadScript(artifact ? 'artifact-readable.sh' : 'preamble.sh') });
}

/** What a step needs to reach a registry: its mounts and env. @internal */
export interface RegistryAccess {
  readonly mounts: VolumeMount[];
  /** CERT_DIR-like and AUTHFILE-like variables, under the names asked for, and AUTH_MODE. */
  readonly env: Record<string, kplus.EnvValue>;
}

/**
 * Where Kubernetes mounts the service account's token in every container (unless
 * `automountServiceAccountToken: false`). @internal
 */
export const SERVICE_ACCOUNT_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Adds the volumes that give a step a registry's CA (ConfigMap or Secret, as a cert dir:
 * skopeo and buildah trust every `*.crt` in it) and its credentials, and returns the
 * mounts and env for the step (read by `scripts/registry-auth.sh`):
 * - a docker config Secret is mounted and named by the authfile variable;
 * - the service account's docker secrets are the file Tekton writes to
 *   `$(credentials.path)/.docker/config.json` (Tekton substitutes the variable in the
 *   step; the file is the step's own, so no `$HOME` is involved);
 * - the service account's token is read from where Kubernetes mounts it.
 *
 * @internal
 */
export function addRegistryAccess(task: Task, opts: {
  trust: RegistryTrust;
  /** None: only the CA (a server that needs no registry credentials, e.g. the hub). */
  credentials?: RegistryCredentials;
  /** Volume name prefix, e.g. 'registry' or 'base'. */
  prefix: string;
  /** Mount directory prefix, e.g. '/etc/modelcar/base-'. */
  mountPrefix: string;
  certDirEnv: string;
  authFileEnv?: string;
  /** The variable naming the credentials' source, for a step that reaches two registries. Default AUTH_MODE. */
  authModeEnv?: string;
}): RegistryAccess {
  const mounts: VolumeMount[] = [];
  const env: Record<string, kplus.EnvValue> = {};
  const { trust, credentials } = opts;
  if (trust.configMapName || trust.secretName) {
    const v = task.addVolume(trust.configMapName
      ? TaskVolume.configMap(`${opts.prefix}-ca`, trust.configMapName)
      : TaskVolume.secret(`${opts.prefix}-ca`, trust.secretName!));
    const dir = `${opts.mountPrefix}certs`;
    mounts.push({ volume: v, mountPath: dir, readOnly: true });
    env[opts.certDirEnv] = kplus.EnvValue.fromValue(dir);
  }
  if (!credentials) return { mounts, env };
  if (!opts.authFileEnv) throw new Error('addRegistryAccess: credentials need authFileEnv');
  env[opts.authModeEnv ?? 'AUTH_MODE'] = kplus.EnvValue.fromValue(credentials.source);
  switch (credentials.source) {
    case RegistryCredentialsSource.DOCKER_CONFIG_SECRET: {
      const v = task.addVolume(TaskVolume.secret(`${opts.prefix}-auth`, credentials.secretName!));
      const dir = `${opts.mountPrefix}auth`;
      mounts.push({ volume: v, mountPath: dir, readOnly: true });
      env[opts.authFileEnv] = kplus.EnvValue.fromValue(`${dir}/.dockerconfigjson`);
      break;
    }
    case RegistryCredentialsSource.SERVICE_ACCOUNT_DOCKER_CONFIG:
      env[opts.authFileEnv] = kplus.EnvValue.fromValue('$(credentials.path)/.docker/config.json');
      break;
    case RegistryCredentialsSource.SERVICE_ACCOUNT_TOKEN:
      env.SA_TOKEN_FILE = kplus.EnvValue.fromValue(SERVICE_ACCOUNT_TOKEN_PATH);
      break;
  }
  return { mounts, env };
}

/**
 * The env and mounts of a `check-published.sh` step, both modes: one step asks every target.
 * `TARGETS` is a table, one line per target (name, repository, tls-verify, retries, cert dir,
 * auth mode, auth file; `-` for none): synth-time values only, no param among them.
 *
 * @internal
 */
export function checkTargetsAccess(task: Task, targets: PushTarget[], modelRepo: Param, tags: Param): RegistryAccess {
  const mounts: VolumeMount[] = [];
  const env: Record<string, kplus.EnvValue> = {};
  const rows = targets.map((target) => {
    const access = addRegistryAccess(task, {
      trust: target.trust,
      credentials: target.credentials,
      prefix: target.name,
      mountPrefix: `/etc/modelcar/${target.name}-`,
      certDirEnv: 'CERT_DIR',
      authFileEnv: 'AUTHFILE',
    });
    mounts.push(...access.mounts);
    if (access.env.SA_TOKEN_FILE) env.SA_TOKEN_FILE = access.env.SA_TOKEN_FILE;
    const value = (name: string) => access.env[name]?.value || '-';
    return [target.name, target.repository, String(target.trust.tlsVerify), String(target.retries),
      value('CERT_DIR'), value('AUTH_MODE'), value('AUTHFILE')].join(' ');
  });
  return {
    mounts,
    env: {
      TARGETS: kplus.EnvValue.fromValue(rows.join('\n')),
      IMAGE_TAGS: tags.envValue(),
      MODEL_REPO: modelRepo.envValue(),
      ...env,
      TMPDIR: kplus.EnvValue.fromValue('/var/tmp/modelcar/tmp'),
      // skopeo keeps a blob-info cache under $HOME: in the step's emptyDir, since the
      // namespace's arbitrary uid has HOME=/ otherwise, which it cannot write.
      HOME: kplus.EnvValue.fromValue('/var/tmp/modelcar/home'),
    },
  };
}

/** How long the check and the report may run: seconds of skopeo inspect with retries. @internal */
export const CHECK_TIMEOUT = Duration.minutes(5);

/** `quay` -> `QUAY`, `my-mirror` -> `MY_MIRROR`: the prefix of a target's results. @internal */
export function resultPrefix(target: PushTarget): string {
  return target.name.toUpperCase().replace(/-/g, '_');
}

/** Which files of which model: the params the check and the download share. @internal */
export interface ModelParams {
  readonly repo: Param;
  readonly revision: Param;
  readonly include: Param;
  readonly exclude: Param;
}

/** Adds MODEL_REPO, MODEL_REVISION, MODEL_INCLUDE and MODEL_EXCLUDE to a task. @internal */
export function addModelParams(task: Task): ModelParams {
  return {
    repo: task.addParam('MODEL_REPO', { description: 'Hugging Face model repository, org/name' }),
    revision: task.addParam('MODEL_REVISION', { description: 'Branch, tag or commit', default: ParamValue.string('main') }),
    include: task.addParam('MODEL_INCLUDE', { description: 'Space-separated glob patterns to download (empty: all files)', default: ParamValue.string('') }),
    exclude: task.addParam('MODEL_EXCLUDE', { description: 'Space-separated glob patterns to skip', default: ParamValue.string('') }),
  };
}

/** Throws unless the hub's TLS is verified: the token (and the model) would be open to anyone on the path. @internal */
export function requireVerifiedHubTrust(where: string, trust: RegistryTrust): void {
  if (!trust.tlsVerify) {
    throw new Error(`${where}: hubTrust must verify TLS (the model and the token would be open to anyone on the path): `
      + 'give the CA with RegistryTrust.fromConfigMap() or fromSecret()');
  }
}

/**
 * The env of a hub step (`hf-fetch.py`, `hf-resolve.py`): the model's params, the hub, and its token from an
 * optional Secret (key `token`). @internal
 */
export function hubEnv(scope: Construct, model: ModelParams, endpoint: string, tokenSecret: string): Record<string, kplus.EnvValue> {
  return {
    HF_REPO: model.repo.envValue(),
    HF_REVISION: model.revision.envValue(),
    HF_INCLUDE: model.include.envValue(),
    HF_EXCLUDE: model.exclude.envValue(),
    HF_ENDPOINT: kplus.EnvValue.fromValue(endpoint),
    HF_TOKEN: kplus.EnvValue.fromSecretValue(
      { secret: kplus.Secret.fromSecretName(scope, 'Token', tokenSecret), key: 'token' }, { optional: true }),
  };
}
