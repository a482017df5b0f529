import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ArtifactFormat } from './artifact-format';
import { addPreamble, addRegistryAccess, addRunId, artifactPath, SOURCE_WORKSPACE } from './common';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';
import { PushTarget } from './push-target';
import { loadScript } from './scripts';
import { Param, ParamValue } from '../tekton/params';
import { Result } from '../tekton/results';
import { TaskVolume, VolumeMount } from '../tekton/step';
import { Task } from '../tekton/task';
import { Workspace } from '../tekton/workspaces';

/**
 * Properties of a `PushTask`.
 */
export interface PushTaskProps {
  /** The registry repository to push to. */
  readonly target: PushTarget;

  /**
   * The Task's name.
   *
   * @default 'modelcar-push-<target name>'
   */
  readonly name?: string;

  /**
   * How the artifact is stored (must match the build).
   *
   * @default ArtifactFormat.OCI_LAYOUT
   */
  readonly artifactFormat?: ArtifactFormat;

  /**
   * The skopeo image.
   *
   * @default ModelcarImages.SKOPEO
   */
  readonly toolsImage?: ImageReference;

  /**
   * Copy the image from this registry (by the digest `IMAGE_DIGEST`, with its credentials and trust) instead of
   * the run's artifact: the streaming mode's pushes after the first. No volume is read.
   *
   * @default - the run's artifact on the shared workspace
   */
  readonly source?: PushTarget;
}

/**
 * Pushes this run's artifact (or, with `source`, the image another registry serves by the
 * build's digest) to one registry, after checking it is readable and has exactly the digest
 * the build published. Emits `IMAGE_URL` and `IMAGE_DIGEST` (the
 * Tekton Chains convention) and `IMAGE_REF` (`repository@digest`).
 */
export class PushTask extends Construct {
  /** The Task. */
  public readonly task: Task;
  /** The target. */
  public readonly target: PushTarget;
  /** The digest the build published; nothing else is pushed. */
  public readonly expectedDigest: Param;
  /** Space-separated tags to push. */
  public readonly tags: Param;
  /** `repository:first-tag`. */
  public readonly imageUrl: Result;
  /** The manifest digest the registry serves. */
  public readonly imageDigestResult: Result;
  /**
   * A tag pushed after the others that is never moved (the pipeline's serving tag): the push fails when the
   * registry already serves another digest under it.
   */
  public readonly servingTag: Param;
  /** `repository@digest`. */
  public readonly imageRef: Result;
  /** The shared workspace. */
  public readonly workspace: Workspace;
  /** The run id param (the pipeline passes the PipelineRun's uid). */
  public readonly runId: Param;

  constructor(scope: Construct, id: string, props: PushTaskProps) {
    super(scope, id);
    const target = props.target;
    const format = props.artifactFormat ?? ArtifactFormat.OCI_LAYOUT;
    const tools = props.toolsImage ?? ModelcarImages.SKOPEO;
    this.target = target;
    this.task = new Task(this, 'Task', {
      name: props.name ?? `modelcar-push-${target.name}`,
      description: `Pushes this run's modelcar image to ${target.repository}, only if its digest is the build's.`,
    });
    this.expectedDigest = this.task.addParam('IMAGE_DIGEST', { description: 'The manifest digest the build published' });
    this.tags = this.task.addParam('IMAGE_TAGS', { description: 'Space-separated tags to push' });
    this.servingTag = this.task.addParam('SERVING_TAG', {
      description: 'A tag pushed after IMAGE_TAGS that is never moved: the push fails if it names another digest (empty: none)',
      default: ParamValue.string(''),
    });
    this.imageUrl = this.task.addResult('IMAGE_URL', { description: 'The image pushed, repository:tag' });
    this.imageDigestResult = this.task.addResult('IMAGE_DIGEST', { description: 'The digest the registry serves' });
    this.imageRef = this.task.addResult('IMAGE_REF', { description: 'The image by digest, repository@sha256:...' });
    this.workspace = this.task.addWorkspace(SOURCE_WORKSPACE, { description: 'Shared volume with this run\'s artifact', readOnly: true });
    this.runId = addRunId(this.task);

    const artifact = artifactPath(this.workspace, this.runId, format);
    const scratch = this.task.addVolume(TaskVolume.emptyDir('scratch'));
    const access = addRegistryAccess(this.task, {
      trust: target.trust, credentials: target.credentials, prefix: 'registry', mountPrefix: '/etc/modelcar/', certDirEnv: 'CERT_DIR', authFileEnv: 'AUTHFILE',
    });
    const source = props.source;
    const from = source ? addRegistryAccess(this.task, {
      trust: source.trust,
      credentials: source.credentials,
      prefix: 'source',
      mountPrefix: '/etc/modelcar/source-',
      certDirEnv: 'SOURCE_CERT_DIR',
      authFileEnv: 'SOURCE_AUTHFILE',
      authModeEnv: 'SOURCE_AUTH_MODE',
    }) : { env: {}, mounts: [] };
    const mounts: VolumeMount[] = [{ volume: scratch, mountPath: '/var/tmp/modelcar' }, ...access.mounts, ...from.mounts];
    const env: Record<string, kplus.EnvValue> = {
      ARTIFACT_FORMAT: kplus.EnvValue.fromValue(format),
      ARTIFACT_PATH: kplus.EnvValue.fromValue(artifact),
      EXPECTED_DIGEST: this.expectedDigest.envValue(),
      IMAGE: kplus.EnvValue.fromValue(target.repository),
      IMAGE_TAGS: this.tags.envValue(),
      SERVING_TAG: this.servingTag.envValue(),
      TLS_VERIFY: kplus.EnvValue.fromValue(String(target.trust.tlsVerify)),
      RETRIES: kplus.EnvValue.fromValue(String(target.retries)),
      RESULT_IMAGE_URL: this.imageUrl.pathEnvValue(),
      RESULT_IMAGE_DIGEST: this.imageDigestResult.pathEnvValue(),
      RESULT_IMAGE_REF: this.imageRef.pathEnvValue(),
      TMPDIR: kplus.EnvValue.fromValue('/var/tmp/modelcar'),
      // skopeo keeps a blob-info cache under $HOME: in the emptyDir, since the namespace's
      // arbitrary uid has HOME=/ otherwise, which it cannot write.
      HOME: kplus.EnvValue.fromValue('/var/tmp/modelcar/home'),
      ...access.env,
      ...(source ? {
        SOURCE_IMAGE: kplus.EnvValue.fromValue(source.repository),
        SOURCE_TLS_VERIFY: kplus.EnvValue.fromValue(String(source.trust.tlsVerify)),
        ...from.env,
      } : {}),
    };

    addPreamble(this.task, this.workspace, this.runId, tools, `push-${target.name}`, source ? undefined : artifact);
    this.task.addStep({ name: 'push', image: tools.toString(), env, volumeMounts: mounts, script: loadScript('push.sh') });
  }
}
