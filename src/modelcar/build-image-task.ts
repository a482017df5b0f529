import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ArtifactFormat } from './artifact-format';
import { ModelcarBuilder, ModelcarBuilderKind } from './builder';
import { addPreamble, addRegistryAccess, addRunId, artifactPath, runDir, SOURCE_WORKSPACE, sumsPath } from './common';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';
import { RegistryCredentials, RegistryTrust } from './push-target';
import { loadScript } from './scripts';
import { buildConfigSpec } from './serving-reference';
import { Param } from '../tekton/params';
import { Result } from '../tekton/results';
import { TaskVolume } from '../tekton/step';
import { Task } from '../tekton/task';
import { Workspace } from '../tekton/workspaces';

/** Where the build task's emptyDir for temporary files and buildah's store is mounted. */
const SCRATCH = '/var/lib/containers';
/**
 * $HOME of the skopeo and buildah steps, in that emptyDir: they keep a blob-info cache under
 * it, and the namespace's arbitrary uid has HOME=/ otherwise, which it cannot write.
 */
const SCRATCH_HOME = `${SCRATCH}/home`;

/**
 * Properties of a `BuildImageTask`.
 */
export interface BuildImageTaskProps {
  /**
   * The Task's name.
   *
   * @default 'modelcar-build-image'
   */
  readonly name?: string;

  /**
   * The image the model is added to. KServe needs a shell in it.
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
   * How the artifact is stored for the pushes.
   *
   * @default ArtifactFormat.OCI_LAYOUT
   */
  readonly artifactFormat?: ArtifactFormat;

  /**
   * How the image is built.
   *
   * @default ModelcarBuilder.ociLayout()
   */
  readonly builder?: ModelcarBuilder;

  /**
   * The image of the verify step (Python 3 standard library).
   *
   * @default the layout builder's image, or ModelcarImages.PYTHON with buildah
   */
  readonly pythonImage?: ImageReference;

  /**
   * The image of the preamble, base copy and validation steps (needs skopeo).
   *
   * @default ModelcarImages.SKOPEO
   */
  readonly toolsImage?: ImageReference;
}

/**
 * Builds the modelcar image (the base image plus the model under `/models`) into an
 * OCI artifact in this run's directory, validates it (skopeo, and every blob against its
 * digest), and publishes its digest as the `IMAGE_DIGEST` result: the manifest's, or the
 * image index's when the builder makes several platforms.
 *
 * The artifact is written under a temporary name, synced, then renamed, so no reader
 * ever sees a partial artifact under the final name.
 *
 * Steps with the default OCI layout builder: `debug`, `base` (skopeo copies the base
 * image's manifest of each platform into the layout), `layers` (adds the model, checking
 * SHA256SUMS as it reads, and writes a manifest per platform and their image index),
 * `verify` (every blob's size and sha256), `publish`. With the buildah builder: `debug`,
 * `build`, `verify`, `publish`.
 */
export class BuildImageTask extends Construct {
  /** The Task. */
  public readonly task: Task;
  /** The model repository (for the image's labels). */
  public readonly modelRepo: Param;
  /** The model commit (for the image's labels). */
  public readonly modelRevision: Param;
  /**
   * The digest of the build configuration (label `io.kserve.modelcar.build-config`); the
   * pipeline passes the check task's `BUILD_CONFIG` result.
   */
  public readonly buildConfig: Param;
  /**
   * What this task decides about the image it writes, as text: builder, its image and script,
   * base image, layer threshold and layer cap, artifact format. The check task hashes it with the run's
   * include/exclude patterns into the `BUILD_CONFIG` digest. Images are named by digest only,
   * so a mirror of the same image does not count as a change.
   */
  public readonly buildConfigSpec: string;
  /** The digest of the built image: its manifest's, or its image index's when the builder makes several platforms. */
  public readonly imageDigest: Result;
  /** The shared workspace. */
  public readonly workspace: Workspace;
  /** The run id param (the pipeline passes the PipelineRun's uid). */
  public readonly runId: Param;
  /** The artifact format. */
  public readonly artifactFormat: ArtifactFormat;
  /** The builder. */
  public readonly builder: ModelcarBuilder;

  constructor(scope: Construct, id: string, props: BuildImageTaskProps = {}) {
    super(scope, id);
    this.artifactFormat = props.artifactFormat ?? ArtifactFormat.OCI_LAYOUT;
    this.builder = props.builder ?? ModelcarBuilder.ociLayout();
    if (this.builder.kind === ModelcarBuilderKind.OCI_LAYOUT && this.artifactFormat !== ArtifactFormat.OCI_LAYOUT) {
      throw new Error(`build image task ${this.node.path}: the OCI layout builder writes an oci: layout directory; `
        + `artifactFormat ${this.artifactFormat} needs builder: ModelcarBuilder.buildah()`);
    }
    const tools = props.toolsImage ?? ModelcarImages.SKOPEO;
    const trust = props.baseImageTrust ?? RegistryTrust.systemDefault();
    const credentials = props.baseImageCredentials ?? RegistryCredentials.fromServiceAccount();

    this.task = new Task(this, 'Task', {
      name: props.name ?? 'modelcar-build-image',
      description: 'Builds the modelcar image into an OCI artifact in this run\'s directory and publishes its digest.',
    });
    this.modelRepo = this.task.addParam('MODEL_REPO', { description: 'Hugging Face model repository (image label)' });
    this.modelRevision = this.task.addParam('MODEL_REVISION', { description: 'Commit sha of the model (image label)' });
    this.buildConfig = this.task.addParam('BUILD_CONFIG', { description: 'Digest of the build configuration (image label io.kserve.modelcar.build-config)' });
    this.imageDigest = this.task.addResult('IMAGE_DIGEST', { description: 'Digest of the built image (its image index for several platforms)' });
    this.workspace = this.task.addWorkspace(SOURCE_WORKSPACE, { description: 'Shared volume with this run\'s model' });
    this.runId = addRunId(this.task);

    const run = runDir(this.workspace, this.runId);
    const final = artifactPath(this.workspace, this.runId, this.artifactFormat);
    const tmp = `${run}/.${this.artifactFormat === ArtifactFormat.OCI_ARCHIVE ? 'image.tar' : 'image'}.partial`;
    // skopeo's and buildah's temporary files go to an emptyDir, never to the shared volume.
    const scratch = this.task.addVolume(TaskVolume.emptyDir('scratch'));
    const scratchMounts = [{ volume: scratch, mountPath: SCRATCH }];
    const access = addRegistryAccess(this.task, {
      trust, credentials, prefix: 'base', mountPrefix: '/etc/modelcar/base-', certDirEnv: 'BASE_CERT_DIR', authFileEnv: 'BASE_AUTHFILE',
    });
    // The layout builder's platforms; buildah builds the node's.
    const platforms = (this.builder.platforms ?? []).map((p) => p.toString()).join(' ');
    const pull: Record<string, kplus.EnvValue> = {
      BASE_IMAGE: kplus.EnvValue.fromValue((props.baseImage ?? ModelcarImages.BASE).toString()),
      TLS_VERIFY: kplus.EnvValue.fromValue(String(trust.tlsVerify)),
      ...access.env,
    };
    const pullMounts = [...scratchMounts, ...access.mounts];
    const model = {
      MODEL_DIR: kplus.EnvValue.fromValue(`${run}/model`),
      SUMS_FILE: kplus.EnvValue.fromValue(sumsPath(this.workspace, this.runId)),
      MODEL_REPO: this.modelRepo.envValue(),
      MODEL_REVISION: this.modelRevision.envValue(),
      BUILD_CONFIG: this.buildConfig.envValue(),
    };
    const baseImage = props.baseImage ?? ModelcarImages.BASE;
    this.buildConfigSpec = buildConfigSpec(this.builder, baseImage, this.artifactFormat);

    addPreamble(this.task, this.workspace, this.runId, tools, 'build-image');
    if (this.builder.kind === ModelcarBuilderKind.OCI_LAYOUT) {
      this.task.addStep({
        name: 'base',
        image: tools.toString(),
        env: {
          ...pull,
          PLATFORMS: kplus.EnvValue.fromValue(platforms),
          ARTIFACT_TMP: kplus.EnvValue.fromValue(tmp),
          RETRIES: kplus.EnvValue.fromValue('3'),
          TMPDIR: kplus.EnvValue.fromValue(`${SCRATCH}/tmp`),
          HOME: kplus.EnvValue.fromValue(SCRATCH_HOME),
        },
        volumeMounts: pullMounts,
        script: loadScript('layout-base.sh'),
      });
      this.task.addStep({
        name: 'layers',
        image: this.builder.image.toString(),
        env: {
          ...model,
          LAYOUT: kplus.EnvValue.fromValue(tmp),
          BASE_REF: kplus.EnvValue.fromValue('base'),
          PLATFORMS: kplus.EnvValue.fromValue(platforms),
          IMAGE_REF: kplus.EnvValue.fromValue('modelcar'),
          LARGE_FILE_BYTES: kplus.EnvValue.fromValue(String(this.builder.largeFileBytes)),
          MAX_LAYERS: kplus.EnvValue.fromValue(String(this.builder.maxLayers)),
          MODELS_PATH: kplus.EnvValue.fromValue('/models'),
        },
        script: loadScript('layout-build.py'),
      });
    } else {
      // buildah's vfs store (a full copy of the rootfs and of the committed image) lives in the scratch emptyDir.
      this.task.addStep({
        name: 'build',
        image: this.builder.image.toString(),
        env: {
          ...pull,
          ...model,
          ARTIFACT_FORMAT: kplus.EnvValue.fromValue(this.artifactFormat),
          ARTIFACT_TMP: kplus.EnvValue.fromValue(tmp),
          CONTAINERS_STORAGE: kplus.EnvValue.fromValue(SCRATCH),
          TMPDIR: kplus.EnvValue.fromValue(`${SCRATCH}/tmp`),
          HOME: kplus.EnvValue.fromValue(SCRATCH_HOME),
        },
        volumeMounts: pullMounts,
        // buildah writes file capabilities when it unpacks layers: SETFCAP is all it needs.
        // No privileged container, no user override: the pod's identity applies.
        securityContext: { addCapabilities: [kplus.Capability.SETFCAP] },
        script: loadScript('build-buildah.sh'),
      });
    }
    this.task.addStep({
      name: 'verify',
      image: (props.pythonImage ?? (this.builder.kind === ModelcarBuilderKind.OCI_LAYOUT ? this.builder.image : ModelcarImages.PYTHON)).toString(),
      env: {
        ARTIFACT_FORMAT: kplus.EnvValue.fromValue(this.artifactFormat),
        ARTIFACT_TMP: kplus.EnvValue.fromValue(tmp),
        IMAGE_REF: kplus.EnvValue.fromValue('modelcar'),
      },
      script: loadScript('verify-artifact.py'),
    });
    this.task.addStep({
      name: 'publish',
      image: tools.toString(),
      env: {
        ARTIFACT_FORMAT: kplus.EnvValue.fromValue(this.artifactFormat),
        ARTIFACT_TMP: kplus.EnvValue.fromValue(tmp),
        ARTIFACT_PATH: kplus.EnvValue.fromValue(final),
        RESULT_IMAGE_DIGEST: this.imageDigest.pathEnvValue(),
        TMPDIR: kplus.EnvValue.fromValue(`${SCRATCH}/tmp`),
        HOME: kplus.EnvValue.fromValue(SCRATCH_HOME),
      },
      volumeMounts: scratchMounts,
      script: loadScript('publish-artifact.sh'),
    });
  }
}
