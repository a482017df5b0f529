import { Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ArtifactFormat } from './artifact-format';
import { BuildImageTask } from './build-image-task';
import { ModelcarBuilder, ModelcarBuilderKind } from './builder';
import { CheckPublishedTask } from './check-published-task';
import { CleanUpTask, VolumeCleanup } from './clean-up-task';
import { CHECK_TIMEOUT, resultPrefix } from './common';
import { DownloadModelTask } from './download-model-task';
import { ImageReference } from './image-reference';
import { ImageResult } from './image-result';
import { ModelcarImages } from './images';
import { ModelRegistry } from './model-registry';
import { PublishMode } from './publish-mode';
import { PushTarget, RegistryCredentials, RegistryTrust } from './push-target';
import { PushTask } from './push-task';
import { RegisterModelTask } from './register-model-task';
import { ReportPublishedTask } from './report-published-task';
import { buildConfigDigest, buildConfigSpec, servingTag } from './serving-reference';
import { StreamPublishTask } from './stream-publish-task';
import { ArgoCdSync } from '../gitops/argocd-sync';
import { ParamValue, Param } from '../tekton/params';
import { Pipeline, PipelineTask, PipelineTaskOptions, WhenExpression } from '../tekton/pipeline';
import { PipelineRun } from '../tekton/pipeline-run';
import { readableNamePart } from '../tekton/run-name';
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
   * The image of the shell and skopeo steps (preambles, base copy, publish, pushes):
   * set it to a mirror in a disconnected cluster.
   *
   * @default ModelcarImages.SKOPEO
   */
  readonly toolsImage?: ImageReference;

  /**
   * The image of the Python steps (Hugging Face fetch, the download's checksum step,
   * verification, and the layout builder unless `builder` names its own).
   *
   * @default ModelcarImages.PYTHON
   */
  readonly pythonImage?: ImageReference;

  /**
   * Rename, and so run again, every run when the Pipeline's or its Tasks' spec changes
   * (a library upgrade, another base image, a new task): the specs join the hash in each
   * run's name. Off, only a run's own inputs (model, revision, files, tags, push targets,
   * the pipeline's name, `rebuildNonce`) name it, and a pipeline change applies to the
   * next run they create.
   *
   * @default false
   */
  readonly rebuildOnPipelineChange?: boolean;

  /**
   * Rebuild and push even when every target already serves the run's image: every run
   * passes `FORCE_REBUILD=true` (a run's own `forceRebuild` overrides it) and, since the
   * param joins each run's name, every run is renamed and so runs once more. With it, the
   * check task still resolves the commit but asks no registry.
   *
   * Without it, a run first asks every target (the `check-published` task) and skips
   * download, build and pushes when each one serves every tag, built from the same commit
   * with the same build configuration (labels `io.kserve.modelcar.revision` and
   * `io.kserve.modelcar.build-config`).
   *
   * @default false
   */
  readonly forceRebuild?: boolean;

  /**
   * The Argo CD annotations of the Tasks, the Pipeline and the runs, in what `cdk8s synth`
   * and `GitOpsLayout.write()` write: Tasks and Pipeline in sync wave 1, runs in wave 2,
   * finished runs kept when they leave git. `ArgoCdSync.none()` leaves them out, for
   * delivery another way; `ArgoCdSync.annotations({ pruneFinishedRuns: true })` lets Argo
   * CD delete a finished run, with its logs, once it leaves git.
   *
   * @default ArgoCdSync.annotations()
   */
  readonly argoCdSync?: ArgoCdSync;

  /**
   * Register every published image in this model registry: a task after the report (so a
   * run that finds its image published still makes sure it is registered) adds one model
   * version per model commit and build configuration, its artifact naming the image by digest.
   *
   * @default - no registration
   */
  readonly modelRegistry?: ModelRegistry;

  /**
   * What a run gives back of its volume when it ends. By default a `finally` task removes
   * the run's directory (the model and the image built from it) whether the run succeeded
   * or failed, and each run that has its own volume asks Tekton to delete it when the run
   * ends (`tekton.dev/auto-cleanup-pvc`, Tekton 1.11 and later). `VolumeCleanup.keepFailed()`
   * keeps a failed run's bytes (and volume) for debugging; `VolumeCleanup.never()` keeps
   * everything, as before this option existed.
   *
   * @default VolumeCleanup.always()
   */
  readonly volumeCleanup?: VolumeCleanup;

  /**
   * How the model gets from the hub into the first registry. `PublishMode.volume()` downloads it to the run's
   * volume, builds the image there and pushes it from there. `PublishMode.streaming()` needs no volume: one task
   * sends each file from the hub into the first target as the same image's layers (same digest, same serving
   * tag), and the next targets copy it registry to registry. See the README, "Publishing without a volume".
   *
   * @default PublishMode.volume()
   */
  readonly publishMode?: PublishMode;
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
   * every task belongs to, so each reads what the others wrote.
   *
   * Leave it unset on OpenShift: the namespace's SCC (restricted-v2) gives every pod of
   * the namespace the first value of the namespace's range (annotation
   * `openshift.io/sa.scc.supplemental-groups`, different on every cluster), so every
   * task already shares one group; a value outside that range makes every TaskRun fail
   * at pod creation ("unable to validate against any security context constraint").
   * Set it on a cluster without SCCs (vanilla Kubernetes assigns none).
   *
   * @default - none: the namespace's SCC assigns it
   */
  readonly fsGroup?: number;

  /**
   * The uid every task runs as. Leave it unset on OpenShift (the SCC assigns the first
   * uid of the namespace's range, and refuses one outside it); set it on a cluster
   * without SCCs whose images would otherwise run as root. It applies to the whole
   * run: no task sets its own.
   *
   * @default - none: the namespace's SCC, or the image, decides
   */
  readonly runAsUser?: number;

  /**
   * The readable part of the PipelineRun's name. The name is `<name>-<hash>`, the hash
   * covering what the run builds and where it goes: model repo, revision, include and
   * exclude, tags, the push targets, the pipeline's name and `rebuildNonce`. The same
   * inputs give the same name; a change gives a new run, which GitOps creates and Tekton
   * runs once. At most 52 characters (the hash takes 11).
   *
   * @default - the run's id, lowercased and shortened to fit
   */
  readonly name?: string;

  /**
   * Build this variant again with unchanged inputs: any string (say, today's date) joins
   * the hash, so the run gets a new name; change it for each rebuild.
   *
   * @default - none
   */
  readonly rebuildNonce?: string;

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

  /**
   * Rebuild and push even when every target already serves this image (the run's
   * `FORCE_REBUILD` param); without it, a run that finds its image published finishes in
   * seconds without downloading. Set, the param joins the run's name (Tekton refuses
   * changes to a started run's spec), so the forced run is a new run, created and built
   * once; to force again later, change `rebuildNonce`.
   *
   * @default - the pipeline's forceRebuild (false unless set)
   */
  readonly forceRebuild?: boolean;

  /**
   * The registered model's name in the pipeline's `modelRegistry` (the run's
   * `REGISTERED_MODEL_NAME` param, which then joins the run's name).
   *
   * @default - the model repository, `org/name`
   */
  readonly registeredModelName?: string;
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
  /** One push task per target, in order (the streaming mode: per target after the first, which the stream fills). */
  public readonly pushes: PushTask[];
  /** The check task: resolves the commit and asks every target whether it serves the image. */
  public readonly checkPublished: CheckPublishedTask;
  /** The report task: reads back what every target serves and publishes the results. */
  public readonly reportPublished: ReportPublishedTask;
  /** The pipeline task of the check (first, after nothing). */
  public readonly checkTask: PipelineTask;
  /**
   * The pipeline task of the report (after the pushes, run whether they ran or were
   * skipped): its results are the pipeline's `<TARGET>_IMAGE_*` results.
   */
  public readonly reportTask: PipelineTask;
  /** How the model gets into the first registry. */
  public readonly publishMode: PublishMode;
  /** The streaming task, in the streaming mode. */
  public readonly streamPublish?: StreamPublishTask;
  /** The pipeline task of the stream (after the check), in the streaming mode. */
  public readonly streamTask?: PipelineTask;
  /** What decides the image's bytes, hashed into BUILD_CONFIG and the serving tag (the same in both modes). @internal */
  public readonly _buildConfigSpec: string;
  private readonly _downloadModel?: DownloadModelTask;
  private readonly _buildImage?: BuildImageTask;
  private readonly _downloadTask?: PipelineTask;
  private readonly _buildTask?: PipelineTask;
  /**
   * How long the modelcar tasks may take in a row: download (each of its attempts, with
   * downloadRetries), build, then the pushes (the longest one with parallelPushes). A run's
   * timeout must be at least this.
   */
  public readonly tasksTimeout: Duration;
  /** The pipeline tasks of the pushes, in order (the streaming mode: after the stream). */
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
  /** The push targets, in order. */
  public readonly pushTargets: PushTarget[];
  /** Whether a change of the pipeline's spec renames (reruns) its runs. */
  public readonly rebuildOnPipelineChange: boolean;
  /** Pipeline param: `true` rebuilds without asking the registries. */
  public readonly forceRebuild: Param;
  /** The pipeline's forceRebuild prop, which every run passes unless it sets its own. @internal */
  public readonly _forceRebuildDefault: boolean;
  /** The Argo CD annotations of the pipeline's objects and of its runs. */
  public readonly argoCdSync: ArgoCdSync;
  /** The registration task, when the pipeline has a `modelRegistry`. */
  public readonly registerModel?: RegisterModelTask;
  /** The pipeline task of the registration (after the report), when the pipeline has a `modelRegistry`. */
  public readonly registerTask?: PipelineTask;
  /** Pipeline param: the registered model's name (empty: the model repository), when the pipeline has a `modelRegistry`. */
  public readonly registeredModelName?: Param;
  /** What a run gives back of its volume when it ends. */
  public readonly volumeCleanup: VolumeCleanup;
  /** The clean-up task, unless `VolumeCleanup.never()`. */
  public readonly cleanUp?: CleanUpTask;
  /** The pipeline's `clean-up` finally task, unless `VolumeCleanup.never()` or the streaming mode. */
  public readonly cleanUpTask?: PipelineTask;

  /** The download task (the volume mode only: the streaming mode throws). */
  public get downloadModel(): DownloadModelTask {
    return this.volumeOnly(this._downloadModel, 'downloadModel');
  }

  /** The build task (the volume mode only: the streaming mode throws). */
  public get buildImage(): BuildImageTask {
    return this.volumeOnly(this._buildImage, 'buildImage');
  }

  /** The pipeline task of the download (the volume mode only: the streaming mode throws). */
  public get downloadTask(): PipelineTask {
    return this.volumeOnly(this._downloadTask, 'downloadTask');
  }

  /** The pipeline task of the build (the volume mode only: the streaming mode throws). */
  public get buildTask(): PipelineTask {
    return this.volumeOnly(this._buildTask, 'buildTask');
  }

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
    this.pushTargets = [...props.pushTargets];
    this.rebuildOnPipelineChange = props.rebuildOnPipelineChange ?? false;

    const downloadTimeout = props.downloadTimeout ?? Duration.hours(1);
    const downloadRetries = props.downloadRetries ?? 0;
    if (!Number.isInteger(downloadRetries) || downloadRetries < 0 || downloadRetries > 10) {
      throw new Error(`modelcar pipeline ${this.node.path}: downloadRetries must be a whole number from 0 to 10 (got ${downloadRetries})`);
    }
    const builder = props.builder ?? (props.pythonImage ? ModelcarBuilder.ociLayout({ image: props.pythonImage }) : undefined);
    this.publishMode = props.publishMode ?? PublishMode.volume();
    const streams = this.publishMode.streams;
    if (streams) {
      const volumeProps = (['volumeCleanup', 'artifactFormat', 'parallelPushes', 'downloadTimeout', 'downloadRetries', 'downloadConnections', 'downloadChunkSize', 'buildTimeout'] as const)
        .filter((k) => props[k] !== undefined);
      if (volumeProps.length) {
        throw new Error(`modelcar pipeline ${this.node.path}: ${volumeProps.join(', ')} configure the volume mode, and publishMode is PublishMode.streaming() `
          + '(no volume, no download or build task): drop them, or set the streaming options in PublishMode.streaming({...})');
      }
      if (builder && builder.kind !== ModelcarBuilderKind.OCI_LAYOUT) {
        throw new Error(`modelcar pipeline ${this.node.path}: the streaming mode sends the OCI layout builder's image; builder ${builder.kind} builds on a volume: `
          + 'use ModelcarBuilder.ociLayout() or PublishMode.volume()');
      }
    }
    this._buildConfigSpec = buildConfigSpec(builder ?? ModelcarBuilder.ociLayout(), props.baseImage ?? ModelcarImages.BASE, format);
    if (!streams) {
      this._downloadModel = new DownloadModelTask(this, 'DownloadModel', {
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
      this._buildImage = new BuildImageTask(this, 'BuildImage', {
        name: `${name}-build-image`,
        baseImage: props.baseImage,
        baseImageTrust: props.baseImageTrust,
        baseImageCredentials: props.baseImageCredentials,
        artifactFormat: format,
        builder,
        toolsImage: props.toolsImage,
        pythonImage: props.pythonImage,
      });
    } else {
      this.streamPublish = new StreamPublishTask(this, 'StreamPublish', {
        name: `${name}-stream-publish`,
        target: props.pushTargets[0],
        mode: this.publishMode,
        builder,
        baseImage: props.baseImage,
        baseImageTrust: props.baseImageTrust,
        baseImageCredentials: props.baseImageCredentials,
        tokenSecretName: props.huggingFaceTokenSecret,
        hubEndpoint: props.huggingFaceEndpoint,
        hubTrust: props.huggingFaceTrust,
        pythonImage: props.pythonImage,
        toolsImage: props.toolsImage,
      });
    }
    // The streaming mode's first target gets the image from the stream; each next one copies it from the first.
    this.pushes = props.pushTargets.slice(streams ? 1 : 0).map((target) => new PushTask(this, `Push-${target.name}`, {
      name: `${name}-push-${target.name}`,
      target,
      artifactFormat: format,
      toolsImage: props.toolsImage,
      source: streams ? props.pushTargets[0] : undefined,
    }));
    this.checkPublished = new CheckPublishedTask(this, 'CheckPublished', {
      name: `${name}-check-published`,
      targets: props.pushTargets,
      buildConfigSpec: this._buildConfigSpec,
      pythonImage: props.pythonImage,
      toolsImage: props.toolsImage,
      tokenSecretName: props.huggingFaceTokenSecret,
      hubEndpoint: props.huggingFaceEndpoint,
      hubTrust: props.huggingFaceTrust,
    });
    this.reportPublished = new ReportPublishedTask(this, 'ReportPublished', {
      name: `${name}-report-published`, targets: props.pushTargets, toolsImage: props.toolsImage,
    });

    if (props.modelRegistry) {
      this.registerModel = new RegisterModelTask(this, 'RegisterModel', {
        name: `${name}-register-model`, registry: props.modelRegistry, targets: props.pushTargets, pythonImage: props.pythonImage,
      });
    }

    this.pipeline = new Pipeline(this, 'Pipeline', {
      name,
      description: 'Downloads a model from Hugging Face, builds a KServe modelcar image, and pushes it to each registry in turn.',
    });
    this.modelRepo = this.pipeline.addParam('MODEL_REPO', { description: 'Hugging Face model repository, org/name' });
    this.modelRevision = this.pipeline.addParam('MODEL_REVISION', { description: 'Branch, tag or commit', default: ParamValue.string('main') });
    this.modelInclude = this.pipeline.addParam('MODEL_INCLUDE', { description: 'Space-separated glob patterns to download', default: ParamValue.string('') });
    this.modelExclude = this.pipeline.addParam('MODEL_EXCLUDE', { description: 'Space-separated glob patterns to skip', default: ParamValue.string('') });
    this.imageTags = this.pipeline.addParam('IMAGE_TAGS', { description: 'Space-separated tags pushed to every target' });
    this._forceRebuildDefault = props.forceRebuild ?? false;
    this.forceRebuild = this.pipeline.addParam('FORCE_REBUILD', {
      description: 'true: download, build and push even when every target already serves this image',
      default: ParamValue.string(String(props.forceRebuild ?? false)),
    });
    this.workspace = this.pipeline.addWorkspace('shared', {
      description: streams ? 'Scratch: an emptyDir per task in the streaming mode (only the debug preambles list it)' : 'The run\'s volume: model, artifact',
    });

    const buildTimeout = props.buildTimeout ?? Duration.hours(1);
    // Every task works in modelcar-runs/<PipelineRun uid>/ on the shared volume.
    const runId = ParamValue.string('$(context.pipelineRun.uid)');
    // 1. Ask before working: the commit, the build configuration, and what every target serves.
    this.checkTask = this.pipeline.addTask('check-published', {
      task: this.checkPublished.task,
      params: {
        MODEL_REPO: this.modelRepo.toParamValue(),
        MODEL_REVISION: this.modelRevision.toParamValue(),
        MODEL_INCLUDE: this.modelInclude.toParamValue(),
        MODEL_EXCLUDE: this.modelExclude.toParamValue(),
        IMAGE_TAGS: this.imageTags.toParamValue(),
        FORCE_REBUILD: this.forceRebuild.toParamValue(),
        RUN_ID: runId,
      },
      workspaces: { source: this.workspace },
      timeout: CHECK_TIMEOUT,
    });
    const commit = ParamValue.string(this.checkTask.result('MODEL_RESOLVED_REVISION'));
    const buildConfig = ParamValue.string(this.checkTask.result('BUILD_CONFIG'));
    // The serving tag (model commit, build configuration) is pushed to every target after the run's tags, never moved,
    // and read back by the report with them. Derived in the pipeline, not passed by the run: no run's params, and so
    // no run's name, change.
    const pushedTags = ParamValue.string(`${this.imageTags.reference} ${this.checkTask.result('SERVING_TAG')}`);
    // 2. Skip what is done. Each guarded task names the condition itself (a reader of one task
    // sees why it did not run), although Tekton would also skip a consumer of a skipped task's
    // results. Whatever waits only by runAfter on a task skipped by its `when` still runs.
    const whenRebuild = [WhenExpression.isIn(this.checkTask.result('REBUILD'), ['true'])];
    // The task whose IMAGE_DIGEST the pushes copy, and after which they run.
    let built: PipelineTask;
    if (!streams) {
      this._downloadTask = this.pipeline.addTask('download-model', {
        task: this.downloadModel.task,
        params: {
          MODEL_REPO: this.modelRepo.toParamValue(),
          // The commit the check resolved, not the branch again: the download gets exactly what
          // was checked, even if the branch moves meanwhile.
          MODEL_REVISION: commit,
          MODEL_INCLUDE: this.modelInclude.toParamValue(),
          MODEL_EXCLUDE: this.modelExclude.toParamValue(),
          RUN_ID: runId,
        },
        workspaces: { source: this.workspace },
        when: whenRebuild,
        timeout: downloadTimeout,
        retries: downloadRetries || undefined,
      });
      built = this._buildTask = this.pipeline.addTask('build-image', {
        task: this.buildImage.task,
        params: {
          MODEL_REPO: this.modelRepo.toParamValue(),
          MODEL_REVISION: ParamValue.string(this.downloadTask.result('MODEL_RESOLVED_REVISION')),
          BUILD_CONFIG: buildConfig,
          RUN_ID: runId,
        },
        workspaces: { source: this.workspace },
        runAfter: [this.downloadTask],
        when: whenRebuild,
        timeout: buildTimeout,
      });
    } else {
      // The stream publishes to the first target (tags and serving tag included): it is that target's push.
      built = this.streamTask = this.pipeline.addTask(`stream-${props.pushTargets[0].name}`, {
        task: this.streamPublish!.task,
        params: {
          MODEL_REPO: this.modelRepo.toParamValue(),
          MODEL_REVISION: commit,
          MODEL_INCLUDE: this.modelInclude.toParamValue(),
          MODEL_EXCLUDE: this.modelExclude.toParamValue(),
          BUILD_CONFIG: buildConfig,
          IMAGE_TAGS: this.imageTags.toParamValue(),
          SERVING_TAG: ParamValue.string(this.checkTask.result('SERVING_TAG')),
          RUN_ID: runId,
        },
        workspaces: { source: this.workspace },
        when: whenRebuild,
        timeout: this.publishMode.timeout,
        retries: this.publishMode.retries || undefined,
      });
    }

    this.pushTasks = [];
    let previous = built;
    for (const push of this.pushes) {
      const t = this.pipeline.addTask(`push-${push.target.name}`, {
        task: push.task,
        params: {
          IMAGE_DIGEST: ParamValue.string(built.result('IMAGE_DIGEST')),
          IMAGE_TAGS: this.imageTags.toParamValue(),
          SERVING_TAG: ParamValue.string(this.checkTask.result('SERVING_TAG')),
          RUN_ID: runId,
        },
        workspaces: { source: this.workspace },
        runAfter: [props.parallelPushes ? built : previous],
        when: whenRebuild,
        timeout: push.target.timeout,
      });
      this.pushTasks.push(t);
      previous = t;
    }
    // 3. The results, from a task that runs whether the pushes ran or were skipped: a pipeline
    // result that refers to a skipped task's result is not emitted (Tekton's
    // ApplyTaskResultsToPipelineResults), so they cannot come from the pushes.
    this.reportTask = this.pipeline.addTask('report-published', {
      task: this.reportPublished.task,
      params: {
        MODEL_REPO: this.modelRepo.toParamValue(),
        MODEL_REVISION: commit,
        BUILD_CONFIG: buildConfig,
        IMAGE_TAGS: pushedTags,
        RUN_ID: runId,
      },
      workspaces: { source: this.workspace },
      runAfter: this.parallelPushes ? this.pushTasks : [previous],
      timeout: CHECK_TIMEOUT,
    });
    for (const target of this.pushTargets) {
      const prefix = resultPrefix(target);
      for (const [kind, description] of IMAGE_RESULTS) {
        this.pipeline.addResult(`${prefix}_${kind}`, { value: this.imageResult(target.name, kind), description: `${description} at ${target.repository}` });
      }
    }
    // 4. Registration, after the report: it runs whether the pushes ran or were skipped, and a
    // failure leaves the images published (the next run registers them).
    if (this.registerModel) {
      this.registeredModelName = this.pipeline.addParam('REGISTERED_MODEL_NAME', {
        description: 'The registered model\'s name in the model registry (empty: MODEL_REPO)', default: ParamValue.string(''),
      });
      this.registerTask = this.pipeline.addTask('register-model', {
        task: this.registerModel.task,
        params: {
          MODEL_REPO: this.modelRepo.toParamValue(),
          MODEL_REVISION: commit,
          BUILD_CONFIG: buildConfig,
          IMAGE_DIGEST: ParamValue.string(this.imageResult(this.pushTargets[0].name, ImageResult.DIGEST)),
          REGISTERED_MODEL_NAME: this.registeredModelName.toParamValue(),
          PIPELINE_RUN: ParamValue.string('$(context.pipelineRun.name)'),
          RUN_ID: runId,
        },
        workspaces: { source: this.workspace },
        runAfter: [this.reportTask],
        timeout: props.modelRegistry!.timeout,
      });
    }
    // 5. Give back the volume: a finally task runs once every task has ended or been skipped,
    // whether the run succeeded or failed (or, with keepFailed, only when it succeeded).
    this.volumeCleanup = props.volumeCleanup ?? (streams ? VolumeCleanup.never() : VolumeCleanup.always());
    if (this.volumeCleanup.removesRunDirectory) {
      this.cleanUp = new CleanUpTask(this, 'CleanUp', { name: `${name}-clean-up`, toolsImage: props.toolsImage });
      this.cleanUpTask = this.pipeline.addFinally('clean-up', {
        task: this.cleanUp.task,
        params: { RUN_ID: runId, RUN_STATUS: ParamValue.string(this.pipeline.tasksStatus) },
        workspaces: { source: this.workspace },
        // Succeeded: every task succeeded; Completed: every task succeeded or was skipped.
        when: this.volumeCleanup.afterFailure ? undefined
          : [WhenExpression.isIn(this.pipeline.tasksStatus, ['Succeeded', 'Completed'])],
        timeout: CHECK_TIMEOUT,
      });
    }
    const pushSeconds = this.pushes.map((push) => push.target.timeout.toSeconds());
    // The check, the report, the clean-up and the registration, every attempt of the download, the build, the pushes.
    const registerSeconds = props.modelRegistry?.timeout.toSeconds() ?? 0;
    const cleanUpSeconds = this.cleanUpTask ? CHECK_TIMEOUT.toSeconds() : 0;
    const publishSeconds = streams
      ? this.publishMode.timeout.toSeconds() * (1 + this.publishMode.retries)
      : downloadTimeout.toSeconds() * (1 + downloadRetries) + buildTimeout.toSeconds();
    this.tasksTimeout = Duration.seconds(2 * CHECK_TIMEOUT.toSeconds() + cleanUpSeconds + registerSeconds + publishSeconds
      + (pushSeconds.length === 0 ? 0 : this.parallelPushes ? Math.max(...pushSeconds) : pushSeconds.reduce((a, b) => a + b, 0)));
    this.pipeline.addResult('MODEL_RESOLVED_REVISION', { value: this.checkTask.result('MODEL_RESOLVED_REVISION'), description: 'The model commit packaged' });
    this.pipeline.addResult('MODEL_SIZE', { value: this.checkTask.result('MODEL_SIZE'), description: 'The model size in bytes (the selected files, as the hub lists them)' });
    this.pipeline.addResult('SERVING_TAG', {
      value: this.checkTask.result('SERVING_TAG'),
      description: 'The tag of the model commit and build configuration, pushed to every target (ModelcarPipelineRun.servingReference())',
    });
    this.pipeline.addResult('REBUILD', { value: this.checkTask.result('REBUILD'), description: 'true: this run downloaded, built and pushed; false: every target already served the image' });

    // Last: the Tasks and the Pipeline exist. Each run applies it to itself.
    this.argoCdSync = props.argoCdSync ?? ArgoCdSync.annotations();
    this.argoCdSync.applyTo(this);
  }

  private volumeOnly<T>(value: T | undefined, what: string): T {
    if (value === undefined) {
      throw new Error(`modelcar pipeline ${this.node.path}: ${what} exists in the volume mode only, and publishMode is PublishMode.streaming(): `
        + 'use streamPublish and streamTask, or imageResult() for what the run published');
    }
    return value;
  }

  /**
   * Adds a task of your own after the report (e.g. registering the model in a model
   * registry). Use `imageResult('quay', ImageResult.REF)` in its params, not a push task's
   * result: the pushes are skipped when every target already serves the image, and Tekton
   * skips a task that refers to a skipped task's result.
   */
  public addTask(name: string, options: PipelineTaskOptions): PipelineTask {
    // A user task fed by a guarded task's result would be skipped, silently, on every run that
    // finds its image published: refuse it here, with the result to use instead.
    const params = JSON.stringify(options.params ?? {});
    const guardedTasks = [this._downloadTask, this._buildTask, this.streamTask, ...this.pushTasks];
    for (const guarded of guardedTasks.filter((t): t is PipelineTask => t !== undefined)) {
      if (params.includes(`$(tasks.${guarded.name}.results.`)) {
        throw new Error(`modelcar pipeline ${this.node.path}: task "${name}" takes a result of "${guarded.name}", which is skipped when every `
          + 'target already serves the image (and Tekton then skips this task too): use imageResult(target, ImageResult.REF) '
          + '(or ImageResult.URL, ImageResult.DIGEST), which the report task sets either way');
      }
    }
    const runAfter = options.runAfter ?? [this.reportTask];
    return this.pipeline.addTask(name, { ...options, runAfter });
  }

  /**
   * The reference to one target's published image, set whether the run built it or found it
   * published: `ImageResult.URL` (repository:first tag), `ImageResult.DIGEST` or
   * `ImageResult.REF` (repository@digest), e.g.
   * `ParamValue.string(modelcar.imageResult('quay', ImageResult.REF))`.
   */
  public imageResult(target: string, result: ImageResult): string {
    // The type says it; JavaScript callers can still pass any string.
    if (!Object.values(ImageResult).includes(result)) {
      throw new Error(`modelcar pipeline ${this.node.path}: result "${result}" is not an ImageResult: use ImageResult.URL, ImageResult.DIGEST or ImageResult.REF`);
    }
    const push = this.pushTargets.find((t) => t.name === target);
    if (!push) {
      throw new Error(`modelcar pipeline ${this.node.path} has no push target named "${target}": use one of ${this.pushTargets.map((t) => `"${t.name}"`).join(', ')}`);
    }
    const digest = this.reportTask.result(this.reportPublished.imageDigest.name);
    switch (result) {
      case ImageResult.URL: return `${push.repository}:${this.reportTask.result(this.reportPublished.imageTag.name)}`;
      case ImageResult.DIGEST: return digest;
      default: return `${push.repository}@${digest}`;
    }
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
 * A run of a `ModelcarPipeline` for one model: its own volume, one identity for every
 * task (the namespace's, unless fsGroup or runAsUser is given), and a timeout.
 */
export class ModelcarPipelineRun extends Construct {
  /** The PipelineRun. */
  public readonly pipelineRun: PipelineRun;
  /** The pipeline this run runs. */
  public readonly pipeline: ModelcarPipeline;
  private readonly model: HuggingFaceModel;

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
    const volumeOptions = (['storage', 'storageClassName', 'existingClaim'] as const).filter((k) => props[k] !== undefined);
    if (p.publishMode.streams && volumeOptions.length) {
      throw new Error(`${where}: ${volumeOptions.join(', ')} configure the run's volume, and the pipeline streams (PublishMode.streaming(): no volume): drop them`);
    }
    this.pipeline = p;
    this.model = { ...model, include: [...(model.include ?? [])], exclude: [...(model.exclude ?? [])] };
    const timeout = props.timeout ?? p.tasksTimeout;
    if (timeout.toSeconds() < p.tasksTimeout.toSeconds()) {
      throw new Error(`${where}: timeout ${timeout.toHumanString()} is shorter than the pipeline's tasks in a row `
        + `(${p.tasksTimeout.toHumanString()}: check, download, build, pushes, report${p.registerTask ? ', registration' : ''}${p.cleanUpTask ? ', clean-up' : ''}), so Tekton could stop a task before its own timeout: `
        + 'raise the run\'s timeout or lower downloadTimeout, buildTimeout or the push targets\' timeout');
    }
    if (props.registeredModelName !== undefined) {
      if (!p.registeredModelName) {
        throw new Error(`${where}: registeredModelName "${props.registeredModelName}" needs a pipeline with a model registry: `
          + 'pass modelRegistry: ModelRegistry.fromService(...) to the ModelcarPipeline, or drop registeredModelName');
      }
      if (!/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(props.registeredModelName)) {
        throw new Error(`${where}: registeredModelName "${props.registeredModelName}" is empty or not printable ASCII (what the registry's search takes)`);
      }
    }
    const targets = p.pushTargets.map((t) => `${t.name}=${t.repository}`);
    // Passed only when it forces, or overrides the pipeline's force: an unforced run keeps its name.
    const force = props.forceRebuild ?? (p._forceRebuildDefault ? true : undefined);
    this.pipelineRun = new PipelineRun(this, 'Resource', {
      pipeline: p.pipeline,
      // Where the image goes is in the pipeline, not in the run's params: it joins the hash as an input.
      nameFromInputs: {
        prefix: props.name ?? readableNamePart(id),
        // Only what decides the image and its tags: a param a later version adds renames no run.
        // FORCE_REBUILD only where a run passes it: a forced run is a new run.
        // REGISTERED_MODEL_NAME likewise: a run's spec cannot change once started, so a new name is a new run.
        params: ['MODEL_REPO', 'MODEL_REVISION', 'MODEL_INCLUDE', 'MODEL_EXCLUDE', 'IMAGE_TAGS', ...(force !== undefined ? ['FORCE_REBUILD'] : []),
          ...(props.registeredModelName !== undefined ? ['REGISTERED_MODEL_NAME'] : [])],
        inputs: { pushTargets: targets.join(' ') },
        includePipelineSpec: p.rebuildOnPipelineChange,
        nonce: props.rebuildNonce,
      },
      summary: {
        model: model.repo,
        revision: model.revision ?? 'main',
        files: [...(model.include ?? []).map((x) => `+${x}`), ...(model.exclude ?? []).map((x) => `-${x}`)].join(' ') || 'all',
        tags: props.tags.join(' '),
        targets: p.pushTargets.map((t) => t.repository).join(p.parallelPushes ? ', ' : ' then '),
        ...(props.rebuildNonce !== undefined ? { 'rebuild nonce': props.rebuildNonce } : {}),
      },
      params: {
        MODEL_REPO: ParamValue.string(model.repo),
        MODEL_REVISION: ParamValue.string(model.revision ?? 'main'),
        MODEL_INCLUDE: ParamValue.string((model.include ?? []).join(' ')),
        MODEL_EXCLUDE: ParamValue.string((model.exclude ?? []).join(' ')),
        IMAGE_TAGS: ParamValue.string(props.tags.join(' ')),
        ...(force !== undefined ? { FORCE_REBUILD: ParamValue.string(String(force)) } : {}),
        ...(props.registeredModelName !== undefined ? { REGISTERED_MODEL_NAME: ParamValue.string(props.registeredModelName) } : {}),
      },
      workspaces: {
        // The streaming mode has no volume: each task's preamble lists an emptyDir of its own.
        shared: p.publishMode.streams ? WorkspaceBinding.emptyDir()
          : props.existingClaim
            ? WorkspaceBinding.persistentVolumeClaim(props.existingClaim)
            : WorkspaceBinding.volumeClaimTemplate({ storage, storageClassName: props.storageClassName }),
      },
      taskRunTemplate: {
        serviceAccountName: props.serviceAccountName ?? 'pipeline',
        podTemplate: {
          // Unset fields stay unset: the namespace's SCC fills them in at pod creation.
          securityContext: {
            runAsUser: props.runAsUser,
            fsGroup: props.fsGroup,
            fsGroupChangePolicy: props.fsGroupChangePolicy ?? kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH,
          },
        },
      },
      timeouts: { pipeline: timeout },
    });
    // Tekton 1.11+ deletes a volumeClaimTemplate's PVC when the run ends, whatever its status:
    // only where the clean-up also removes a failed run's bytes, and never a claim of the user's.
    if (p.volumeCleanup.afterFailure && !props.existingClaim) {
      this.pipelineRun.apiObject.metadata.addAnnotation(AUTO_CLEANUP_PVC, 'true');
    }
    p.argoCdSync.applyTo(this);
  }

  /**
   * The serving tag of this run's image: `<model commit>-<16 hex of the build configuration's digest>`.
   *
   * The pipeline pushes it to every target besides the run's tags (the check task derives it at run time, its
   * `SERVING_TAG` result). The commit and the build configuration decide the image's bytes, so the tag only ever
   * names the image built for them. Known at synth only when the run's revision is a commit.
   */
  public get servingTag(): string {
    const revision = this.model.revision ?? 'main';
    if (!/^[0-9a-f]{40}$/.test(revision)) {
      const why = /^[0-9a-fA-F]{40}$/.test(revision)
        ? 'a commit sha in upper case, which the hub resolves as a branch or tag name'
        : 'a branch or tag, which moves: the image it names tomorrow is not today\'s';
      throw new Error(`modelcar run ${this.node.path}: no serving reference for revision "${revision}": it is ${why}; `
        + 'pin the run to the commit to serve, model: { revision: \'<40 lower-case hex of the commit>\' } (the hub\'s commit sha)');
    }
    const config = buildConfigDigest(this.pipeline._buildConfigSpec, this.model.include!.join(' '), this.model.exclude!.join(' '));
    return servingTag(revision, config);
  }

  /**
   * The `oci://` reference a KServe `storageUri` takes, by the serving tag (`servingTag`), at one push target.
   *
   * It can only ever name the image this pipeline built for this run's commit and build configuration, and is known
   * at synth, before the run: put it in git beside the run (`ModelcarInferenceService`). Throws when the run's
   * revision is not a commit sha (a branch such as `main` moves).
   *
   * @param target the push target's name (`PushTarget.name`), e.g. 'quay'
   * @default - the pipeline's first push target (the internal registry, which in-cluster serving pulls from)
   */
  public servingReference(target?: string): string {
    const targets = this.pipeline.pushTargets;
    const t = target === undefined ? targets[0] : targets.find((x) => x.name === target);
    if (!t) {
      throw new Error(`modelcar run ${this.node.path}: the pipeline has no push target named "${target}": use one of ${targets.map((x) => `"${x.name}"`).join(', ')}`);
    }
    return `oci://${t.repository}:${this.servingTag}`;
  }
}

/**
 * The PipelineRun annotation with which Tekton (1.11 and later, coschedule mode `workspaces`,
 * the default) deletes the PVCs made from the run's volumeClaimTemplates when the run ends
 * (tektoncd/pipeline `pkg/reconciler/pipelinerun/affinity_assistant.go`). Earlier versions
 * ignore it; the per-pipelinerun coschedule modes delete those PVCs anyway.
 */
const AUTO_CLEANUP_PVC = 'tekton.dev/auto-cleanup-pvc';

/** The results of each target's published image, made by the pipeline from the report task's two. */
const IMAGE_RESULTS: Array<[ImageResult, string]> = [
  [ImageResult.URL, 'The image by its first tag (repository:tag)'],
  [ImageResult.DIGEST, 'The digest served'],
  [ImageResult.REF, 'The image by digest (repository@digest)'],
];
