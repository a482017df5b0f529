import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { addPreamble, addRegistryAccess, addRunId, runDir, SOURCE_WORKSPACE } from './common';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';
import { RegistryTrust } from './push-target';
import { loadScript } from './scripts';
import { Param, ParamValue } from '../tekton/params';
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
}

/**
 * Downloads a model from the Hugging Face hub into this run's directory on the shared
 * workspace, writes its `SHA256SUMS`, and reports its size and the commit downloaded.
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
    const trust = props.hubTrust ?? RegistryTrust.systemDefault();
    if (!trust.tlsVerify) {
      throw new Error(`download task ${this.node.path}: hubTrust must verify TLS (the model and the token would be open to anyone on the path): `
        + 'give the CA with RegistryTrust.fromConfigMap() or fromSecret()');
    }

    this.task = new Task(this, 'Task', {
      name: props.name ?? 'modelcar-download-model',
      description: 'Downloads a model from Hugging Face into this run\'s directory and writes SHA256SUMS.',
    });
    this.modelRepo = this.task.addParam('MODEL_REPO', { description: 'Hugging Face model repository, org/name' });
    this.modelRevision = this.task.addParam('MODEL_REVISION', { description: 'Branch, tag or commit', default: ParamValue.string('main') });
    this.include = this.task.addParam('MODEL_INCLUDE', { description: 'Space-separated glob patterns to download (empty: all files)', default: ParamValue.string('') });
    this.exclude = this.task.addParam('MODEL_EXCLUDE', { description: 'Space-separated glob patterns to skip', default: ParamValue.string('') });
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
        HF_REPO: this.modelRepo.envValue(),
        HF_REVISION: this.modelRevision.envValue(),
        HF_INCLUDE: this.include.envValue(),
        HF_EXCLUDE: this.exclude.envValue(),
        HF_ENDPOINT: kplus.EnvValue.fromValue(endpoint),
        HF_TOKEN: kplus.EnvValue.fromSecretValue(
          { secret: kplus.Secret.fromSecretName(this, 'Token', tokenSecret), key: 'token' }, { optional: true }),
        MODEL_DIR: kplus.EnvValue.fromValue(`${run}/model`),
        RESOLVED_REVISION_FILE: kplus.EnvValue.fromValue(`${run}/model.revision`),
        HOME: kplus.EnvValue.fromValue('/tmp'),
        ...access.env,
      },
      volumeMounts: access.mounts,
      script: loadScript('hf-fetch.py'),
    });
    // find and xargs: in the Python image (s2i-core installs findutils), not in the tools image.
    this.task.addStep({
      name: 'checksum',
      image: (props.fetchImage ?? ModelcarImages.PYTHON).toString(),
      env: {
        MODEL_DIR: kplus.EnvValue.fromValue(`${run}/model`),
        RESOLVED_REVISION_FILE: kplus.EnvValue.fromValue(`${run}/model.revision`),
        RESULT_MODEL_SIZE: this.modelSize.pathEnvValue(),
        RESULT_MODEL_REVISION: this.resolvedRevision.pathEnvValue(),
      },
      script: loadScript('checksum.sh'),
    });
  }
}
