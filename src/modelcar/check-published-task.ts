import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { addModelParams, addPreamble, addRegistryAccess, addRunId, checkTargetsAccess, hubEnv, requireVerifiedHubTrust, SOURCE_WORKSPACE } from './common';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';
import { PushTarget, RegistryTrust } from './push-target';
import { loadScript } from './scripts';
import { Param, ParamValue } from '../tekton/params';
import { Result } from '../tekton/results';
import { TaskVolume, VolumeMount } from '../tekton/step';
import { Task } from '../tekton/task';
import { validateObjectName } from '../tekton/util';
import { Workspace } from '../tekton/workspaces';

/**
 * Properties of a `CheckPublishedTask`.
 */
export interface CheckPublishedTaskProps {
  /** The registries the pipeline pushes to: each is asked with its own trust and credentials. */
  readonly targets: PushTarget[];

  /**
   * What the build task decides about the image (`BuildImageTask.buildConfigSpec`); hashed
   * with the run's include/exclude patterns into the `BUILD_CONFIG` result.
   */
  readonly buildConfigSpec: string;

  /**
   * The Task's name.
   *
   * @default 'modelcar-check-published'
   */
  readonly name?: string;

  /**
   * The image of the revision lookup (Python 3, standard library).
   *
   * @default ModelcarImages.PYTHON
   */
  readonly pythonImage?: ImageReference;

  /**
   * The image of the shell and skopeo steps.
   *
   * @default ModelcarImages.SKOPEO
   */
  readonly toolsImage?: ImageReference;

  /**
   * The Secret with the Hugging Face token (key `token`), optional at run time.
   *
   * @default 'huggingface-token'
   */
  readonly tokenSecretName?: string;

  /**
   * The hub's address.
   *
   * @default 'https://huggingface.co'
   */
  readonly hubEndpoint?: string;

  /**
   * The CAs trusted for the hub besides the image's system CAs (as for the download).
   *
   * @default RegistryTrust.systemDefault()
   */
  readonly hubTrust?: RegistryTrust;
}

/**
 * The first task of the modelcar pipeline: asks before working. It resolves the model
 * revision to its commit (the hub's revision API: one small JSON request, no file), computes
 * the digest of the build configuration, and asks every push target (skopeo inspect, with
 * that target's trust and credentials) whether it already serves every tag of the run, built
 * from this commit with this configuration (the image's labels), and the serving tag (`SERVING_TAG`)
 * besides the run's tags.
 *
 * An image published before the serving tag existed lacks it: the check reads that as it reads any
 * missing tag, and the run builds once more. The build is reproducible (same commit, same
 * configuration, same digest), so the run's own tags keep their digest and the serving tag is added;
 * skipping instead would leave a serving reference in git that names nothing.
 *
 * Its `REBUILD` result is `false` only when every target does; the pipeline guards download,
 * build and pushes with it. A tag the registry does not know (manifest unknown, name unknown)
 * means rebuild; a registry that cannot be reached, refuses the credentials or is not trusted
 * fails the task with the registry's words: never a silent skip.
 *
 * Steps: `debug`, `resolve`, `config`, `check` (every target, one after another, in one
 * script: the Task does not grow with the number of targets).
 */
export class CheckPublishedTask extends Construct {
  /** The Task. */
  public readonly task: Task;
  /** The model repository, `org/name`. */
  public readonly modelRepo: Param;
  /** The branch, tag or commit to resolve. */
  public readonly modelRevision: Param;
  /** Space-separated include patterns (part of the build configuration). */
  public readonly include: Param;
  /** Space-separated exclude patterns (part of the build configuration). */
  public readonly exclude: Param;
  /** Space-separated tags every target must serve. */
  public readonly tags: Param;
  /** `true` rebuilds without asking the registries. */
  public readonly forceRebuild: Param;
  /** The commit the revision resolved to. */
  public readonly resolvedRevision: Result;
  /** The size of the selected files, as the hub lists them. */
  public readonly modelSize: Result;
  /** The digest of the build configuration. */
  public readonly buildConfig: Result;
  /** `true` when the pipeline must download, build and push; `false` when every target serves it. */
  public readonly rebuild: Result;
  /**
   * The serving tag, `<commit>-<16 hex of the build configuration's digest>`: pushed to every target with the run's
   * tags, and asked for by the check like them.
   */
  public readonly servingTag: Result;
  /** The shared workspace (read only: only the preamble looks at it). */
  public readonly workspace: Workspace;
  /** The run id param. */
  public readonly runId: Param;

  constructor(scope: Construct, id: string, props: CheckPublishedTaskProps) {
    super(scope, id);
    const endpoint = props.hubEndpoint ?? 'https://huggingface.co';
    const tokenSecret = props.tokenSecretName ?? 'huggingface-token';
    validateObjectName(`check task ${this.node.path}: tokenSecretName`, tokenSecret);
    if (props.targets.length === 0) {
      throw new Error(`check task ${this.node.path} has no targets: pass targets: [PushTarget.openshiftInternal(...), ...]`);
    }
    const tools = (props.toolsImage ?? ModelcarImages.SKOPEO).toString();
    const hubTrust = props.hubTrust ?? RegistryTrust.systemDefault();
    requireVerifiedHubTrust(`check task ${this.node.path}`, hubTrust);

    this.task = new Task(this, 'Task', {
      name: props.name ?? 'modelcar-check-published',
      description: 'Resolves the model revision and asks every registry whether it already serves this run\'s image.',
    });
    const model = addModelParams(this.task);
    this.modelRepo = model.repo;
    this.modelRevision = model.revision;
    this.include = model.include;
    this.exclude = model.exclude;
    this.tags = this.task.addParam('IMAGE_TAGS', { description: 'Space-separated tags every target must serve' });
    this.forceRebuild = this.task.addParam('FORCE_REBUILD', { description: 'true: rebuild without asking the registries', default: ParamValue.string('false') });
    this.resolvedRevision = this.task.addResult('MODEL_RESOLVED_REVISION', { description: 'The commit the revision resolved to' });
    this.modelSize = this.task.addResult('MODEL_SIZE', { description: 'Bytes of the selected files, as the hub lists them' });
    this.buildConfig = this.task.addResult('BUILD_CONFIG', { description: 'Digest of the build configuration' });
    this.servingTag = this.task.addResult('SERVING_TAG', { description: 'Tag of the model commit and build configuration, pushed besides IMAGE_TAGS' });
    this.rebuild = this.task.addResult('REBUILD', { description: 'true: download, build and push; false: every target already serves this image' });
    this.workspace = this.task.addWorkspace(SOURCE_WORKSPACE, { description: 'Shared volume (only listed by the preamble)', readOnly: true });
    this.runId = addRunId(this.task);

    const scratch = this.task.addVolume(TaskVolume.emptyDir('scratch'));
    const scratchMount: VolumeMount = { volume: scratch, mountPath: '/var/tmp/modelcar' };

    addPreamble(this.task, this.workspace, this.runId, props.toolsImage ?? ModelcarImages.SKOPEO, 'check-published');
    // The resolve script shares the download's hub access (endpoint, token, TLS, retries: hf_hub.py)
    // and tree listing (hf_tree.py), and embeds nothing of the download: the revision and tree APIs, no file.
    const hubAccess = addRegistryAccess(this.task, {
      trust: hubTrust, prefix: 'huggingface-hub', mountPrefix: '/etc/modelcar/huggingface-hub-', certDirEnv: 'HF_CA_DIR',
    });
    this.task.addStep({
      name: 'resolve',
      image: (props.pythonImage ?? ModelcarImages.PYTHON).toString(),
      env: {
        ...hubEnv(this, model, endpoint, tokenSecret),
        RESOLVED_REVISION_FILE: this.resolvedRevision.pathEnvValue(),
        MODEL_SIZE_FILE: this.modelSize.pathEnvValue(),
        HOME: kplus.EnvValue.fromValue('/tmp'),
        ...hubAccess.env,
      },
      volumeMounts: hubAccess.mounts,
      script: loadScript('hf-resolve.py'),
    });
    this.task.addStep({
      name: 'config',
      image: tools,
      env: {
        BUILD_CONFIG_SPEC: kplus.EnvValue.fromValue(props.buildConfigSpec),
        MODEL_INCLUDE: this.include.envValue(),
        MODEL_EXCLUDE: this.exclude.envValue(),
        RESULT_BUILD_CONFIG: this.buildConfig.pathEnvValue(),
        RESOLVED_REVISION_FILE: kplus.EnvValue.fromValue(this.resolvedRevision.path),
        RESULT_SERVING_TAG: this.servingTag.pathEnvValue(),
      },
      script: loadScript('build-config.sh'),
    });
    const targets = checkTargetsAccess(this.task, props.targets, this.modelRepo, this.tags);
    this.task.addStep({
      name: 'check',
      image: tools,
      env: {
        ...targets.env,
        MODE: kplus.EnvValue.fromValue('check'),
        FORCE_REBUILD: this.forceRebuild.envValue(),
        EXPECTED_REVISION_FILE: kplus.EnvValue.fromValue(this.resolvedRevision.path),
        EXPECTED_CONFIG_FILE: kplus.EnvValue.fromValue(this.buildConfig.path),
        SERVING_TAG_FILE: kplus.EnvValue.fromValue(this.servingTag.path),
        RESULT_REBUILD: this.rebuild.pathEnvValue(),
      },
      volumeMounts: [scratchMount, ...targets.mounts],
      script: loadScript('check-published.sh'),
    });
  }
}
