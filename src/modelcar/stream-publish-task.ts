import { Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ModelcarBuilder, ModelcarBuilderKind } from './builder';
import { addModelParams, addPreamble, addRegistryAccess, addRunId, hubEnv, requireVerifiedHubTrust, SOURCE_WORKSPACE } from './common';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';
import { PublishMode } from './publish-mode';
import { PushTarget, RegistryCredentials, RegistryTrust } from './push-target';
import { loadScript } from './scripts';
import { Param } from '../tekton/params';
import { Result } from '../tekton/results';
import { Task } from '../tekton/task';
import { Workspace } from '../tekton/workspaces';

/**
 * Properties of a `StreamPublishTask`.
 */
export interface StreamPublishTaskProps {
  /** The registry the model is streamed into (the pipeline's first push target). */
  readonly target: PushTarget;

  /**
   * The streaming options.
   *
   * @default PublishMode.streaming()
   */
  readonly mode?: PublishMode;

  /**
   * The Task's name.
   *
   * @default 'modelcar-stream-publish'
   */
  readonly name?: string;

  /**
   * The image layout the stream reproduces: the OCI layout builder's platforms, large-file threshold and layer cap.
   *
   * @default ModelcarBuilder.ociLayout()
   */
  readonly builder?: ModelcarBuilder;

  /**
   * The image the model is added to, pinned by digest.
   *
   * @default ModelcarImages.BASE
   */
  readonly baseImage?: ImageReference;

  /**
   * The CAs trusted for the base image's registry.
   *
   * @default RegistryTrust.systemDefault()
   */
  readonly baseImageTrust?: RegistryTrust;

  /**
   * Credentials for the base image's registry.
   *
   * @default RegistryCredentials.fromServiceAccount()
   */
  readonly baseImageCredentials?: RegistryCredentials;

  /**
   * The Secret with the Hugging Face token (key `token`); optional at run time.
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
   * The CAs trusted for the hub besides the image's system CAs.
   *
   * @default RegistryTrust.systemDefault()
   */
  readonly hubTrust?: RegistryTrust;

  /**
   * The image of the step (Python 3 standard library only; the builder's image by default).
   *
   * @default - the builder's image
   */
  readonly pythonImage?: ImageReference;

  /**
   * The image of the debug preamble.
   *
   * @default ModelcarImages.SKOPEO
   */
  readonly toolsImage?: ImageReference;
}

/**
 * Publishes a model commit from the hub to one registry with no volume: each layer of the OCI layout builder's plan
 * is read from the hub and sent to the registry in the same pass, every file checked against the hub's listing
 * before its layer is committed, then the configs, manifests, index and tags (`scripts/stream-publish.py`). The
 * image is byte for byte the one the volume mode builds. Emits `IMAGE_URL`, `IMAGE_DIGEST` and `IMAGE_REF`, like a
 * `PushTask`.
 */
export class StreamPublishTask extends Construct {
  /** The Task. */
  public readonly task: Task;
  /** The target. */
  public readonly target: PushTarget;
  /** The model repository. */
  public readonly modelRepo: Param;
  /** The commit to publish (the check task's). */
  public readonly modelRevision: Param;
  /** Include patterns. */
  public readonly include: Param;
  /** Exclude patterns. */
  public readonly exclude: Param;
  /** The build configuration's digest (image label). */
  public readonly buildConfig: Param;
  /** Space-separated tags. */
  public readonly tags: Param;
  /** The serving tag, never moved (empty: none). */
  public readonly servingTag: Param;
  /** `repository:first-tag`. */
  public readonly imageUrl: Result;
  /** The digest the registry serves (the image index's, for several platforms). */
  public readonly imageDigestResult: Result;
  /** `repository@digest`. */
  public readonly imageRef: Result;
  /** A scratch workspace: the pipeline binds an emptyDir; only the debug preamble looks at it. */
  public readonly workspace: Workspace;
  /** The run id param. */
  public readonly runId: Param;
  /** The streaming options. */
  public readonly mode: PublishMode;

  constructor(scope: Construct, id: string, props: StreamPublishTaskProps) {
    super(scope, id);
    const where = `stream publish task ${this.node.path}`;
    const mode = props.mode ?? PublishMode.streaming();
    if (!mode.streams) throw new Error(`${where}: mode is PublishMode.volume(); pass PublishMode.streaming(...)`);
    const builder = props.builder ?? ModelcarBuilder.ociLayout();
    if (builder.kind !== ModelcarBuilderKind.OCI_LAYOUT) {
      throw new Error(`${where}: the streaming mode reproduces the OCI layout builder's image; builder ${builder.kind} writes a volume: `
        + 'use ModelcarBuilder.ociLayout() (the default) or PublishMode.volume()');
    }
    const endpoint = props.hubEndpoint ?? 'https://huggingface.co';
    if (!/^https:\/\/[^\s/]+/.test(endpoint)) {
      throw new Error(`${where}: hubEndpoint "${endpoint}" is not https: the model and token would travel in clear text`);
    }
    const hubTrust = props.hubTrust ?? RegistryTrust.systemDefault();
    requireVerifiedHubTrust(where, hubTrust);
    const base = props.baseImage ?? ModelcarImages.BASE;
    if (!base.digest) throw new Error(`${where}: baseImage ${base} is not pinned by digest`);
    const target = props.target;
    this.target = target;
    this.mode = mode;

    this.task = new Task(this, 'Task', {
      name: props.name ?? 'modelcar-stream-publish',
      description: `Streams a model commit from Hugging Face into ${target.repository} as the modelcar image, with no volume.`,
    });
    const model = addModelParams(this.task);
    this.modelRepo = model.repo;
    this.modelRevision = model.revision;
    this.include = model.include;
    this.exclude = model.exclude;
    this.buildConfig = this.task.addParam('BUILD_CONFIG', { description: 'Digest of the build configuration (image label io.kserve.modelcar.build-config)' });
    this.tags = this.task.addParam('IMAGE_TAGS', { description: 'Space-separated tags to push' });
    this.servingTag = this.task.addParam('SERVING_TAG', { description: 'A tag pushed after IMAGE_TAGS that is never moved (empty: none)' });
    this.imageUrl = this.task.addResult('IMAGE_URL', { description: 'The image pushed, repository:tag' });
    this.imageDigestResult = this.task.addResult('IMAGE_DIGEST', { description: 'The digest the registry serves' });
    this.imageRef = this.task.addResult('IMAGE_REF', { description: 'The image by digest, repository@sha256:...' });
    this.workspace = this.task.addWorkspace(SOURCE_WORKSPACE, { description: 'Scratch (an emptyDir in the streaming mode): only the preamble lists it', readOnly: true });
    this.runId = addRunId(this.task);

    const hub = addRegistryAccess(this.task, { trust: hubTrust, prefix: 'hub', mountPrefix: '/etc/modelcar/hub-', certDirEnv: 'HF_CA_DIR' });
    const registry = addRegistryAccess(this.task, {
      trust: target.trust, credentials: target.credentials, prefix: 'registry', mountPrefix: '/etc/modelcar/', certDirEnv: 'CERT_DIR', authFileEnv: 'AUTHFILE',
    });
    const baseTrust = props.baseImageTrust ?? RegistryTrust.systemDefault();
    const baseAccess = addRegistryAccess(this.task, {
      trust: baseTrust,
      credentials: props.baseImageCredentials ?? RegistryCredentials.fromServiceAccount(),
      prefix: 'base',
      mountPrefix: '/etc/modelcar/base-',
      certDirEnv: 'BASE_CERT_DIR',
      authFileEnv: 'BASE_AUTHFILE',
      authModeEnv: 'BASE_AUTH_MODE',
    });
    // The step stops on its own, with its message, before Tekton stops it.
    const deadline = Duration.seconds(Math.max(60, mode.timeout.toSeconds() - Math.max(60, Math.round(mode.timeout.toSeconds() * 0.05))));
    addPreamble(this.task, this.workspace, this.runId, props.toolsImage ?? ModelcarImages.SKOPEO, 'stream-publish');
    const memory = Size.mebibytes(Math.ceil(mode.memoryLimitBytes / 1024 / 1024));
    this.task.addStep({
      name: 'stream',
      image: (props.pythonImage ?? builder.image).toString(),
      env: {
        ...hubEnv(this, model, endpoint, props.tokenSecretName ?? 'huggingface-token'),
        HF_DEADLINE_SECONDS: kplus.EnvValue.fromValue(String(deadline.toSeconds())),
        IMAGE: kplus.EnvValue.fromValue(target.repository),
        IMAGE_TAGS: this.tags.envValue(),
        SERVING_TAG: this.servingTag.envValue(),
        TLS_VERIFY: kplus.EnvValue.fromValue(String(target.trust.tlsVerify)),
        BASE_IMAGE: kplus.EnvValue.fromValue(base.toString()),
        BASE_TLS_VERIFY: kplus.EnvValue.fromValue(String(baseTrust.tlsVerify)),
        PLATFORMS: kplus.EnvValue.fromValue((builder.platforms ?? []).map((p) => p.toString()).join(' ')),
        LARGE_FILE_BYTES: kplus.EnvValue.fromValue(String(builder.largeFileBytes)),
        MAX_LAYERS: kplus.EnvValue.fromValue(String(builder.maxLayers)),
        MODELS_PATH: kplus.EnvValue.fromValue('/models'),
        BUILD_CONFIG: this.buildConfig.envValue(),
        STREAM_LAYERS: kplus.EnvValue.fromValue(String(mode.parallelLayers)),
        STREAM_RANGES: kplus.EnvValue.fromValue(String(mode.rangesPerLayer)),
        STREAM_CHUNK_BYTES: kplus.EnvValue.fromValue(String(mode.chunkBytes)),
        RESULT_IMAGE_URL: this.imageUrl.pathEnvValue(),
        RESULT_IMAGE_DIGEST: this.imageDigestResult.pathEnvValue(),
        RESULT_IMAGE_REF: this.imageRef.pathEnvValue(),
        HOME: kplus.EnvValue.fromValue('/tmp'),
        // Buffers of 128 KiB and more are mmapped, and so returned to the system when freed: glibc's default
        // threshold moves up after the first free of a large buffer, and freed chunks then stay in its heaps.
        MALLOC_MMAP_THRESHOLD_: kplus.EnvValue.fromValue('131072'),
        ...hub.env,
        ...registry.env,
        ...baseAccess.env,
      },
      volumeMounts: [...hub.mounts, ...registry.mounts, ...baseAccess.mounts],
      // The bound of what the step holds, stated to the scheduler and enforced by the kernel: a request as large as
      // the limit (the step never needs less once every layer is in flight).
      computeResources: { memory: { request: memory, limit: memory } },
      script: loadScript('stream-publish.py'),
    });
  }
}
