import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ArtifactFormat } from './artifact-format';
import { addPreamble, artifactPath, runDir, SOURCE_WORKSPACE } from './common';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';
import { RegistryCredentials, RegistryTrust } from './push-target';
import { loadScript } from './scripts';
import { Param } from '../tekton/params';
import { Result } from '../tekton/results';
import { TaskVolume } from '../tekton/step';
import { Task } from '../tekton/task';
import { Workspace } from '../tekton/workspaces';

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
   * The buildah image.
   *
   * @default ModelcarImages.BUILDAH
   */
  readonly buildahImage?: ImageReference;

  /**
   * The image of the preamble and validation steps (needs skopeo).
   *
   * @default ModelcarImages.SKOPEO
   */
  readonly toolsImage?: ImageReference;
}

/**
 * Builds the modelcar image (the base image plus the model under `/models`) into an
 * OCI artifact in this run's directory, validates it with skopeo, and publishes its
 * manifest digest as the `IMAGE_DIGEST` result.
 *
 * The artifact is written under a temporary name, synced, then renamed, so no reader
 * ever sees a partial artifact under the final name.
 */
export class BuildImageTask extends Construct {
  /** The Task. */
  public readonly task: Task;
  /** The model repository (for the image's labels). */
  public readonly modelRepo: Param;
  /** The model commit (for the image's labels). */
  public readonly modelRevision: Param;
  /** The manifest digest of the built image. */
  public readonly imageDigest: Result;
  /** The shared workspace. */
  public readonly workspace: Workspace;
  /** The artifact format. */
  public readonly artifactFormat: ArtifactFormat;

  constructor(scope: Construct, id: string, props: BuildImageTaskProps = {}) {
    super(scope, id);
    this.artifactFormat = props.artifactFormat ?? ArtifactFormat.OCI_LAYOUT;
    const tools = props.toolsImage ?? ModelcarImages.SKOPEO;
    const trust = props.baseImageTrust ?? RegistryTrust.systemDefault();
    const credentials = props.baseImageCredentials ?? RegistryCredentials.fromServiceAccount();

    this.task = new Task(this, 'Task', {
      name: props.name ?? 'modelcar-build-image',
      description: 'Builds the modelcar image into an OCI artifact in this run\'s directory and publishes its digest.',
    });
    this.modelRepo = this.task.addParam('MODEL_REPO', { description: 'Hugging Face model repository (image label)' });
    this.modelRevision = this.task.addParam('MODEL_REVISION', { description: 'Commit sha of the model (image label)' });
    this.imageDigest = this.task.addResult('IMAGE_DIGEST', { description: 'Manifest digest of the built image' });
    this.workspace = this.task.addWorkspace(SOURCE_WORKSPACE, { description: 'Shared volume with this run\'s model' });

    const run = runDir(this.workspace);
    const final = artifactPath(this.workspace, this.artifactFormat);
    const tmp = `${run}/.${this.artifactFormat === ArtifactFormat.OCI_ARCHIVE ? 'image.tar' : 'image'}.partial`;
    const storage = this.task.addVolume(TaskVolume.emptyDir('containers-storage'));
    const mounts = [{ volume: storage, mountPath: '/var/lib/containers' }];
    const env: Record<string, kplus.EnvValue> = {
      MODEL_DIR: kplus.EnvValue.fromValue(`${run}/model`),
      BASE_IMAGE: kplus.EnvValue.fromValue((props.baseImage ?? ModelcarImages.BASE).toString()),
      ARTIFACT_FORMAT: kplus.EnvValue.fromValue(this.artifactFormat),
      ARTIFACT_TMP: kplus.EnvValue.fromValue(tmp),
      MODEL_REPO: this.modelRepo.envValue(),
      MODEL_REVISION: this.modelRevision.envValue(),
      TLS_VERIFY: kplus.EnvValue.fromValue(String(trust.tlsVerify)),
      CONTAINERS_STORAGE: kplus.EnvValue.fromValue('/var/lib/containers'),
      TMPDIR: kplus.EnvValue.fromValue('/var/lib/containers/tmp'),
    };
    if (trust.configMapName || trust.secretName) {
      const v = this.task.addVolume(trust.configMapName
        ? TaskVolume.configMap('base-ca', trust.configMapName)
        : TaskVolume.secret('base-ca', trust.secretName!));
      mounts.push({ volume: v, mountPath: '/etc/modelcar/base-certs' });
      env.BASE_CERT_DIR = kplus.EnvValue.fromValue('/etc/modelcar/base-certs');
    }
    if (credentials.secretName) {
      const v = this.task.addVolume(TaskVolume.secret('base-auth', credentials.secretName));
      mounts.push({ volume: v, mountPath: '/etc/modelcar/base-auth' });
      env.BASE_AUTHFILE = kplus.EnvValue.fromValue('/etc/modelcar/base-auth/.dockerconfigjson');
    }

    addPreamble(this.task, this.workspace, tools, 'build-image');
    this.task.addStep({
      name: 'build',
      image: (props.buildahImage ?? ModelcarImages.BUILDAH).toString(),
      env,
      volumeMounts: mounts,
      // buildah writes file capabilities when it unpacks layers: SETFCAP is all it needs.
      // No privileged container, no user override: the pod's identity applies.
      securityContext: { addCapabilities: [kplus.Capability.SETFCAP] },
      script: loadScript('build-buildah.sh'),
    });
    this.task.addStep({
      name: 'publish',
      image: tools.toString(),
      env: {
        ARTIFACT_FORMAT: kplus.EnvValue.fromValue(this.artifactFormat),
        ARTIFACT_TMP: kplus.EnvValue.fromValue(tmp),
        ARTIFACT_PATH: kplus.EnvValue.fromValue(final),
        RESULT_IMAGE_DIGEST: this.imageDigest.pathEnvValue(),
        TMPDIR: kplus.EnvValue.fromValue('/var/lib/containers/tmp'),
      },
      volumeMounts: [{ volume: storage, mountPath: '/var/lib/containers' }],
      script: loadScript('publish-artifact.sh'),
    });
  }
}
