import { Duration } from 'cdk8s';
import { ImageReference } from './image-reference';
import { validateDnsLabel, validateObjectName } from '../tekton/util';

/**
 * How a push authenticates to its registry. Credentials never appear in the manifests:
 * only the name of the Secret or service account that holds them.
 */
export class RegistryCredentials {
  /**
   * A Secret of type `kubernetes.io/dockerconfigjson` (key `.dockerconfigjson`), e.g.
   * a quay.io robot account's pull secret. It is mounted read-only and handed to
   * skopeo with `--authfile`.
   */
  public static fromDockerConfigSecret(secretName: string): RegistryCredentials {
    validateDnsLabel('docker config secret name', secretName);
    return new RegistryCredentials(secretName);
  }

  /**
   * The PipelineRun's service account: Tekton writes the docker credentials of the
   * secrets linked to it into the step's `~/.docker/config.json`, which skopeo reads.
   * On OpenShift the `pipeline` service account can push to its namespace's
   * internal registry this way.
   */
  public static fromServiceAccount(): RegistryCredentials {
    return new RegistryCredentials(undefined);
  }

  /** The Secret's name, or undefined for the service account. */
  public readonly secretName?: string;

  private constructor(secretName: string | undefined) {
    this.secretName = secretName;
  }
}

/**
 * Which certificate authorities a push trusts for its registry's TLS certificate.
 */
export class RegistryTrust {
  /** The system trust store of the push image (public registries such as quay.io). */
  public static systemDefault(): RegistryTrust {
    return new RegistryTrust(undefined, undefined, true);
  }

  /**
   * CA certificates from a ConfigMap, mounted as skopeo's `--dest-cert-dir` (every
   * `*.crt` key is trusted). OpenShift publishes its service CA in every namespace as
   * the ConfigMap `openshift-service-ca.crt` (key `service-ca.crt`), which signs the
   * internal registry's certificate.
   */
  public static fromConfigMap(configMapName: string): RegistryTrust {
    validateObjectName('CA configMap name', configMapName);
    return new RegistryTrust(configMapName, undefined, true);
  }

  /** CA certificates from a Secret, mounted like `fromConfigMap()`. */
  public static fromSecret(secretName: string): RegistryTrust {
    validateObjectName('CA secret name', secretName);
    return new RegistryTrust(undefined, secretName, true);
  }

  /**
   * No TLS verification. Unsafe: anyone on the path can serve or swap the image. Only
   * for throwaway test registries.
   */
  public static insecureSkipVerify(): RegistryTrust {
    return new RegistryTrust(undefined, undefined, false);
  }

  /** The ConfigMap with CA certificates, if any. */
  public readonly configMapName?: string;
  /** The Secret with CA certificates, if any. */
  public readonly secretName?: string;
  /** Whether TLS certificates are verified. */
  public readonly tlsVerify: boolean;

  private constructor(configMapName: string | undefined, secretName: string | undefined, tlsVerify: boolean) {
    this.configMapName = configMapName;
    this.secretName = secretName;
    this.tlsVerify = tlsVerify;
  }
}

/**
 * Options common to every push target.
 */
export interface PushTargetOptions {
  /**
   * How long the push may run before Tekton fails the task.
   *
   * @default Duration.minutes(30)
   */
  readonly timeout?: Duration;

  /**
   * How many times skopeo retries a transient registry error (connection reset, 5xx)
   * before giving up.
   *
   * @default 3
   */
  readonly retries?: number;
}

/**
 * Options for `PushTarget.openshiftInternal()`.
 */
export interface OpenShiftInternalTargetOptions extends PushTargetOptions {
  /** The namespace (image stream project) to push to. */
  readonly namespace: string;

  /**
   * The image stream (repository) name.
   *
   * @default 'modelcars'
   */
  readonly repository?: string;

  /**
   * The credentials.
   *
   * @default RegistryCredentials.fromServiceAccount()
   */
  readonly credentials?: RegistryCredentials;
}

/**
 * Options for `PushTarget.quay()`.
 */
export interface QuayTargetOptions extends PushTargetOptions {
  /** The quay.io organization or user. */
  readonly organization: string;
  /** The repository in the organization. */
  readonly repository: string;
  /** The credentials, e.g. a robot account's docker config Secret. */
  readonly credentials: RegistryCredentials;
}

/**
 * Options for `PushTarget.registry()`.
 */
export interface RegistryTargetOptions extends PushTargetOptions {
  /** The target's name: names the push task (`push-<name>`) and its results. */
  readonly name: string;
  /** The repository, e.g. `registry.example.com:5000/team/models`. */
  readonly repository: string;
  /** The credentials. */
  readonly credentials: RegistryCredentials;

  /**
   * The CAs to trust.
   *
   * @default RegistryTrust.systemDefault()
   */
  readonly trust?: RegistryTrust;
}

/** The OpenShift internal registry's service address. */
const OPENSHIFT_REGISTRY = 'image-registry.openshift-image-registry.svc:5000';

/**
 * A registry repository the modelcar is pushed to. Targets are pushed one after
 * another, in the order given.
 */
export class PushTarget {
  /**
   * The OpenShift internal registry, through its service address, trusting the
   * cluster's service CA.
   */
  public static openshiftInternal(options: OpenShiftInternalTargetOptions): PushTarget {
    validateDnsLabel('openshiftInternal namespace', options.namespace);
    return new PushTarget({
      name: 'internal',
      repository: `${OPENSHIFT_REGISTRY}/${options.namespace}/${options.repository ?? 'modelcars'}`,
      credentials: options.credentials ?? RegistryCredentials.fromServiceAccount(),
      trust: RegistryTrust.fromConfigMap('openshift-service-ca.crt'),
      timeout: options.timeout,
      retries: options.retries,
    });
  }

  /** A quay.io repository. */
  public static quay(options: QuayTargetOptions): PushTarget {
    return new PushTarget({
      name: 'quay',
      repository: `quay.io/${options.organization}/${options.repository}`,
      credentials: options.credentials,
      trust: RegistryTrust.systemDefault(),
      timeout: options.timeout,
      retries: options.retries,
    });
  }

  /** Any registry. */
  public static registry(options: RegistryTargetOptions): PushTarget {
    return new PushTarget(options);
  }

  /** The target's name. */
  public readonly name: string;
  /** The repository pushed to. */
  public readonly repository: string;
  /** The credentials. */
  public readonly credentials: RegistryCredentials;
  /** The TLS trust. */
  public readonly trust: RegistryTrust;
  /** The push task's timeout. */
  public readonly timeout: Duration;
  /** How many times a transient error is retried. */
  public readonly retries: number;

  private constructor(options: RegistryTargetOptions) {
    validateDnsLabel('push target name', options.name);
    ImageReference.validateRepository(options.repository);
    const retries = options.retries ?? 3;
    if (!(Number.isInteger(retries) && retries >= 0 && retries <= 10)) {
      throw new Error(`push target "${options.name}" retries ${retries} must be a whole number from 0 to 10`);
    }
    this.name = options.name;
    this.repository = options.repository;
    this.credentials = options.credentials;
    this.trust = options.trust ?? RegistryTrust.systemDefault();
    this.timeout = options.timeout ?? Duration.minutes(30);
    this.retries = retries;
  }
}
