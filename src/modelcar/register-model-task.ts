import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { addPreamble, addRegistryAccess, addRunId, SERVICE_ACCOUNT_TOKEN_PATH, SOURCE_WORKSPACE } from './common';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';
import { ModelRegistry } from './model-registry';
import { PushTarget } from './push-target';
import { loadScript } from './scripts';
import { Param, ParamValue } from '../tekton/params';
import { Task } from '../tekton/task';
import { Workspace } from '../tekton/workspaces';

/**
 * Properties of a `RegisterModelTask`.
 */
export interface RegisterModelTaskProps {
  /** The model registry. */
  readonly registry: ModelRegistry;

  /** The registries the pipeline pushes to: every one's image reference is recorded. */
  readonly targets: PushTarget[];

  /**
   * The Task's name.
   *
   * @default 'modelcar-register-model'
   */
  readonly name?: string;

  /**
   * The image of the steps (Python 3, standard library).
   *
   * @default ModelcarImages.PYTHON
   */
  readonly pythonImage?: ImageReference;
}

/**
 * Registers the published image in a model registry: a registered model per model (the
 * Hugging Face repo unless `REGISTERED_MODEL_NAME` names it), a model version per model
 * commit and build configuration, and a model artifact whose `uri` is
 * `oci://<repository>@sha256:<digest>` of the registry's push target. A version already
 * registered with the same digest is left as it is; another digest under it fails the task.
 *
 * The pipeline runs it after the report, so a run that finds its image published (and
 * skips the build) still makes sure the version is registered.
 */
export class RegisterModelTask extends Construct {
  /** The Task. */
  public readonly task: Task;
  /** The Hugging Face model repository. */
  public readonly modelRepo: Param;
  /** The model commit. */
  public readonly modelRevision: Param;
  /** The build configuration digest. */
  public readonly buildConfig: Param;
  /** The digest every target serves. */
  public readonly imageDigest: Param;
  /** The registered model's name (empty: the model repository). */
  public readonly registeredModelName: Param;
  /** The PipelineRun's name, recorded on the version. */
  public readonly pipelineRunName: Param;
  /** The run id param. */
  public readonly runId: Param;
  /** The shared workspace (read only: only the preamble looks at it). */
  public readonly workspace: Workspace;

  constructor(scope: Construct, id: string, props: RegisterModelTaskProps) {
    super(scope, id);
    const python = props.pythonImage ?? ModelcarImages.PYTHON;
    const uriTarget = props.registry.pushTarget ?? props.targets[0]?.name;
    if (!props.targets.some((t) => t.name === uriTarget)) {
      throw new Error(`register model task ${this.node.path}: model registry pushTarget "${uriTarget}" is not a push target: `
        + `use one of ${props.targets.map((t) => `"${t.name}"`).join(', ')}`);
    }
    this.task = new Task(this, 'Task', {
      name: props.name ?? 'modelcar-register-model',
      description: 'Registers the published image, by digest, as a model version in the model registry.',
    });
    this.modelRepo = this.task.addParam('MODEL_REPO', { description: 'Hugging Face model repository, org/name' });
    this.modelRevision = this.task.addParam('MODEL_REVISION', { description: 'The model commit the image was built from' });
    this.buildConfig = this.task.addParam('BUILD_CONFIG', { description: 'The build configuration digest of the image' });
    this.imageDigest = this.task.addParam('IMAGE_DIGEST', { description: 'The digest every target serves' });
    this.registeredModelName = this.task.addParam('REGISTERED_MODEL_NAME', {
      description: 'The registered model\'s name (empty: the model repository)', default: ParamValue.string(''),
    });
    this.pipelineRunName = this.task.addParam('PIPELINE_RUN', { description: 'The PipelineRun, recorded on the version' });
    this.workspace = this.task.addWorkspace(SOURCE_WORKSPACE, { description: 'Shared volume (only listed by the preamble)', readOnly: true });
    this.runId = addRunId(this.task);

    addPreamble(this.task, this.workspace, this.runId, python, 'register-model');
    const access = addRegistryAccess(this.task, {
      trust: props.registry.trust, prefix: 'model-registry', mountPrefix: '/etc/modelcar/model-registry-', certDirEnv: 'REGISTRY_CA_DIR',
    });
    this.task.addStep({
      name: 'register',
      image: python.toString(),
      env: {
        ...access.env,
        REGISTRY_URL: kplus.EnvValue.fromValue(props.registry.url),
        REGISTRY_ACCESS: kplus.EnvValue.fromValue(props.registry.requiredAccess),
        SA_TOKEN_FILE: kplus.EnvValue.fromValue(SERVICE_ACCOUNT_TOKEN_PATH),
        TARGETS: kplus.EnvValue.fromValue(props.targets.map((t) => `${t.name} ${t.repository}`).join('\n')),
        URI_TARGET: kplus.EnvValue.fromValue(uriTarget!),
        MODEL_FORMAT_NAME: kplus.EnvValue.fromValue(props.registry.modelFormatName),
        MODEL_FORMAT_VERSION: kplus.EnvValue.fromValue(props.registry.modelFormatVersion),
        REGISTERED_MODEL_NAME: this.registeredModelName.envValue(),
        MODEL_REPO: this.modelRepo.envValue(),
        MODEL_REVISION: this.modelRevision.envValue(),
        BUILD_CONFIG: this.buildConfig.envValue(),
        IMAGE_DIGEST: this.imageDigest.envValue(),
        PIPELINE_RUN: this.pipelineRunName.envValue(),
      },
      volumeMounts: access.mounts,
      script: loadScript('register-model.py'),
    });
  }
}
