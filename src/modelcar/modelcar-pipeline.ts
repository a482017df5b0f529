import { Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ArtifactFormat } from './artifact-format';
import { BuildImageTask } from './build-image-task';
import { ModelcarBuilder } from './builder';
import { DownloadModelTask } from './download-model-task';
import { ImageReference } from './image-reference';
import { PushTarget, RegistryCredentials, RegistryTrust } from './push-target';
import { PushTask } from './push-task';
import { ParamValue, Param } from '../tekton/params';
import { Pipeline, PipelineTask, PipelineTaskOptions } from '../tekton/pipeline';
import { PipelineRun } from '../tekton/pipeline-run';
import { validateObjectName } from '../tekton/util';
import { PipelineWorkspace, WorkspaceBinding } from '../tekton/workspaces';

/**
 * Properties of a `ModelcarPipeline`.
 */
export interface ModelcarPipelineProps {
  /**
   * The registries to push to, one after another in this order.
   */
  readonly pushTargets: PushTarget[];

  /**
   * The Pipeline's name; the Tasks are named after it (`<name>-download-model`, ...).
   *
   * @default 'modelcar'
   */
  readonly name?: string;

  /**
   * Push to all targets at once instead of one after another. Unsafe on a
   * ReadWriteOnce volume and harder to debug: the parallel readers were part of the
   * failure this library was written after. Leave it off unless you measured a need.
   *
   * @default false
   */
  readonly parallelPushes?: boolean;

  /**
   * How the built image is stored between build and pushes.
   *
   * @default ArtifactFormat.OCI_LAYOUT
   */
  readonly artifactFormat?: ArtifactFormat;

  /**
   * How the image is built: the OCI layout builder (no build container, no capability,
   * each model byte written once) or buildah.
   *
   * @default ModelcarBuilder.ociLayout()
   */
  readonly builder?: ModelcarBuilder;

  /**
   * The image the model is added to.
   *
   * @default ModelcarImages.BASE
   */
  readonly baseImage?: ImageReference;

  /**
   * The CAs trusted when pulling the base image.
   *
   * @default RegistryTrust.systemDefault()
   */
  readonly baseImageTrust?: RegistryTrust;

  /**
   * Credentials for pulling the base image.
   *
   * @default RegistryCredentials.fromServiceAccount()
   */
  readonly baseImageCredentials?: RegistryCredentials;

  /**
   * The Secret with the Hugging Face token (key `token`); optional at run time.
   *
   * @default 'huggingface-token'
   */
  readonly huggingFaceTokenSecret?: string;

  /**
   * The Hugging Face hub address.
   *
   * @default 'https://huggingface.co'
   */
  readonly huggingFaceEndpoint?: string;

  /**
   * The CAs trusted for the hub (and the hosts it redirects to) besides the fetch
   * image's system CAs, e.g. a mirror's CA in a disconnected cluster.
   *
   * @default RegistryTrust.systemDefault()
   */
  readonly huggingFaceTrust?: RegistryTrust;

  /**
   * How long the download may run.
   *
   * @default Duration.hours(1)
   */
  readonly downloadTimeout?: Duration;

  /**
   * Parallel connections of the download (files and byte ranges of large files share them).
   *
   * @default 8
   */
  readonly downloadConnections?: number;

  /**
   * The byte range of one download request for large (LFS) files.
   *
   * @default Size.mebibytes(32)
   */
  readonly downloadChunkSize?: Size;

  /**
   * How many times Tekton retries the download task. A retry keeps the files already
   * verified and resumes the partial ones, so it costs only what was missing. Tekton
   * gives each attempt the full `downloadTimeout`, so `tasksTimeout` counts every attempt.
   *
   * @default 0
   */
  readonly downloadRetries?: number;

  /**
   * How long the build may run.
   *
   * @default Duration.hours(1)
   */
  readonly buildTimeout?: Duration;

  /**
   * The image of the shell and skopeo steps (preambles, checksums, base copy, publish,
   * pushes): set it to a mirror in a disconnected cluster.
   *
   * @default ModelcarImages.SKOPEO
   */
  readonly toolsImage?: ImageReference;

  /**
   * The image of the Python steps (Hugging Face fetch, verification, and the layout
   * builder unless `builder` names its own).
   *
   * @default ModelcarImages.PYTHON
   */
  readonly pythonImage?: ImageReference;
}

/**
 * A modelcar model to package: a Hugging Face repository at a revision.
 */
export interface HuggingFaceModel {
  /** The repository, `org/name`. */
  readonly repo: string;

  /**
   * A branch, tag or commit sha. Pin a commit for repeatable images.
   *
   * @default 'main'
   */
  readonly revision?: string;

  /**
   * Glob patterns of the files to download.
   *
   * @default - every file
   */
  readonly include?: string[];

  /**
   * Glob patterns of files to skip.
   *
   * @default - none
   */
  readonly exclude?: string[];
}

/**
 * Options for `ModelcarPipeline.addRun()`.
 */
export interface ModelcarRunOptions {
  /** The model. */
  readonly model: HuggingFaceModel;

  /** The tags to push, the same at every target. The first is reported as IMAGE_URL. */
  readonly tags: string[];

  /**
   * The fsGroup every task runs with: the group that owns the run's volume and that
   * every task belongs to, so each reads what the others wrote. OpenShift gives each
   * namespace its own range (annotation `openshift.io/sa.scc.supplemental-groups`):
   * use a value from it.
   */
  readonly fsGroup: number;

  /**
   * The PipelineRun's name.
   *
   * @default - derived from the construct path
   */
  readonly name?: string;

  /**
   * The size of the run's volume: the model, the image built from it, and headroom.
   *
   * @default Size.gibibytes(100)
   */
  readonly storage?: Size;

  /**
   * The volume's storage class.
   *
   * @default - the cluster default
   */
  readonly storageClassName?: string;

  /**
   * Use this existing claim instead of a fresh volume per run. Each run still writes
   * under its own directory (keyed by the run's uid), and pushes check the build's
   * digest, so an earlier run's leftovers are never pushed; but they do take space.
   *
   * @default - a fresh volume per run (volumeClaimTemplate)
   */
  readonly existingClaim?: string;

  /**
   * The service account the tasks run as (its secrets give registry credentials).
   *
   * @default 'pipeline' (OpenShift Pipelines' default)
   */
  readonly serviceAccountName?: string;

  /**
   * The whole run's timeout. It must cover the pipeline's task timeouts in a row
   * (download, build, then the pushes: `ModelcarPipeline.tasksTimeout`), or Tekton could
   * stop a task before its own timeout: a shorter one fails at synth.
   *
   * @default the pipeline's tasksTimeout
   */
  readonly timeout?: Duration;

  /**
   * When Kubernetes changes the volume's group to fsGroup.
   *
   * @default FsGroupChangePolicy.ON_ROOT_MISMATCH (fast on a volume with millions of files)
   */
  readonly fsGroupChangePolicy?: kplus.FsGroupChangePolicy;
}

/**
 * The modelcar pipeline: download a model from Hugging Face, build the modelcar image,
 * then push it to each target in turn, with the fixes of the root-cause analysis built
 * in (one identity, per-run paths, atomic artifact, digest hand-off, validation,
 * serialized pushes, debug preambles).
 */
export class ModelcarPipeline extends Construct {
  /** The Pipeline. */
  public readonly pipeline: Pipeline;
  /** The download task. */
  public readonly downloadModel: DownloadModelTask;
  /** The build task. */
  public readonly buildImage: BuildImageTask;
  /** One push task per target, in order. */
  public readonly pushes: PushTask[];
  /** The pipeline task of the download. */
  public readonly downloadTask: PipelineTask;
  /** The pipeline task of the build. */
  public readonly buildTask: PipelineTask;
  /**
   * How long the modelcar tasks may take in a row: download (each of its attempts, with
   * downloadRetries), build, then the pushes (the longest one with parallelPushes). A run's
   * timeout must be at least this.
   */
  public readonly tasksTimeout: Duration;
  /** The pipeline tasks of the pushes, in order. */
  public readonly pushTasks: PipelineTask[];
  /** The shared workspace. */
  public readonly workspace: PipelineWorkspace;
  /** Whether the pushes run in parallel. */
  public readonly parallelPushes: boolean;
  /** Pipeline params. */
  public readonly modelRepo: Param;
  /** Pipeline param: the model revision. */
  public readonly modelRevision: Param;
  /** Pipeline param: include patterns. */
  public readonly modelInclude: Param;
  /** Pipeline param: exclude patterns. */
  public readonly modelExclude: Param;
  /** Pipeline param: tags. */
  public readonly imageTags: Param;

  constructor(scope: Construct, id: string, props: ModelcarPipelineProps) {
    super(scope, id);
    const name = props.name ?? 'modelcar';
    validateObjectName(`modelcar pipeline ${this.node.path}: name`, name);
    if (props.pushTargets.length === 0) {
      throw new Error(`modelcar pipeline ${this.node.path} has no push targets: pass pushTargets: [PushTarget.openshiftInternal(...), ...]`);
    }
    const names = props.pushTargets.map((t) => t.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) {
      throw new Error(`modelcar pipeline ${this.node.path} has two push targets named "${dup}": give each PushTarget.registry() its own name`);
    }
    const format = props.artifactFormat ?? ArtifactFormat.OCI_LAYOUT;
    this.parallelPushes = props.parallelPushes ?? false;

    const downloadTimeout = props.downloadTimeout ?? Duration.hours(1);
    const downloadRetries = props.downloadRetries ?? 0;
    if (!Number.isInteger(downloadRetries) || downloadRetries < 0 || downloadRetries > 10) {
      throw new Error(`modelcar pipeline ${this.node.path}: downloadRetries must be a whole number from 0 to 10 (got ${downloadRetries})`);
    }
    const builder = props.builder ?? (props.pythonImage ? ModelcarBuilder.ociLayout({ image: props.pythonImage }) : undefined);
    this.downloadModel = new DownloadModelTask(this, 'DownloadModel', {
      name: `${name}-download-model`,
      fetchImage: props.pythonImage,
      toolsImage: props.toolsImage,
      tokenSecretName: props.huggingFaceTokenSecret,
      hubEndpoint: props.huggingFaceEndpoint,
      hubTrust: props.huggingFaceTrust,
      connections: props.downloadConnections,
      chunkSize: props.downloadChunkSize,
      // The fetch ends on its own, with its message and its partial files kept, before Tekton stops it.
      deadline: Duration.seconds(Math.max(60, downloadTimeout.toSeconds() - Math.max(60, Math.round(downloadTimeout.toSeconds() * 0.05)))),
      builder,
    });
    this.buildImage = new BuildImageTask(this, 'BuildImage', {
      name: `${name}-build-image`,
      baseImage: props.baseImage,
      baseImageTrust: props.baseImageTrust,
      baseImageCredentials: props.baseImageCredentials,
      artifactFormat: format,
      builder,
      toolsImage: props.toolsImage,
      pythonImage: props.pythonImage,
    });
    this.pushes = props.pushTargets.map((target) => new PushTask(this, `Push-${target.name}`, {
      name: `${name}-push-${target.name}`, target, artifactFormat: format, toolsImage: props.toolsImage,
    }));

    this.pipeline = new Pipeline(this, 'Pipeline', {
      name,
      description: 'Downloads a model from Hugging Face, builds a KServe modelcar image, and pushes it to each registry in turn.',
    });
    this.modelRepo = this.pipeline.addParam('MODEL_REPO', { description: 'Hugging Face model repository, org/name' });
    this.modelRevision = this.pipeline.addParam('MODEL_REVISION', { description: 'Branch, tag or commit', default: ParamValue.string('main') });
    this.modelInclude = this.pipeline.addParam('MODEL_INCLUDE', { description: 'Space-separated glob patterns to download', default: ParamValue.string('') });
    this.modelExclude = this.pipeline.addParam('MODEL_EXCLUDE', { description: 'Space-separated glob patterns to skip', default: ParamValue.string('') });
    this.imageTags = this.pipeline.addParam('IMAGE_TAGS', { description: 'Space-separated tags pushed to every target' });
    this.workspace = this.pipeline.addWorkspace('shared', { description: 'The run\'s volume: model, artifact' });

    const buildTimeout = props.buildTimeout ?? Duration.hours(1);
    // Every task works in modelcar-runs/<PipelineRun uid>/ on the shared volume.
    const runId = ParamValue.string('$(context.pipelineRun.uid)');
    this.downloadTask = this.pipeline.addTask('download-model', {
      task: this.downloadModel.task,
      params: {
        MODEL_REPO: this.modelRepo.toParamValue(),
        MODEL_REVISION: this.modelRevision.toParamValue(),
        MODEL_INCLUDE: this.modelInclude.toParamValue(),
        MODEL_EXCLUDE: this.modelExclude.toParamValue(),
        RUN_ID: runId,
      },
      workspaces: { source: this.workspace },
      timeout: downloadTimeout,
      retries: downloadRetries || undefined,
    });
    this.buildTask = this.pipeline.addTask('build-image', {
      task: this.buildImage.task,
      params: {
        MODEL_REPO: this.modelRepo.toParamValue(),
        MODEL_REVISION: ParamValue.string(this.downloadTask.result('MODEL_RESOLVED_REVISION')),
        RUN_ID: runId,
      },
      workspaces: { source: this.workspace },
      runAfter: [this.downloadTask],
      timeout: buildTimeout,
    });

    this.pushTasks = [];
    let previous = this.buildTask;
    for (const push of this.pushes) {
      const t = this.pipeline.addTask(`push-${push.target.name}`, {
        task: push.task,
        params: {
          IMAGE_DIGEST: ParamValue.string(this.buildTask.result('IMAGE_DIGEST')),
          IMAGE_TAGS: this.imageTags.toParamValue(),
          RUN_ID: runId,
        },
        workspaces: { source: this.workspace },
        runAfter: [props.parallelPushes ? this.buildTask : previous],
        timeout: push.target.timeout,
      });
      this.pushTasks.push(t);
      previous = t;
      const prefix = push.target.name.toUpperCase().replace(/-/g, '_');
      this.pipeline.addResult(`${prefix}_IMAGE_URL`, { value: t.result('IMAGE_URL'), description: `Image pushed to ${push.target.repository}` });
      this.pipeline.addResult(`${prefix}_IMAGE_DIGEST`, { value: t.result('IMAGE_DIGEST'), description: `Digest served by ${push.target.repository}` });
      this.pipeline.addResult(`${prefix}_IMAGE_REF`, { value: t.result('IMAGE_REF'), description: `Image by digest at ${push.target.repository}` });
    }
    const pushSeconds = this.pushes.map((push) => push.target.timeout.toSeconds());
    this.tasksTimeout = Duration.seconds(downloadTimeout.toSeconds() * (1 + downloadRetries) + buildTimeout.toSeconds()
      + (this.parallelPushes ? Math.max(...pushSeconds) : pushSeconds.reduce((a, b) => a + b, 0)));
    this.pipeline.addResult('MODEL_RESOLVED_REVISION', { value: this.downloadTask.result('MODEL_RESOLVED_REVISION'), description: 'The model commit packaged' });
    this.pipeline.addResult('MODEL_SIZE', { value: this.downloadTask.result('MODEL_SIZE'), description: 'The model size in bytes' });
  }

  /**
   * Adds a task of your own after the last push (e.g. registering the model in a model
   * registry). Use `pushTasks[i].result('IMAGE_REF')` in its params.
   */
  public addTask(name: string, options: PipelineTaskOptions): PipelineTask {
    const runAfter = options.runAfter ?? (this.parallelPushes ? this.pushTasks : this.pushTasks.slice(-1));
    return this.pipeline.addTask(name, { ...options, runAfter });
  }

  /** Adds a PipelineRun of this pipeline for one model. */
  public addRun(id: string, options: ModelcarRunOptions): ModelcarPipelineRun {
    return new ModelcarPipelineRun(this, id, { ...options, pipeline: this });
  }
}

/**
 * Properties of a `ModelcarPipelineRun`.
 */
export interface ModelcarPipelineRunProps extends ModelcarRunOptions {
  /** The pipeline to run. */
  readonly pipeline: ModelcarPipeline;
}

/**
 * A run of a `ModelcarPipeline` for one model: its own volume, one fsGroup for every
 * task, and a timeout.
 */
export class ModelcarPipelineRun extends Construct {
  /** The PipelineRun. */
  public readonly pipelineRun: PipelineRun;

  constructor(scope: Construct, id: string, props: ModelcarPipelineRunProps) {
    super(scope, id);
    const where = `modelcar run ${this.node.path}`;
    const model = props.model;
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/.test(model.repo)) {
      throw new Error(`${where}: model repo "${model.repo}" is invalid: expected org/name as on huggingface.co`);
    }
    if (props.tags.length === 0) throw new Error(`${where} has no tags: pass tags: ['...']`);
    props.tags.forEach((t) => ImageReference.validateTag(t));
    if (new Set(props.tags).size !== props.tags.length) throw new Error(`${where} lists a tag twice: ${JSON.stringify(props.tags)}`);
    for (const p of [...(model.include ?? []), ...(model.exclude ?? [])]) {
      if (p.trim() === '' || /\s/.test(p)) throw new Error(`${where}: file pattern "${p}" is empty or contains white space`);
    }
    if (model.revision !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._/-]*$/.test(model.revision)) {
      throw new Error(`${where}: revision "${model.revision}" is invalid: give a branch, tag or commit sha`);
    }
    const storage = props.storage ?? Size.gibibytes(100);
    const p = props.pipeline;
    const timeout = props.timeout ?? p.tasksTimeout;
    if (timeout.toSeconds() < p.tasksTimeout.toSeconds()) {
      throw new Error(`${where}: timeout ${timeout.toHumanString()} is shorter than the pipeline's tasks in a row `
        + `(${p.tasksTimeout.toHumanString()}: download, build, pushes), so Tekton could stop a task before its own timeout: `
        + 'raise the run\'s timeout or lower downloadTimeout, buildTimeout or the push targets\' timeout');
    }
    this.pipelineRun = new PipelineRun(this, 'Resource', {
      pipeline: p.pipeline,
      name: props.name,
      params: {
        MODEL_REPO: ParamValue.string(model.repo),
        MODEL_REVISION: ParamValue.string(model.revision ?? 'main'),
        MODEL_INCLUDE: ParamValue.string((model.include ?? []).join(' ')),
        MODEL_EXCLUDE: ParamValue.string((model.exclude ?? []).join(' ')),
        IMAGE_TAGS: ParamValue.string(props.tags.join(' ')),
      },
      workspaces: {
        shared: props.existingClaim
          ? WorkspaceBinding.persistentVolumeClaim(props.existingClaim)
          : WorkspaceBinding.volumeClaimTemplate({ storage, storageClassName: props.storageClassName }),
      },
      taskRunTemplate: {
        serviceAccountName: props.serviceAccountName ?? 'pipeline',
        podTemplate: {
          securityContext: {
            fsGroup: props.fsGroup,
            fsGroupChangePolicy: props.fsGroupChangePolicy ?? kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH,
          },
        },
      },
      timeouts: { pipeline: timeout },
    });
  }
}
