/**
 * STAND-IN FOR THE MODEL REGISTRY (Kubeflow model registry, OpenShift AI's "model registry") behind its
 * authenticating proxy: the one part of the registration that cannot run here. It serves the few REST calls the
 * registration makes (`/api/model_registry/v1alpha3`), keeps its state between runs, and validates every request
 * body and query against the upstream OpenAPI document, vendored as test data with its license
 * (test/support/model-registry-openapi/: kubeflow/model-registry api/openapi/model-registry.yaml, Apache-2.0).
 * Like the upstream server, a body with a field its schema does not have is refused (Go's DisallowUnknownFields in
 * internal/server/openapi), and a `oneOf` with a discriminator is checked against the schema the discriminator
 * maps to. Like the proxy (kube-rbac-proxy), a request without a known Bearer token gets 401 and a token whose
 * account lacks the role gets 403, in the proxy's words.
 */
import * as fs from 'fs';
import * as https from 'https';
import * as path from 'path';
import Ajv, { ValidateFunction } from 'ajv';
import * as yaml from 'js-yaml';

const API = '/api/model_registry/v1alpha3';
const OPENAPI = path.join(__dirname, 'model-registry-openapi', 'model-registry.yaml');

export interface StandInRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly status: number;
  readonly body?: any;
}

export interface StandInModelRegistryOptions {
  /** The server's certificate and key (PEM files). */
  readonly certPath: string;
  readonly keyPath: string;
  /** Bearer token => the account it stands for; `allowed` false gives it 403 (the role missing). */
  readonly tokens: Record<string, { account: string; allowed: boolean }>;
}

type Entity = Record<string, any>;

/** The upstream OpenAPI document's schemas, compiled by name; requests are checked with them. */
class UpstreamSchemas {
  private readonly ajv: Ajv;
  readonly doc: any;
  private readonly cache = new Map<string, ValidateFunction>();

  constructor() {
    this.doc = yaml.load(fs.readFileSync(OPENAPI, 'utf8'));
    // OpenAPI keywords that are not JSON Schema (discriminator, example) are annotations here; the discriminator is
    // applied by `validate` below. Formats as OpenAPI defines them.
    this.ajv = new Ajv({ strict: false, allErrors: true });
    this.ajv.addFormat('int64', /^-?\d+$/);
    this.ajv.addFormat('int32', /^-?\d+$/);
    this.ajv.addFormat('double', true);
    this.ajv.addFormat('byte', /^[A-Za-z0-9+/]*={0,2}$/);
    this.ajv.addFormat('uri', (s: string) => { try { new URL(s); return true; } catch { return false; } });
    this.ajv.addSchema({ $id: 'model-registry.json', components: this.doc.components });
  }

  /** Errors of `value` against schema `name` (empty: valid), the discriminator applied, unknown fields refused. */
  validate(name: string, value: any): string[] {
    const schema = this.doc.components.schemas[name];
    if (schema.discriminator && schema.oneOf) {
      const tag = value?.[schema.discriminator.propertyName];
      const target = schema.discriminator.mapping[tag];
      if (!target) return [`${schema.discriminator.propertyName} "${tag}" is not one of ${Object.keys(schema.discriminator.mapping).join(', ')}`];
      return this.validate(target.split('/').pop(), value);
    }
    let fn = this.cache.get(name);
    if (!fn) {
      fn = this.ajv.getSchema(`model-registry.json#/components/schemas/${name}`)!;
      this.cache.set(name, fn);
    }
    const errors = fn(value) ? [] : (fn.errors ?? []).map((e) => `${e.instancePath || '(body)'} ${e.message}`);
    const known = this.properties(schema);
    for (const key of Object.keys(value ?? {})) if (!known.has(key)) errors.push(`json: unknown field "${key}"`);
    return errors;
  }

  /** Every property a schema names, through $ref and allOf. */
  private properties(schema: any): Set<string> {
    const out = new Set<string>();
    const walk = (s: any) => {
      if (!s) return;
      if (s.$ref) return walk(this.doc.components.schemas[s.$ref.split('/').pop()]);
      for (const k of Object.keys(s.properties ?? {})) out.add(k);
      for (const sub of s.allOf ?? []) walk(sub);
    };
    walk(schema);
    return out;
  }

  /** The pattern of a query parameter, from the document's components.parameters. */
  queryPattern(name: string): RegExp | undefined {
    const p = this.doc.components.parameters[name];
    return p?.schema?.pattern ? new RegExp(p.schema.pattern) : undefined;
  }
}

/** STAND-IN FOR THE MODEL REGISTRY: see the file's comment. */
export class StandInModelRegistry {
  readonly schemas = new UpstreamSchemas();
  readonly requests: StandInRequest[] = [];
  readonly models: Entity[] = [];
  readonly versions: Entity[] = [];
  /** Model artifacts, each with the id of its version (`_version`, not part of the API). */
  readonly artifacts: Entity[] = [];
  private server: https.Server | undefined;
  private readonly rivals: { request: string | RegExp; act: (registry: StandInModelRegistry) => void }[] = [];
  private nextId = 1;
  private port = 0;
  private readonly tokens: Map<string, { account: string; allowed: boolean }>;

  constructor(private readonly opts: StandInModelRegistryOptions) {
    this.tokens = new Map(Object.entries(opts.tokens));
  }

  /** Gives a token to an account (`allowed` false: the role missing), or takes it away (undefined: unknown to the proxy). */
  setToken(token: string, who: { account: string; allowed: boolean } | undefined): void {
    if (who) this.tokens.set(token, who);
    else this.tokens.delete(token);
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const tls = { cert: fs.readFileSync(this.opts.certPath), key: fs.readFileSync(this.opts.keyPath) };
    this.server = https.createServer(tls, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const [status, body, type] = this.handle(req.method ?? 'GET', req.url ?? '/', req.headers.authorization, Buffer.concat(chunks).toString('utf8'));
        res.writeHead(status, { 'Content-Type': type });
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server.address() as any).port;
  }

  /** Stops listening (the registry unreachable); `start()` listens again on the same port, with the same state. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => { s.closeAllConnections(); s.close(() => resolve()); });
  }

  /**
   * Another run, racing: `act` runs once, just before the next request `METHOD /path` (the path under the API's
   * prefix, e.g. `POST /model_versions`) is handled, so that what the client looked up a moment before has changed
   * (say, the version it did not find now exists). `act` gets this registry to change its state as a client would.
   */
  beforeNext(request: string | RegExp, act: (registry: StandInModelRegistry) => void): void {
    this.rivals.push({ request, act });
  }

  /** Creates a registered model, a version or an artifact as another client would (same ids, same checks). @internal */
  _create(kind: 'model' | 'version' | 'artifact', fields: Entity, versionId?: string): Entity {
    const now = String(Date.now());
    const entity = {
      state: 'LIVE', ...fields, ...(versionId ? { _version: versionId } : {}), id: String(this.nextId++), createTimeSinceEpoch: now, lastUpdateTimeSinceEpoch: now,
    };
    (kind === 'model' ? this.models : kind === 'version' ? this.versions : this.artifacts).push(entity);
    return entity;
  }

  /** The requests that changed the state (POST, PATCH). */
  writes(): StandInRequest[] {
    return this.requests.filter((r) => r.method !== 'GET');
  }

  private handle(method: string, rawUrl: string, auth: string | undefined, rawBody: string): [number, any, string] {
    const url = new URL(rawUrl, 'https://stand-in');
    const query = Object.fromEntries(url.searchParams);
    let body: any;
    const answer = (status: number, out: any, type = 'application/json'): [number, any, string] => {
      this.requests.push({ method, path: url.pathname, query, status, body });
      return [status, out, type];
    };
    // The proxy, before the registry: kube-rbac-proxy's own words.
    const token = /^Bearer (.+)$/.exec(auth ?? '')?.[1];
    const who = token !== undefined ? this.tokens.get(token) : undefined;
    if (!who) return answer(401, 'Unauthorized\n', 'text/plain');
    if (!who.allowed) return answer(403, `Forbidden (user=${who.account}, verb=get, resource=services, subresource=)\n`, 'text/plain');
    const error = (status: number, message: string) => answer(status, { code: String(status), message });
    if (rawBody) {
      try {
        body = JSON.parse(rawBody);
      } catch (e) {
        return error(400, `json: ${(e as Error).message}`);
      }
    }
    for (const [k, v] of Object.entries(query)) {
      const pattern = this.schemas.queryPattern(k);
      if (pattern && !pattern.test(v)) return error(400, `query parameter ${k} "${v}" does not match ${pattern.source}`);
    }
    const invalid = (schema: string) => {
      const errors = this.schemas.validate(schema, body);
      return errors.length ? error(400, `body does not match ${schema}: ${errors.join('; ')}`) : undefined;
    };
    const now = () => String(Date.now());
    const created = (fields: Entity): Entity => ({
      ...fields, id: String(this.nextId++), createTimeSinceEpoch: now(), lastUpdateTimeSinceEpoch: now(),
    });
    const p = url.pathname.startsWith(API) ? url.pathname.slice(API.length) : undefined;
    const rival = this.rivals.findIndex((r) => (typeof r.request === 'string' ? r.request === `${method} ${p}` : r.request.test(`${method} ${p}`)));
    if (rival >= 0) this.rivals.splice(rival, 1)[0].act(this);
    let m: RegExpExecArray | null;
    if (method === 'GET' && p === '/registered_model') {
      const found = this.models.find((x) => x.name === query.name);
      return found ? answer(200, found) : error(404, `no registered model found for name=${query.name}`);
    }
    if (method === 'POST' && p === '/registered_models') {
      const bad = invalid('RegisteredModelCreate');
      if (bad) return bad;
      if (this.models.some((x) => x.name === body.name)) return error(409, `registered model with name ${body.name} already exists`);
      const model = created({ state: 'LIVE', ...body });
      this.models.push(model);
      return answer(201, model);
    }
    if (method === 'GET' && p === '/model_version') {
      const found = this.versions.find((x) => x.name === query.name && x.registeredModelId === query.parentResourceId);
      return found ? answer(200, found) : error(404, `no model version found for name=${query.name} parentResourceId=${query.parentResourceId}`);
    }
    if (method === 'POST' && p === '/model_versions') {
      const bad = invalid('ModelVersionCreate');
      if (bad) return bad;
      if (!this.models.some((x) => x.id === body.registeredModelId)) return error(404, `no registered model with id ${body.registeredModelId}`);
      if (this.versions.some((x) => x.name === body.name && x.registeredModelId === body.registeredModelId)) {
        return error(409, `model version with name ${body.name} already exists for registered model ${body.registeredModelId}`);
      }
      const version = created({ state: 'LIVE', ...body });
      this.versions.push(version);
      return answer(201, version);
    }
    if (p && (m = /^\/model_versions\/([^/]+)\/artifacts$/.exec(p))) {
      const versionId = m[1];
      if (!/^[1-9][0-9]{0,8}$/.test(versionId)) return error(400, `modelversionId ${versionId} is not an id`);
      if (!this.versions.some((x) => x.id === versionId)) return error(404, `no model version with id ${versionId}`);
      const own = this.artifacts.filter((a) => a._version === versionId && (!query.artifactType || a.artifactType === query.artifactType));
      const view = (a: Entity) => Object.fromEntries(Object.entries(a).filter(([k]) => k !== '_version'));
      if (method === 'GET') return answer(200, { items: own.map(view), size: own.length, pageSize: Number(query.pageSize ?? 20), nextPageToken: '' });
      if (method === 'POST') {
        const bad = invalid('Artifact');
        if (bad) return bad;
        if (this.artifacts.some((a) => a._version === versionId && a.name === body.name)) return error(409, `artifact with name ${body.name} already exists`);
        const artifact = created({ state: 'LIVE', ...body, _version: versionId });
        this.artifacts.push(artifact);
        return answer(201, view(artifact));
      }
    }
    return error(404, `the stand-in does not serve ${method} ${url.pathname}`);
  }
}

/** Starts a stand-in on 127.0.0.1 (a free port). */
export async function startStandInModelRegistry(opts: StandInModelRegistryOptions): Promise<StandInModelRegistry> {
  const registry = new StandInModelRegistry(opts);
  await registry.start();
  return registry;
}
