import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { addPreamble, addRunId, checkTargetsAccess, SOURCE_WORKSPACE } from './common';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';
import { PushTarget } from './push-target';
import { loadScript } from './scripts';
import { Param } from '../tekton/params';
import { Result } from '../tekton/results';
import { TaskVolume } from '../tekton/step';
import { Task } from '../tekton/task';
import { Workspace } from '../tekton/workspaces';

/**
 * Properties of a `ReportPublishedTask`.
 */
export interface ReportPublishedTaskProps {
  /** The registries the pipeline pushes to. */
  readonly targets: PushTarget[];

  /**
   * The Task's name.
   *
   * @default 'modelcar-report-published'
   */
  readonly name?: string;

  /**
   * The image of the steps (needs skopeo).
   *
   * @default ModelcarImages.SKOPEO
   */
  readonly toolsImage?: ImageReference;
}

/**
 * The last task of the modelcar pipeline: reads back from every target the image this run
 * stands for (every tag, one digest, this commit and build configuration in its labels; every
 * target the same digest) and publishes `IMAGE_DIGEST` and `IMAGE_TAG` (the first tag). The
 * pipeline makes each target's `<TARGET>_IMAGE_URL`, `_IMAGE_DIGEST` and `_IMAGE_REF` from them
 * and the target's repository: two short results whatever the number of targets, so the
 * termination message of each step (4 KiB, and a share of the 12 KiB the kubelet keeps for all
 * of the pod's containers) holds them with any number of targets and any repository name.
 *
 * Why a task of its own: in Tekton a pipeline result that refers to a result of a skipped
 * task is not emitted (and a finally task that refers to one is skipped), so the pipeline's
 * results cannot come from the pushes when a run finds everything published and skips them.
 * This task depends only on the check's results, so it runs in both cases, after the pushes
 * when there are any, and the pipeline results have the same names and meaning either way.
 */
export class ReportPublishedTask extends Construct {
  /** The Task. */
  public readonly task: Task;
  /** The model repository. */
  public readonly modelRepo: Param;
  /** The commit every target must serve. */
  public readonly modelRevision: Param;
  /** The build configuration digest every target's image must carry. */
  public readonly buildConfig: Param;
  /** Space-separated tags. */
  public readonly tags: Param;
  /** The shared workspace (read only: only the preamble looks at it). */
  public readonly workspace: Workspace;
  /** The run id param. */
  public readonly runId: Param;
  /** The digest every target serves. */
  public readonly imageDigest: Result;
  /** The first tag of the run. */
  public readonly imageTag: Result;

  constructor(scope: Construct, id: string, props: ReportPublishedTaskProps) {
    super(scope, id);
    const tools = props.toolsImage ?? ModelcarImages.SKOPEO;
    this.task = new Task(this, 'Task', {
      name: props.name ?? 'modelcar-report-published',
      description: 'Reads back the image every registry serves for this run and publishes its URL, digest and reference.',
    });
    this.modelRepo = this.task.addParam('MODEL_REPO', { description: 'Hugging Face model repository (image label)' });
    this.modelRevision = this.task.addParam('MODEL_REVISION', { description: 'Commit sha the image must be built from (image label)' });
    this.buildConfig = this.task.addParam('BUILD_CONFIG', { description: 'Build configuration digest the image must carry (image label)' });
    this.tags = this.task.addParam('IMAGE_TAGS', { description: 'Space-separated tags every target must serve' });
    this.workspace = this.task.addWorkspace(SOURCE_WORKSPACE, { description: 'Shared volume (only listed by the preamble)', readOnly: true });
    this.runId = addRunId(this.task);
    const scratch = this.task.addVolume(TaskVolume.emptyDir('scratch'));

    addPreamble(this.task, this.workspace, this.runId, tools, 'report-published');
    this.imageDigest = this.task.addResult('IMAGE_DIGEST', { description: 'The digest every target serves for this run' });
    this.imageTag = this.task.addResult('IMAGE_TAG', { description: 'The first tag of the run' });
    const targets = checkTargetsAccess(this.task, props.targets, this.modelRepo, this.tags);
    this.task.addStep({
      name: 'report',
      image: tools.toString(),
      env: {
        ...targets.env,
        MODE: kplus.EnvValue.fromValue('report'),
        EXPECTED_REVISION: this.modelRevision.envValue(),
        EXPECTED_CONFIG: this.buildConfig.envValue(),
        RESULT_IMAGE_DIGEST: this.imageDigest.pathEnvValue(),
        RESULT_IMAGE_TAG: this.imageTag.pathEnvValue(),
      },
      volumeMounts: [{ volume: scratch, mountPath: '/var/tmp/modelcar' }, ...targets.mounts],
      script: loadScript('check-published.sh'),
    });
  }
}
