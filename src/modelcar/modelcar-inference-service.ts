import { ApiObject, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ModelcarPipelineRun } from './modelcar-pipeline';
import { InferenceServiceSpecPredictorModelResourcesLimits as Quantity, KserveInferenceService } from '../imports/serving.kserve.io';

/**
 * Properties of a `ModelcarInferenceService`.
 */
export interface ModelcarInferenceServiceProps {
  /**
   * The run whose image is served: the model's `storageUri` is its `servingReference()`, which can only ever name
   * the image this pipeline built for the run's model commit and build configuration. The run's revision must be a
   * commit sha.
   */
  readonly run: ModelcarPipelineRun;

  /**
   * The push target the model is pulled from (`PushTarget.name`).
   *
   * @default - the pipeline's first push target (the internal registry, which in-cluster serving pulls from)
   */
  readonly pushTarget?: string;

  /**
   * The InferenceService's name (a DNS-1035 label: lower-case letters, digits and '-', starting with a letter).
   *
   * @default - the construct id, lower-cased, other characters as '-'
   */
  readonly name?: string;

  /**
   * The model format KServe picks a serving runtime by (`spec.predictor.model.modelFormat.name`).
   *
   * @default 'vLLM'
   */
  readonly modelFormat?: string;

  /**
   * The model format's version (`modelFormat.version`).
   *
   * @default - none
   */
  readonly modelFormatVersion?: string;

  /**
   * The ServingRuntime (or ClusterServingRuntime) to serve with, e.g. OpenShift AI's `vllm-runtime`.
   *
   * @default - none: KServe picks a runtime that supports the model format
   */
  readonly runtime?: string;

  /**
   * CPU and memory of the model server container (requests and limits).
   *
   * @default - none: the namespace's LimitRange, if any, decides
   */
  readonly resources?: kplus.ContainerResources;

  /**
   * GPUs for the model server, requested and limited alike (`gpuResourceName`); 0 for none.
   *
   * @default 1
   */
  readonly gpus?: number;

  /**
   * The extended resource name of a GPU.
   *
   * @default 'nvidia.com/gpu'
   */
  readonly gpuResourceName?: string;

  /**
   * The fewest replicas of the predictor (0 lets KServe scale to zero in serverless mode).
   *
   * @default 1
   */
  readonly minReplicas?: number;

  /**
   * The most replicas of the predictor.
   *
   * @default - minReplicas (at least 1)
   */
  readonly maxReplicas?: number;

  /**
   * The predictor's service account (e.g. one with a pull secret for an external registry).
   *
   * @default - the namespace's default service account
   */
  readonly serviceAccountName?: string;

  /**
   * Arguments of the model server (e.g. `['--max-model-len=8192']` for vLLM).
   *
   * @default - none
   */
  readonly args?: string[];

  /**
   * Annotations of the InferenceService, e.g. `serving.kserve.io/deploymentMode: RawDeployment`.
   *
   * @default - none (besides Argo CD's sync wave)
   */
  readonly annotations?: { [key: string]: string };
}

/**
 * A KServe InferenceService (`serving.kserve.io/v1beta1`) that serves a `ModelcarPipelineRun`'s image as a modelcar
 * (`storageUri: oci://...`), by the run's serving reference: the tag of the model commit and build configuration,
 * which the pipeline only ever pushes that image under. It is known at synth, so the InferenceService sits in git
 * beside the run that builds its image (`GitOpsLayout` writes it to `04-serving/`, synced by Argo CD after the runs).
 *
 * Its spec is typed from KServe's CRD (v0.15), imported with `cdk8s import`.
 */
export class ModelcarInferenceService extends Construct {
  /** The InferenceService. */
  public readonly apiObject: ApiObject;
  /** The InferenceService's name. */
  public readonly name: string;
  /** The model's `storageUri`: the run's serving reference at the push target. */
  public readonly storageUri: string;

  constructor(scope: Construct, id: string, props: ModelcarInferenceServiceProps) {
    super(scope, id);
    const where = `inference service ${this.node.path}`;
    this.name = props.name ?? (id.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^[^a-z]+|-+$/g, '').slice(0, 63).replace(/-+$/, '') || 'model');
    if (!/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(this.name) || this.name.length > 63) {
      throw new Error(`${where}: name "${this.name}" is not a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, `
        + 'at most 63 characters), which KServe requires: pass another name');
    }
    try {
      this.storageUri = props.run.servingReference(props.pushTarget);
    } catch (e: any) {
      throw new Error(`${where}: cannot serve run ${props.run.node.path} by a reference that cannot drift: ${e.message}`);
    }
    const modelFormat = props.modelFormat ?? 'vLLM';
    if (modelFormat.trim() === '') throw new Error(`${where}: modelFormat is empty: pass the format KServe picks a runtime by, e.g. 'vLLM'`);
    const gpus = props.gpus ?? 1;
    if (!Number.isInteger(gpus) || gpus < 0) throw new Error(`${where}: gpus must be a whole number, 0 or more (got ${gpus})`);
    const minReplicas = props.minReplicas ?? 1;
    if (!Number.isInteger(minReplicas) || minReplicas < 0) throw new Error(`${where}: minReplicas must be a whole number, 0 or more (got ${minReplicas})`);
    const maxReplicas = props.maxReplicas ?? Math.max(1, minReplicas);
    if (!Number.isInteger(maxReplicas) || maxReplicas < Math.max(1, minReplicas)) {
      throw new Error(`${where}: maxReplicas ${maxReplicas} is below minReplicas ${minReplicas} (or 1): raise maxReplicas`);
    }

    const requests: Record<string, Quantity> = {};
    const limits: Record<string, Quantity> = {};
    const cpu = props.resources?.cpu;
    if (cpu?.request && cpu?.limit && millis(cpu.request) > millis(cpu.limit)) {
      throw new Error(`${where}: the CPU request ${cpu.request.amount} is above its limit ${cpu.limit.amount}`);
    }
    if (cpu?.request) requests.cpu = Quantity.fromString(cpu.request.amount);
    if (cpu?.limit) limits.cpu = Quantity.fromString(cpu.limit.amount);
    const memory = props.resources?.memory;
    if (memory?.request && memory?.limit && memory.request.toMebibytes() > memory.limit.toMebibytes()) {
      throw new Error(`${where}: the memory request ${memory.request.toMebibytes()}Mi is above its limit ${memory.limit.toMebibytes()}Mi`);
    }
    if (memory?.request) requests.memory = Quantity.fromString(mebibytes(memory.request));
    if (memory?.limit) limits.memory = Quantity.fromString(mebibytes(memory.limit));
    if (props.resources?.ephemeralStorage) {
      throw new Error(`${where}: resources.ephemeralStorage is not taken: the model comes from the modelcar image, not the pod's disk`);
    }
    if (gpus > 0) {
      const gpu = props.gpuResourceName ?? 'nvidia.com/gpu';
      requests[gpu] = Quantity.fromNumber(gpus);
      limits[gpu] = Quantity.fromNumber(gpus);
    }

    this.apiObject = new KserveInferenceService(this, 'Resource', {
      metadata: { name: this.name, annotations: props.annotations },
      spec: {
        predictor: {
          minReplicas,
          maxReplicas,
          serviceAccountName: props.serviceAccountName,
          model: {
            modelFormat: { name: modelFormat, version: props.modelFormatVersion },
            runtime: props.runtime,
            storageUri: this.storageUri,
            args: props.args && props.args.length > 0 ? [...props.args] : undefined,
            resources: Object.keys(requests).length + Object.keys(limits).length > 0 ? {
              requests: Object.keys(requests).length > 0 ? requests : undefined,
              limits: Object.keys(limits).length > 0 ? limits : undefined,
            } : undefined,
          },
        },
      },
    });
    // After the runs, as the run's pipeline chose (sync wave, or no annotation).
    props.run.pipeline.argoCdSync.applyTo(this);
  }
}

function millis(cpu: kplus.Cpu): number {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(cpu.amount);
  if (!m) return NaN;
  return m[2] === 'm' ? Number(m[1]) : Number(m[1]) * 1000;
}

function mebibytes(size: Size): string {
  return `${size.toMebibytes()}Mi`;
}
