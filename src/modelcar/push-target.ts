import { Duration } from 'cdk8s';
import { ImageReference } from './image-reference';
import { validateDnsLabel, validateObjectName } from '../tekton/util';

/**
 * Where a step finds a registry's credentials (see `RegistryCredentials`).
 */
export enum RegistryCredentialsSource {
  /** A docker config Secret mounted into the step. */
  DOCKER_CONFIG_SECRET = 'secret',
  /** The docker secrets linked to the service account, as Tekton writes them to `$(credentials.path)`. */
  SERVICE_ACCOUNT_DOCKER_CONFIG = 'service-account',
  /** The pod's mounted service-account token, as the password (the OpenShift internal registry). */
  SERVICE_ACCOUNT_TOKEN = 'service-account-token',
}

/**
 * How a push authenticates to its registry. Credentials never appear in the manifests:
 * only the name of the Secret or service account that holds them. Every kind is handed
 * to skopeo explicitly with `--authfile`: nothing depends on `$HOME`, which on OpenShift
 * is `/` (not writable) for the namespace's arbitrary uid.
 */
export class RegistryCredentials {
  /**
   * A Secret of type `kubernetes.io/dockerconfigjson` (key `.dockerconfigjson`), e.g.
   * a quay.io robot account's pull secret. It is mounted read-only and handed to
   * skopeo with `--authfile`.
   */
  public static fromDockerConfigSecret(secretName: string): RegistryCredentials {
    validateDnsLabel('docker config secret name', secretName);
    return new RegistryCredentials(RegistryCredentialsSource.DOCKER_CONFIG_SECRET, secretName);
  }

  /**
   * The docker secrets linked to the PipelineRun's service account (its `secrets`, not
   * its `imagePullSecrets`: Tekton reads only the former; secrets of type
   * `kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg` need no annotation).
   * Tekton merges them into `$(credentials.path)/.docker/config.json` (`/tekton/creds`),
   * which the step hands to skopeo with `--authfile`. Tekton also copies that file into
   * `$HOME`, but only where `$HOME` is writable, so it is not relied on. When no docker
   * secret is linked, the step goes without credentials (and says so).
   */
  public static fromServiceAccount(): RegistryCredentials {
    return new RegistryCredentials(RegistryCredentialsSource.SERVICE_ACCOUNT_DOCKER_CONFIG, undefined);
  }

  /**
   * The token Kubernetes mounts into every pod of the service account
   * (`/var/run/secrets/kubernetes.io/serviceaccount/token`), as the password of user
   * `serviceaccount`: the OpenShift internal registry accepts it, and lets the
   * `pipeline` service account push to its own namespace (role `system:image-builder`).
   * The step writes a private authfile (mode 0600, in its emptyDir) for the target's
   * registry only, and never prints the token.
   */
  public static fromServiceAccountToken(): RegistryCredentials {
    return new RegistryCredentials(RegistryCredentialsSource.SERVICE_ACCOUNT_TOKEN, undefined);
  }

  /** Where the credentials come from. */
  public readonly source: RegistryCredentialsSource;
  /** The Secret's name, or undefined for the service account. */
  public readonly secretName?: string;

  private constructor(source: RegistryCredentialsSource, secretName: string | undefined) {
    this.source = source;
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
   * @default RegistryCredentials.fromServiceAccountToken()
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
   * cluster's service CA, with the service account's token as the password.
   */
  public static openshiftInternal(options: OpenShiftInternalTargetOptions): PushTarget {
    validateDnsLabel('openshiftInternal namespace', options.namespace);
    return new PushTarget({
      name: 'internal',
      repository: `${OPENSHIFT_REGISTRY}/${options.namespace}/${options.repository ?? 'modelcars'}`,
      credentials: options.credentials ?? RegistryCredentials.fromServiceAccountToken(),
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
