import { Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ModelcarBuilder } from './builder';
import { addModelParams, addPreamble, addRegistryAccess, addRunId, hubEnv, requireVerifiedHubTrust, runDir, SOURCE_WORKSPACE, sumsPath } from './common';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';
import { RegistryTrust } from './push-target';
import { loadScript } from './scripts';
import { Param } from '../tekton/params';
import { Result } from '../tekton/results';
import { Task } from '../tekton/task';
import { validateObjectName } from '../tekton/util';
import { Workspace } from '../tekton/workspaces';

/**
 * Properties of a `DownloadModelTask`.
 */
export interface DownloadModelTaskProps {
  /**
   * The Task's name.
   *
   * @default 'modelcar-download-model'
   */
  readonly name?: string;

  /**
   * The image of the fetch and checksum steps: Python 3 (stdlib only) runs the Hugging
   * Face fetch; the checksum step needs find and xargs, which this image has.
   *
   * @default ModelcarImages.PYTHON
   */
  readonly fetchImage?: ImageReference;

  /**
   * The image of the debug preamble (sh and coreutils).
   *
   * @default ModelcarImages.SKOPEO
   */
  readonly toolsImage?: ImageReference;

  /**
   * The Secret holding a Hugging Face token (key `token`), for gated or private
   * models. The token reaches the step only as an env var; a missing Secret means an
   * anonymous download.
   *
   * @default 'huggingface-token'
   */
  readonly tokenSecretName?: string;

  /**
   * The hub's address. Must be https (a mirror, say) except on loopback.
   *
   * @default 'https://huggingface.co'
   */
  readonly hubEndpoint?: string;

  /**
   * The CAs trusted for the hub and the hosts it redirects to, in addition to the
   * fetch image's system CAs: a ConfigMap or Secret whose `*.crt` keys are PEM CA
   * certificates (a mirror behind a corporate or cluster CA, for a disconnected
   * cluster). TLS verification cannot be turned off.
   *
   * @default RegistryTrust.systemDefault()
   */
  readonly hubTrust?: RegistryTrust;

  /**
   * Parallel connections to the hub and its CDN, shared by the files and by the byte
   * ranges of large files (a CDN caps each connection, so one stream is the slowest way;
   * huggingface_hub's `snapshot_download` uses 8 workers, one file each).
   *
   * @default 8
   */
  readonly connections?: number;

  /**
   * The byte range one request asks for, for files stored with LFS: large enough that a
   * request's set-up is noise, small enough that 8 connections share a 4-shard model
   * evenly and that a retry resumes within a range.
   *
   * @default Size.mebibytes(32)
   */
  readonly chunkSize?: Size;

  /**
   * The whole download, waits for rate limits included, must end by then: keep it
   * within the task's timeout so that the fetch fails with its own message, and what was
   * received stays for a retry. Retries of a request are bounded by attempts without
   * progress and by this deadline, not by a count of attempts.
   *
   * @default Duration.minutes(55)
   */
  readonly deadline?: Duration;

  /**
   * The builder of the pipeline: the disk-space check counts the image it writes to
   * the same volume (about the model's size for either builder).
   *
   * @default ModelcarBuilder.ociLayout()
   */
  readonly builder?: ModelcarBuilder;
}

/**
 * Downloads a model from the Hugging Face hub into this run's directory on the shared
 * workspace, writes its `SHA256SUMS`, and reports its size and the commit downloaded.
 *
 * The fetch step lists the resolved commit with the hub's recursive tree API (every
 * page), checks before the first byte that the volume holds the model plus the image
 * the build writes, then downloads over `connections` connections, large files in byte
 * ranges written at their offsets into a preallocated file in the run's hidden
 * `.download/` folder. Each file is checked against the hub's sha256 (LFS) or git blob
 * id before it gets its final name; `SHA256SUMS` (beside the model directory, so no repo
 * file collides with it) is written from those checked digests. A cut connection
 * resumes from the last byte received, a rate limit is waited out, and a Tekton retry
 * keeps the verified files and resumes the partial ones.
 */
export class DownloadModelTask extends Construct {
  /** The Task. */
  public readonly task: Task;
  /** The model repository, `org/name`. */
  public readonly modelRepo: Param;
  /** The branch, tag or commit to download. */
  public readonly modelRevision: Param;
  /** Space-separated glob patterns of the files to download (empty: all). */
  public readonly include: Param;
  /** Space-separated glob patterns of files to skip. */
  public readonly exclude: Param;
  /** The model's size in bytes. */
  public readonly modelSize: Result;
  /** The commit sha actually downloaded. */
  public readonly resolvedRevision: Result;
  /** The shared workspace. */
  public readonly workspace: Workspace;
  /** The run id param (the pipeline passes the PipelineRun's uid). */
  public readonly runId: Param;

  constructor(scope: Construct, id: string, props: DownloadModelTaskProps = {}) {
    super(scope, id);
    const endpoint = props.hubEndpoint ?? 'https://huggingface.co';
    if (!/^https:\/\/[^\s/]+/.test(endpoint) && !/^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?/.test(endpoint)) {
      throw new Error(`download task ${this.node.path}: hubEndpoint "${endpoint}" is not https: the model and token would travel in clear text`);
    }
    const tokenSecret = props.tokenSecretName ?? 'huggingface-token';
    validateObjectName(`download task ${this.node.path}: tokenSecretName`, tokenSecret);
    const tools = props.toolsImage ?? ModelcarImages.SKOPEO;
    const connections = props.connections ?? 8;
    if (!Number.isInteger(connections) || connections < 1 || connections > 64) {
      throw new Error(`download task ${this.node.path}: connections must be a whole number from 1 to 64 (got ${connections})`);
    }
    const chunkBytes = (props.chunkSize ?? Size.mebibytes(32)).toKibibytes() * 1024;
    if (!Number.isInteger(chunkBytes) || chunkBytes < 1024 * 1024 || chunkBytes > 1024 ** 3) {
      throw new Error(`download task ${this.node.path}: chunkSize must be a whole number of KiB from 1 MiB to 1 GiB (got ${chunkBytes} bytes)`);
    }
    const deadline = props.deadline ?? Duration.minutes(55);
    if (deadline.toSeconds() < 60) {
      throw new Error(`download task ${this.node.path}: deadline must be at least 1 minute (got ${deadline.toHumanString()})`);
    }
    const builder = props.builder ?? ModelcarBuilder.ociLayout();
    const trust = props.hubTrust ?? RegistryTrust.systemDefault();
    requireVerifiedHubTrust(`download task ${this.node.path}`, trust);

    this.task = new Task(this, 'Task', {
      name: props.name ?? 'modelcar-download-model',
      description: 'Downloads a model from Hugging Face into this run\'s directory and writes SHA256SUMS.',
    });
    const model = addModelParams(this.task);
    this.modelRepo = model.repo;
    this.modelRevision = model.revision;
    this.include = model.include;
    this.exclude = model.exclude;
    this.modelSize = this.task.addResult('MODEL_SIZE', { description: 'Bytes downloaded' });
    this.resolvedRevision = this.task.addResult('MODEL_RESOLVED_REVISION', { description: 'The commit sha downloaded' });
    this.workspace = this.task.addWorkspace(SOURCE_WORKSPACE, { description: 'Shared volume; this run writes under modelcar-runs/<run uid>/' });
    this.runId = addRunId(this.task);

    const run = runDir(this.workspace, this.runId);
    addPreamble(this.task, this.workspace, this.runId, tools, 'download-model');
    const access = addRegistryAccess(this.task, {
      trust, prefix: 'hub', mountPrefix: '/etc/modelcar/hub-', certDirEnv: 'HF_CA_DIR',
    });
    this.task.addStep({
      name: 'fetch',
      image: (props.fetchImage ?? ModelcarImages.PYTHON).toString(),
      env: {
        ...hubEnv(this, model, endpoint, tokenSecret),
        MODEL_DIR: kplus.EnvValue.fromValue(`${run}/model`),
        STATE_DIR: kplus.EnvValue.fromValue(`${run}/.download`),
        SUMS_FILE: kplus.EnvValue.fromValue(sumsPath(this.workspace, this.runId)),
        RESOLVED_REVISION_FILE: this.resolvedRevision.pathEnvValue(),
        MODEL_SIZE_FILE: this.modelSize.pathEnvValue(),
        HF_CONNECTIONS: kplus.EnvValue.fromValue(String(connections)),
        HF_CHUNK_BYTES: kplus.EnvValue.fromValue(String(chunkBytes)),
        HF_DEADLINE_SECONDS: kplus.EnvValue.fromValue(String(deadline.toSeconds())),
        // Both builders write about the model's size to the volume (layout: uncompressed layers; buildah:
        // the layout or archive, gzip gains little on weights); buildah's own store is in an emptyDir.
        IMAGE_BYTES_PER_MODEL_BYTE: kplus.EnvValue.fromValue('1'),
        BUILDER: kplus.EnvValue.fromValue(builder.kind),
        HOME: kplus.EnvValue.fromValue('/tmp'),
        ...access.env,
      },
      volumeMounts: access.mounts,
      script: loadScript('hf-fetch.py'),
    });
  }
}
