import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { addPreamble, addRunId, runDir, SOURCE_WORKSPACE } from './common';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';
import { loadScript } from './scripts';
import { Param } from '../tekton/params';
import { Task } from '../tekton/task';
import { Workspace } from '../tekton/workspaces';

/**
 * What a modelcar run gives back of its volume when it ends: the model it downloaded and the
 * image it built stay in its directory on the volume (`modelcar-runs/<PipelineRun uid>`)
 * until something removes them. With Tekton's default coschedule mode a volume made from the
 * run's `volumeClaimTemplate` lives as long as the PipelineRun (and GitOps keeps runs), so
 * without a clean-up every run holds its model's size and the image's for good.
 *
 * - `always()` (the default): a `finally` task removes the run's directory whether the run
 *   succeeded or failed, and each run asks Tekton to delete its volume when it ends
 *   (`tekton.dev/auto-cleanup-pvc: "true"`, read from Tekton 1.11 on, ignored before).
 * - `keepFailed()`: the `finally` task removes it only when every task succeeded (or was
 *   skipped): a failed run keeps what it downloaded and built for someone to look at, and
 *   its volume too (no annotation, which would delete it whatever the run's status).
 * - `never()`: no `finally` task, no annotation: the run keeps everything.
 */
export class VolumeCleanup {
  /** Remove the run's bytes when it ends, succeeded or failed, and ask Tekton to delete its volume. */
  public static always(): VolumeCleanup {
    return new VolumeCleanup(true, true);
  }

  /** Remove the run's bytes only when it succeeded: a failed run keeps them (and its volume) for debugging. */
  public static keepFailed(): VolumeCleanup {
    return new VolumeCleanup(true, false);
  }

  /** Keep everything: no `finally` task, no annotation (the behaviour before the clean-up existed). */
  public static never(): VolumeCleanup {
    return new VolumeCleanup(false, false);
  }

  /** Whether the pipeline has the `clean-up` finally task. */
  public readonly removesRunDirectory: boolean;
  /** Whether it also removes a failed run's directory, and runs ask Tekton to delete their volume. */
  public readonly afterFailure: boolean;

  private constructor(removesRunDirectory: boolean, afterFailure: boolean) {
    this.removesRunDirectory = removesRunDirectory;
    this.afterFailure = afterFailure;
  }
}

/**
 * Properties of a `CleanUpTask`.
 */
export interface CleanUpTaskProps {
  /**
   * The Task's name.
   *
   * @default 'modelcar-clean-up'
   */
  readonly name?: string;

  /**
   * The image of the step (needs a shell, rm, df and sync).
   *
   * @default ModelcarImages.SKOPEO
   */
  readonly toolsImage?: ImageReference;
}

/**
 * The modelcar pipeline's `finally` task: removes the run's directory
 * (`modelcar-runs/<PipelineRun uid>`) from the shared volume, and nothing else (the script
 * checks that the directory it was given is exactly that one), then syncs and prints the
 * volume's free space before and after. Like every modelcar task it starts with the debug
 * preamble (identity, groups, what the run's directory holds).
 */
export class CleanUpTask extends Construct {
  /** The Task. */
  public readonly task: Task;
  /** The shared workspace. */
  public readonly workspace: Workspace;
  /** The run id param. */
  public readonly runId: Param;
  /** The pipeline's aggregate status (`$(tasks.status)`), printed in the log. */
  public readonly runStatus: Param;

  constructor(scope: Construct, id: string, props: CleanUpTaskProps = {}) {
    super(scope, id);
    const tools = props.toolsImage ?? ModelcarImages.SKOPEO;
    this.task = new Task(this, 'Task', {
      name: props.name ?? 'modelcar-clean-up',
      description: 'Removes this run\'s directory (the model and the image built from it) from the shared volume.',
    });
    this.workspace = this.task.addWorkspace(SOURCE_WORKSPACE, { description: 'Shared volume' });
    this.runId = addRunId(this.task);
    this.runStatus = this.task.addParam('RUN_STATUS', { description: 'The pipeline\'s tasks status (Succeeded, Completed, Failed, None), for the log' });
    addPreamble(this.task, this.workspace, this.runId, tools, 'clean-up');
    this.task.addStep({
      name: 'clean-up',
      image: tools.toString(),
      env: {
        WORKSPACE: this.workspace.pathEnvValue(),
        RUN_ID: this.runId.envValue(),
        RUN_DIR: kplus.EnvValue.fromValue(runDir(this.workspace, this.runId)),
        RUN_STATUS: this.runStatus.envValue(),
      },
      script: loadScript('clean-up.sh'),
    });
  }
}
