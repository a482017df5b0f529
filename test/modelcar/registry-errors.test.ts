/**
 * The registry error classifier of the step scripts (src/modelcar/scripts/registry-errors.sh), over a fixed table:
 * error lines in the forms containers/image and distribution print (read in their source: docker/errors.go and
 * its tests, docker/distribution_error.go, copy/digesting_reader.go, registry/api/errcode), and adversarial
 * lines whose ports, digests, upload ids and repository names hold 401, 403, 404, 429 or "certificate".
 * The lines skopeo really prints against the test registries are captured and classified in
 * test/e2e/modelcar/registry-errors.test.ts.
 */
import { loadScript } from '../../src/modelcar/scripts';
import { diagnose, SHELLS } from '../support/registry-errors';

/** skopeo's fatal line, as logrus prints it without a terminal. */
const fatal = (msg: string) => `time="2026-12-01T18:00:00Z" level=fatal msg="${msg.replace(/"/g, '\\"')}"\n`;
const retry = (msg: string) => `time="2026-12-01T18:00:00Z" level=warning msg="Failed, retrying in 1s ... (1/3). Error: ${msg.replace(/"/g, '\\"')}"\n`;

const D401 = 'sha256:0e4011f0c3b2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c401';
const D403 = 'sha256:403a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1403';
const D429 = 'sha256:4290aa1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabb429cc';
const D404 = 'sha256:aa404bb0c3b2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b60404';
const UUID401 = '4014a3c2-401b-4403-8429-40140140140f';

/** [what, the tool's whole stderr, the class]. */
const TABLE: [string, string, string][] = [
  // --- documented forms (containers/image's own tests and source), skopeo 1.9 (errcode "code: message") and newer (message only)
  ['401, errcode (1.9)', fatal('reading manifest 1 in 127.0.0.1:5000/base/busybox: unauthorized: authentication required'), 'credentials'],
  ['401, message only (newer)', fatal('reading manifest 1 in quay.io/org/repo: authentication required'), 'credentials'],
  ['401, quay.io wording', fatal('trying to reuse blob sha256:abc at destination: checking whether a blob sha256:abc exists in quay.io/org/repo: unauthorized: access to the requested resource is not authorized'), 'credentials'],
  ['401 from the token endpoint', fatal('initializing source docker://quay.io/org/repo:1: unable to retrieve auth token: invalid username/password: unauthorized: Invalid Username or Password'), 'credentials'],
  ['401 body not JSON (error parsing)', fatal('reading manifest 1 in example.com/x: error parsing HTTP 401 response body: invalid character \'<\' looking for beginning of value: "<html>"'), 'credentials'],
  ['401 StatusCode form', fatal('reading manifest 1 in example.com/x: StatusCode: 401, <html>401 Unauthorized</html>'), 'credentials'],
  ['403, errcode (1.9)', fatal('writing manifest: uploading manifest 1 to quay.io/org/repo: denied: requested access to the resource is denied'), 'denied'],
  ['403, message only (newer)', fatal('reading manifest latest in docker.io/library/this-does-not-exist: requested access to the resource is denied'), 'denied'],
  ['403, default message, no detail (1.9 prints the code alone)', fatal('reading manifest 1 in 127.0.0.1:48401/forbidden-403/x: denied'), 'denied'],
  ['401, default message, no detail (1.9)', fatal('reading manifest 1 in 127.0.0.1:5000/x: unauthorized'), 'credentials'],
  ['429, default message, no detail (1.9)', fatal('reading manifest 1 in 127.0.0.1:5000/x: toomanyrequests'), 'rate-limited'],
  ['503 errcode, default message, no detail (1.9)', fatal('reading manifest 1 in 127.0.0.1:5000/x: unavailable'), 'server-error'],
  ['name unknown, default message, no detail (1.9)', fatal('reading manifest 1 in 127.0.0.1:5000/x: name unknown'), 'not-found'],
  ['403, status only (1.9)', fatal('Requesting bearer token: invalid status code from registry 403 (Forbidden)'), 'denied'],
  ['403, status only (newer)', fatal('Requesting bearer token: received unexpected HTTP status: 403 Forbidden'), 'denied'],
  ['manifest unknown (1.9)', fatal('reading manifest nope in 127.0.0.1:5000/base/busybox: manifest unknown: manifest unknown'), 'not-found'],
  ['manifest unknown (newer)', fatal('reading manifest latest in docker.io/library/busybox: manifest unknown'), 'not-found'],
  ['name unknown', fatal('reading manifest 1 in 127.0.0.1:5000/no/such: name unknown: repository name not known to registry'), 'not-found'],
  ['404 not JSON', fatal('reading manifest 1 in registry.example/x: StatusCode: 404, "Not found\\r"'), 'not-found'],
  ['429 errcode (Docker Hub)', fatal('reading manifest latest in docker.io/library/busybox: toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit'), 'rate-limited'],
  ['429 errcode message only (newer)', fatal('reading manifest latest in docker.io/library/busybox: too many requests'), 'rate-limited'],
  ['429 ErrTooManyRequests', fatal('pinging container registry docker.io: too many requests to registry'), 'rate-limited'],
  ['5xx (newer)', fatal('writing blob: initiating layer upload to /v2/org/repo/blobs/uploads/ in quay.io: received unexpected HTTP status: 503 Service Unavailable'), 'server-error'],
  ['5xx (1.9)', fatal('pinging container registry quay.io: invalid status code from registry 502 (Bad Gateway)'), 'server-error'],
  ['5xx errcode UNAVAILABLE', fatal('reading manifest 1 in quay.io/org/repo: unavailable: service unavailable'), 'server-error'],
  ['untrusted CA', fatal('pinging container registry 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/": x509: certificate signed by unknown authority'), 'tls-untrusted'],
  ['untrusted CA (Go 1.20+)', fatal('pinging container registry quay.io: Get "https://quay.io/v2/": tls: failed to verify certificate: x509: certificate signed by unknown authority'), 'tls-untrusted'],
  ['certificate for another name', fatal('pinging container registry 10.0.0.1:5000: Get "https://10.0.0.1:5000/v2/": x509: certificate is valid for 127.0.0.1, not 10.0.0.1'), 'tls-name'],
  ['certificate without IP SANs', fatal('pinging container registry 10.0.0.1:5000: Get "https://10.0.0.1:5000/v2/": x509: cannot validate certificate for 10.0.0.1 because it doesn\'t contain any IP SANs'), 'tls-name'],
  ['expired certificate', fatal('pinging container registry quay.io: Get "https://quay.io/v2/": x509: certificate has expired or is not yet valid: current time 2026-12-01T18:00:00Z is after 2026-01-01T00:00:00Z'), 'tls-expired'],
  ['plain HTTP', fatal('pinging container registry 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/": http: server gave HTTP response to HTTPS client'), 'plain-http'],
  ['other TLS', fatal('pinging container registry 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/": remote error: tls: handshake failure'), 'tls'],
  ['digest mismatch', fatal('writing blob: happened during read: Digest did not match, expected sha256:1111111111111111111111111111111111111111111111111111111111111111, got sha256:2222222222222222222222222222222222222222222222222222222222222222'), 'digest-mismatch'],
  ['digest invalid (registry side)', fatal('writing blob: uploading layer to https://quay.io/v2/o/r/blobs/uploads/x?digest=sha256%3Aabc: digest invalid: provided digest did not match uploaded content'), 'digest-mismatch'],
  ['digest invalid, default message, no detail (1.9)', fatal('writing blob: uploading layer to https://127.0.0.1:5000/v2/o/r/blobs/uploads/x: digest invalid'), 'digest-mismatch'],
  ['refused', fatal('pinging container registry 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/": dial tcp 127.0.0.1:5000: connect: connection refused'), 'network'],
  ['no such host', fatal('pinging container registry quay.example: Get "https://quay.example/v2/": dial tcp: lookup quay.example on 10.96.0.10:53: no such host'), 'network'],
  ['i/o timeout', fatal('pinging container registry quay.io: Get "https://quay.io/v2/": dial tcp 34.1.2.3:443: i/o timeout'), 'network'],
  ['TLS handshake timeout', fatal('pinging container registry quay.io: Get "https://quay.io/v2/": net/http: TLS handshake timeout'), 'network'],
  ['reset', fatal('writing blob: Patch "https://quay.io/v2/o/r/blobs/uploads/abc": write tcp 10.0.0.2:51234->34.1.2.3:443: write: connection reset by peer'), 'network'],
  ['EOF', fatal('pinging container registry 127.0.0.1:5000: Get "https://127.0.0.1:5000/v2/": EOF'), 'network'],
  ['unknown: a manifest the registry rejects', fatal('writing manifest: uploading manifest 1 to 127.0.0.1:5000/o/r: manifest invalid: manifest invalid'), 'unknown'],
  ['unknown: a local layout problem', fatal('initializing source oci:/x:modelcar: no descriptor found for reference "modelcar"'), 'unknown'],

  // --- adversarial: 401, 403, 404, 429 and "certificate" where they are not a status or a TLS error
  ['port 40133, down (the flake of issue #13)', fatal('pinging container registry 127.0.0.1:40133: Get "https://127.0.0.1:40133/v2/": dial tcp 127.0.0.1:40133: connect: connection refused'), 'network'],
  ['port 24010, down', fatal('pinging container registry 127.0.0.1:24010: Get "https://127.0.0.1:24010/v2/": dial tcp 127.0.0.1:24010: connect: connection refused'), 'network'],
  ['port 4013, 403, 404 and 429 in ports, down', fatal('pinging container registry 127.0.0.1:4403: Get "https://127.0.0.1:4403/v2/": dial tcp 127.0.0.1:40429: connect: connection refused'), 'network'],
  ['port 14290 (429) and 5030 (503), reset', fatal('writing blob: Patch "https://127.0.0.1:14290/v2/x/blobs/uploads/a": read tcp 127.0.0.1:5030->127.0.0.1:14290: read: connection reset by peer'), 'network'],
  ['digests holding 401/403, mismatch', fatal(`writing blob: happened during read: Digest did not match, expected ${D401}, got ${D403}`), 'digest-mismatch'],
  ['digest holding 401, manifest unknown', fatal(`reading manifest ${D401} in 127.0.0.1:40133/org401/model: manifest unknown: manifest unknown`), 'not-found'],
  ['digest holding 429 and 404, unknown error', fatal(`copying image ${D429} to ${D404}: writing manifest: manifest invalid: manifest invalid`), 'unknown'],
  ['upload id holding 401, reset', fatal(`writing blob: Patch "https://127.0.0.1:5000/v2/o/r/blobs/uploads/${UUID401}?_state=x401": EOF`), 'network'],
  ['upload id holding 401, unknown error', fatal(`writing blob: Put "https://127.0.0.1:5000/v2/o/r/blobs/uploads/${UUID401}": blob upload unknown: blob upload unknown to registry`), 'unknown'],
  ['repository "certificate-401/model-403", refused', fatal('pinging container registry 127.0.0.1:4010: Get "https://127.0.0.1:4010/v2/": dial tcp 127.0.0.1:4010: connect: connection refused'.replace('/v2/"', '/v2/certificate-401/model-403"')), 'network'],
  ['repository "certificate-401/x429", name unknown', fatal('reading manifest 1 in 127.0.0.1:4291/certificate-401/x429: name unknown: repository name not known to registry'), 'not-found'],
  ['repository named like a status word, refused', fatal('pinging container registry reg.example:401: Get "https://reg.example:401/v2/": dial tcp: lookup unauthorized-401.example: no such host'), 'network'],
  ['tag "401-unauthorized", manifest unknown', fatal('reading manifest 401-unauthorized in 127.0.0.1:5000/denied/forbidden-403: manifest unknown: manifest unknown'), 'not-found'],
  ['a 401 only in an earlier retry warning: the final error decides', retry('pinging container registry 127.0.0.1:5000: StatusCode: 401, "x"') + fatal('pinging container registry 127.0.0.1:40133: Get "https://127.0.0.1:40133/v2/": dial tcp 127.0.0.1:40133: connect: connection refused'), 'network'],
  ['unknown error with 401 and "certificate" in names', fatal('writing blob: open /workspace/certificate-401/blobs/sha256/401: permission denied'), 'unknown'],
  ['buildah, no logrus prefix (last line counts)', 'Trying to pull 127.0.0.1:40133/base/busybox@sha256:abc...\nError: initializing source docker://127.0.0.1:40133/base/busybox@sha256:abc: pinging container registry 127.0.0.1:40133: Get "https://127.0.0.1:40133/v2/": dial tcp 127.0.0.1:40133: connect: connection refused\n', 'network'],
];

/** The stderr of the table's line `what`. */
const line = (what: string) => TABLE.find(([w]) => w === what)![1];

describe('registry_error_class', () => {
  test.each(SHELLS)('classifies every line of the table in %s', (shell) => {
    const got = diagnose(TABLE.map(([, text]) => text), shell).map((d, i) => [TABLE[i][0], d.klass]);
    expect(got).toEqual(TABLE.map(([what, , klass]) => [what, klass]));
  });

  test('the explanation names the class and what to do, per role', () => {
    const lines: [string, string, string][] = [
      // [stderr, push explanation contains, pull explanation contains]
      [line('401, errcode (1.9)'), 'the registry refused the credentials (401): check the docker config secret or service account of the push target', 'check baseImageCredentials'],
      [line('untrusted CA'), "the registry's TLS certificate is not trusted: give the push target the CA that signed it", 'give baseImageTrust the CA that signed it'],
      [line('digest mismatch'), 'a blob of the artifact no longer matches its digest: the artifact changed after the build', 'the registry served altered or corrupt content'],
      [line('port 40133, down (the flake of issue #13)'), 'cannot reach the registry (after 3 retries)', 'cannot reach the registry'],
    ];
    const got = diagnose(lines.map(([t]) => t), 'dash', true);
    lines.forEach(([, push, pull], i) => {
      expect(got[i].push).toContain(push);
      expect(got[i].pull).toContain(pull);
    });
    // The pull role was given no retry count (buildah's is not known): none is claimed.
    expect(got[3].pull).toBe('cannot reach the registry');
  });

  test('an unknown error says so and gives the tool\'s own words, never a guess', () => {
    const [d] = diagnose([fatal('writing manifest: uploading manifest 1 to 127.0.0.1:40133/o/r: manifest invalid: manifest invalid')], 'dash', true);
    expect(d.klass).toBe('unknown');
    expect(d.push).toBe('the error is not one this step recognises (no diagnosis made); the tool said: writing manifest: uploading manifest 1 to 127.0.0.1:40133/o/r: manifest invalid: manifest invalid');
  });

  test('an empty error output is unknown, not a crash', () => {
    expect(diagnose([''], 'dash', true)[0]).toEqual({ klass: 'unknown', push: 'the error is not one this step recognises (no diagnosis made); the tool said: ', pull: expect.any(String) });
  });
});

describe('embedding', () => {
  test.each(['push.sh', 'layout-base.sh', 'build-buildah.sh'])('%s carries the classifier itself: no file beside the step script is needed', (name) => {
    const script = loadScript(name);
    expect(script).toContain('registry_error_class() {');
    expect(script).toContain('# --- registry-errors.sh, embedded at synth ---');
    expect(script).not.toMatch(/^\. /m);
    expect(script).toMatch(/registry_error_explain \/tmp\/\w+\.err (push|pull)/);
  });
});
