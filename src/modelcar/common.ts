import * as kplus from 'cdk8s-plus-28';
import { ArtifactFormat } from './artifact-format';
import { ImageReference } from './image-reference';
import { RegistryCredentials, RegistryTrust } from './push-target';
import { loadScript } from './scripts';
import { Param } from '../tekton/params';
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
  if (artifact) {
    env.ARTIFACT_PATH = kplus.EnvValue.fromValue(artifact);
    env.REQUIRE_READABLE = kplus.EnvValue.fromValue('true');
  }
  task.addStep({ name: 'debug', image: image.toString(), env, script: loadScript('preamble.sh') });
}

/** What a step needs to reach a registry: its mounts and env. @internal */
export interface RegistryAccess {
  readonly mounts: VolumeMount[];
  /** CERT_DIR-like and AUTHFILE-like variables, under the names asked for. */
  readonly env: Record<string, kplus.EnvValue>;
}

/**
 * Adds the volumes that give a step a registry's CA (ConfigMap or Secret, as a cert dir:
 * skopeo and buildah trust every `*.crt` in it) and its docker config Secret (as an
 * authfile), and returns the mounts and env for the step. Nothing is added for the
 * system CAs or the service account's credentials.
 *
 * @internal
 */
export function addRegistryAccess(task: Task, opts: {
  trust: RegistryTrust;
  credentials: RegistryCredentials;
  /** Volume name prefix, e.g. 'registry' or 'base'. */
  prefix: string;
  /** Mount directory prefix, e.g. '/etc/modelcar/base-'. */
  mountPrefix: string;
  certDirEnv: string;
  authFileEnv: string;
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
  if (credentials.secretName) {
    const v = task.addVolume(TaskVolume.secret(`${opts.prefix}-auth`, credentials.secretName));
    const dir = `${opts.mountPrefix}auth`;
    mounts.push({ volume: v, mountPath: dir, readOnly: true });
    env[opts.authFileEnv] = kplus.EnvValue.fromValue(`${dir}/.dockerconfigjson`);
  }
  return { mounts, env };
}
