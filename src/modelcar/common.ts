import * as kplus from 'cdk8s-plus-28';
import { ArtifactFormat } from './artifact-format';
import { ImageReference } from './image-reference';
import { loadScript } from './scripts';
import { Task } from '../tekton/task';
import { Workspace } from '../tekton/workspaces';

/**
 * The name of the workspace every modelcar task shares.
 *
 * @internal
 */
export const SOURCE_WORKSPACE = 'source';

/**
 * The per-run directory on the shared workspace, keyed by the PipelineRun's uid: a run
 * can never read what another run left on a reused volume.
 *
 * @internal
 */
export function runDir(ws: Workspace): string {
  return `${ws.path}/modelcar-runs/$(context.pipelineRun.uid)`;
}

/** @internal */
export function artifactPath(ws: Workspace, format: ArtifactFormat): string {
  return `${runDir(ws)}/${format === ArtifactFormat.OCI_ARCHIVE ? 'image.tar' : 'image'}`;
}

/**
 * Adds the debug preamble as the task's first step.
 *
 * @internal
 */
export function addPreamble(task: Task, ws: Workspace, image: ImageReference, label: string, artifact?: string): void {
  const env: Record<string, kplus.EnvValue> = {
    TASK_LABEL: kplus.EnvValue.fromValue(label),
    WORKSPACE: ws.pathEnvValue(),
    RUN_DIR: kplus.EnvValue.fromValue(runDir(ws)),
  };
  if (artifact) {
    env.ARTIFACT_PATH = kplus.EnvValue.fromValue(artifact);
    env.REQUIRE_READABLE = kplus.EnvValue.fromValue('true');
  }
  task.addStep({ name: 'debug', image: image.toString(), env, script: loadScript('preamble.sh') });
}
