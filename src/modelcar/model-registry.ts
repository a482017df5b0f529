import { Duration } from 'cdk8s';
import { RegistryTrust } from './push-target';
import { validateDnsLabel } from '../tekton/util';

/**
 * Options common to every model registry: what the registration records.
 */
export interface ModelRegistryOptions {
  /**
   * The push target whose image the model artifact's `uri` names
   * (`oci://<repository>@sha256:<digest>`): the registry the serving runtime pulls from.
   * Every target's reference is recorded in the version's custom properties either way.
   *
   * @default - the pipeline's first push target (the internal registry in the default app)
   */
  readonly pushTarget?: string;

  /**
   * The model format name of the artifact: KServe picks a serving runtime that supports it.
   *
   * @default 'vLLM'
   */
  readonly modelFormatName?: string;

  /**
   * The model format version of the artifact.
   *
   * @default '1'
   */
  readonly modelFormatVersion?: string;

  /**
   * How long the registration may run before Tekton fails the task.
   *
   * @default Duration.minutes(5)
   */
  readonly timeout?: Duration;
}

/**
 * Options for `ModelRegistry.fromService()`.
 */
export interface ModelRegistryServiceOptions extends ModelRegistryOptions {
  /** The model registry's name, which is also the name of its Service (e.g. `modelregistry-public`). */
  readonly name: string;

  /**
   * The namespace of the registry's Service.
   *
   * @default 'rhoai-model-registries' (where OpenShift AI creates registries)
   */
  readonly namespace?: string;

  /**
   * The port of the registry's REST API behind its authenticating proxy.
   *
   * @default 8443
   */
  readonly port?: number;

  /**
   * The CAs trusted for the Service's certificate.
   *
   * @default RegistryTrust.fromConfigMap('openshift-service-ca.crt') (OpenShift's service CA, in every namespace)
   */
  readonly trust?: RegistryTrust;
}

/**
 * Options for `ModelRegistry.fromUrl()`.
 */
export interface ModelRegistryUrlOptions extends ModelRegistryOptions {
  /**
   * The CAs trusted for the registry's certificate.
   *
   * @default RegistryTrust.systemDefault()
   */
  readonly trust?: RegistryTrust;
}

/** Where OpenShift AI creates model registries. */
const RHOAI_REGISTRIES_NAMESPACE = 'rhoai-model-registries';

/**
 * A Kubeflow model registry (OpenShift AI's "model registry") the pipeline registers each
 * published image in, through its REST API (`/api/model_registry/v1alpha3`), with the
 * service account's token as a Bearer token (what the registry's authenticating proxy
 * expects) and TLS verified.
 */
export class ModelRegistry {
  /**
   * A registry reached through its in-cluster Service,
   * `https://<name>.<namespace>.svc:<port>`, trusting OpenShift's service CA.
   */
  public static fromService(options: ModelRegistryServiceOptions): ModelRegistry {
    validateDnsLabel('model registry name', options.name);
    const namespace = options.namespace ?? RHOAI_REGISTRIES_NAMESPACE;
    validateDnsLabel('model registry namespace', namespace);
    const port = options.port ?? 8443;
    if (!(Number.isInteger(port) && port >= 1 && port <= 65535)) {
      throw new Error(`model registry "${options.name}" port ${port} is invalid: give a whole number from 1 to 65535`);
    }
    return new ModelRegistry(`https://${options.name}.${namespace}.svc:${port}`,
      options.trust ?? RegistryTrust.fromConfigMap('openshift-service-ca.crt'), options,
      `the role registry-user-${options.name} in namespace ${namespace} (get on service ${options.name})`);
  }

  /** A registry at any https URL, e.g. its route, with the CAs to trust. */
  public static fromUrl(url: string, options: ModelRegistryUrlOptions = {}): ModelRegistry {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`model registry url "${url}" is not a URL: give https://<host>[:<port>]`);
    }
    if (parsed.protocol !== 'https:' || parsed.username || parsed.password || parsed.search || parsed.hash) {
      throw new Error(`model registry url "${url}" must be https, without credentials, query or fragment: give https://<host>[:<port>]`);
    }
    return new ModelRegistry(url.replace(/\/+$/, ''), options.trust ?? RegistryTrust.systemDefault(), options,
      'access to the registry (on OpenShift AI: the role registry-user-<registry name> in the registry\'s namespace)');
  }

  /** The registry's base URL (the API is under `/api/model_registry/v1alpha3`). */
  public readonly url: string;
  /** The CAs trusted for the registry's certificate. */
  public readonly trust: RegistryTrust;
  /** The push target the artifact's uri names, if not the first. */
  public readonly pushTarget?: string;
  /** The artifact's model format name. */
  public readonly modelFormatName: string;
  /** The artifact's model format version. */
  public readonly modelFormatVersion: string;
  /** The registration task's timeout. */
  public readonly timeout: Duration;
  /** What the service account needs, named in the error a 403 gets. */
  public readonly requiredAccess: string;

  private constructor(url: string, trust: RegistryTrust, options: ModelRegistryOptions, requiredAccess: string) {
    if (!trust.tlsVerify) {
      throw new Error(`model registry ${url}: trust must verify TLS (the service account's token would be open to anyone on the path): `
        + 'give the CA with RegistryTrust.fromConfigMap() or fromSecret()');
    }
    for (const [what, value] of [['modelFormatName', options.modelFormatName], ['modelFormatVersion', options.modelFormatVersion]]) {
      if (value !== undefined && !/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(value)) {
        throw new Error(`model registry ${url}: ${what} "${value}" is empty or not printable ASCII: give e.g. 'vLLM'`);
      }
    }
    if (options.pushTarget !== undefined) validateDnsLabel('model registry pushTarget', options.pushTarget);
    this.url = url;
    this.trust = trust;
    this.pushTarget = options.pushTarget;
    this.modelFormatName = options.modelFormatName ?? 'vLLM';
    this.modelFormatVersion = options.modelFormatVersion ?? '1';
    this.timeout = options.timeout ?? Duration.minutes(5);
    this.requiredAccess = requiredAccess;
  }
}
