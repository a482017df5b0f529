"""An OCI distribution client for the streaming publisher (Python standard library only): the two ways registries
authenticate, transient failures retried within a deadline, and blob uploads in chunks that resume where the
registry says it stopped.

- Auth, as a 401's WWW-Authenticate asks: Basic (OpenShift's internal registry, with the service account's token as
  the password), or the Bearer token flow of quay.io and Docker Hub: GET the realm with service and scope (Basic
  credentials when there are some), then the token, renewed when it expires or the registry refuses it. Credentials
  go to the registry's host and to the realm it names, never to a host a redirect names (a blob's storage).
- TLS: the system CAs plus a CA directory; verification stays on unless the target says tlsVerify: false.
- Retries: 408, 429, 5xx and lost connections, with backoff (or the Retry-After asked), counted only while nothing
  progresses, within the step's deadline; anything else fails at once, in the registry's own words.
- Uploads (distribution spec, "Pushing a blob in chunks"): POST opens a session, each PATCH sends a chunk with its
  Content-Range, and the final PUT names the digest, which the registry checks. When a PATCH is lost (the
  connection cut, a 5xx, no answer), GET on the session's URL tells the offset the registry holds (204, Range
  0-<last byte>), and the upload goes on from there; a session the registry no longer knows (404
  BLOB_UPLOAD_UNKNOWN: expired, or garbage collected) is started again. docker/distribution answers "0-0" for an
  empty session as for one byte: a chunk resent from 0 over one byte gets 416, and the blob starts again.
"""

import base64
import hashlib
import http.client
import json
import random
import re
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request

from ca_trust import *

MANIFEST_TYPES = ('application/vnd.oci.image.index.v1+json', 'application/vnd.oci.image.manifest.v1+json',
                  'application/vnd.docker.distribution.manifest.list.v2+json',
                  'application/vnd.docker.distribution.manifest.v2+json')
PARAM_RE = re.compile(r'(\w+)\s*=\s*"([^"]*)"')
MAX_JSON = 16 * 1024 * 1024
IDLE_SECONDS = 2.0
# What a kept-alive connection the server closed meanwhile gives when it is used again.
STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError, http.client.CannotSendRequest, ssl.SSLEOFError)


class RegistryFailure(Exception):
    """What retrying will not fix, in the registry's own words."""


class RegistryRetry(Exception):
    """A failure worth retrying: 408, 429, 5xx, a lost connection. `wait`: the seconds the registry asked for."""

    def __init__(self, message, wait=None):
        super().__init__(message)
        self.wait = wait


class UploadGone(Exception):
    """The upload session cannot go on (expired, unknown, or holding other bytes than sent): start the blob again."""


def registry_words(status, body):
    """The registry's own words for a failed request: its errors' codes and messages, or the start of the body."""
    try:
        errors = json.loads(body.decode('utf-8')).get('errors') or []
        said = '; '.join(f"{e.get('code', '?')}: {e.get('message', '')}" + (f" ({json.dumps(e['detail'])[:300]})" if e.get('detail') else '')
                         for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError, UnicodeDecodeError):
        said = ''
    if not said:
        said = body[:300].decode('utf-8', 'replace').strip() or '(no body)'
    return f'HTTP {status}: {said}'


def docker_credentials(authfile, host):
    """(user, password) for host from a docker config file (auths, by host or URL), or None."""
    try:
        with open(authfile, encoding='utf-8') as f:
            auths = json.load(f).get('auths') or {}
    except (OSError, ValueError, AttributeError) as e:
        raise RegistryFailure(f'cannot read the registry credentials {authfile}: {e}')
    for key, entry in auths.items():
        name = urllib.parse.urlsplit(key).netloc if '://' in key else key.split('/')[0]
        if name != host or not isinstance(entry, dict):
            continue
        if entry.get('auth'):
            user, sep, password = base64.b64decode(entry['auth']).decode('utf-8').partition(':')
            if sep:
                return user, password
        if entry.get('username'):
            return entry['username'], entry.get('password', '')
    return None


class Response(object):
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name):
        return self.headers.get(name.lower(), '')


class Registry(object):
    """One repository of one registry: `host[:port]/path`."""

    def __init__(self, repository, credentials, context, deadline, retries=5, timeout=120.0, backoff=1.0, log=print):
        self.host, _, self.repo = repository.partition('/')
        if not self.host or not self.repo:
            raise RegistryFailure(f'{repository!r} is not host/repository')
        self.repository = repository
        self.credentials = credentials
        self.context = context
        self.deadline, self.retries, self.timeout, self.backoff, self.log = deadline, retries, timeout, backoff, log
        self.local = threading.local()  # each thread its own connections
        self.lock = threading.Lock()
        self.challenge = None  # ('basic', {}) or ('bearer', params), once a 401 said
        self.tokens = {}  # scope -> (token, renew after)
        self.token_requests = 0

    # -- connections --------------------------------------------------------------------------------------------------
    def connection(self, netloc):
        """This thread's connection to netloc: kept alive between requests, but not past IDLE_SECONDS unused (servers
        close idle connections: Go's after its IdleTimeout, node's after 5 s), so a request seldom meets a closed one."""
        pool = self.local.__dict__.setdefault('pool', {})
        conn = pool.get(netloc)
        if conn is not None and time.monotonic() - conn.last_used > IDLE_SECONDS:
            self.drop(netloc)
            conn = None
        if conn is None:
            proxy = https_proxy(netloc)
            if proxy is None:
                conn = http.client.HTTPSConnection(netloc, context=self.context, timeout=self.timeout)
            else:
                # TCP to the proxy, CONNECT netloc, then TLS with netloc's certificate checked end to end.
                conn = http.client.HTTPSConnection(proxy.hostname, proxy.port or 80, context=self.context, timeout=self.timeout)
                auth = {}
                if proxy.username:
                    userinfo = f'{urllib.parse.unquote(proxy.username)}:{urllib.parse.unquote(proxy.password or "")}'
                    auth['Proxy-Authorization'] = 'Basic ' + base64.b64encode(userinfo.encode()).decode()
                host, _, port = netloc.rpartition(':') if netloc.rpartition(':')[2].isdigit() else (netloc, '', '443')
                conn.set_tunnel(host, int(port), headers=auth)
            pool[netloc] = conn
        conn.last_used = time.monotonic()
        return conn

    def drop(self, netloc):
        conn = self.local.__dict__.setdefault('pool', {}).pop(netloc, None)
        if conn is not None:
            conn.close()

    def close(self):
        for conn in self.local.__dict__.get('pool', {}).values():
            conn.close()
        self.local.__dict__['pool'] = {}

    def left(self):
        return self.deadline - time.monotonic()

    def raw(self, method, url, headers, body=b''):
        """One request; a lost connection or a timeout is RegistryRetry."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != 'https':
            raise RegistryFailure(f'refusing {parts.scheme or "relative"} URL {url!r}: registries are reached over TLS only')
        path = parts.path + (f'?{parts.query}' if parts.query else '')
        pool = self.local.__dict__.setdefault('pool', {})
        # A kept-alive connection the server has closed meanwhile fails before any answer: once more on a new one,
        # except a PATCH, which the registry may have taken whole (the answer lost): the upload asks the registry
        # what it holds instead (docker/distribution 2.8 appends a PATCH whatever its Content-Range says).
        again = parts.netloc in pool and method != 'PATCH'
        for fresh in ((False, True) if again else (True,)):
            conn = self.connection(parts.netloc)
            try:
                conn.request(method, path, body=body, headers={'User-Agent': 'cdk8s-modelcar-tekton-stream/1', **headers})
                resp = conn.getresponse()
                break
            except STALE_CONNECTION as e:
                self.drop(parts.netloc)
                if fresh:
                    raise RegistryRetry(f'{method} {parts.netloc}{parts.path}: the connection was closed before an answer ({type(e).__name__})')
            except ssl.SSLCertVerificationError as e:
                self.drop(parts.netloc)
                raise RegistryFailure(f'TLS certificate verification failed for {parts.netloc}: {e.verify_message} '
                                      '(give the registry\'s CA: the target\'s trust)')
            except (OSError, http.client.HTTPException) as e:
                self.drop(parts.netloc)
                what = 'timed out' if isinstance(e, (socket.timeout, TimeoutError)) else f'connection failed ({type(e).__name__}: {e})'
                raise RegistryRetry(f'{method} {parts.netloc}{parts.path}: {what}')
        try:
            data = resp.read(MAX_JSON + 1)  # a HEAD's empty body too: the connection is then ready for the next request
            if len(data) > MAX_JSON:
                raise RegistryFailure(f'{method} {parts.path} answered more than {MAX_JSON} bytes')
            if resp.getheader('Connection', '').lower() == 'close' or not resp.isclosed():
                self.drop(parts.netloc)
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        except (OSError, http.client.HTTPException) as e:
            self.drop(parts.netloc)
            what = 'timed out' if isinstance(e, (socket.timeout, TimeoutError)) else f'connection failed ({type(e).__name__}: {e})'
            raise RegistryRetry(f'{method} {parts.netloc}{parts.path}: {what}')

    # -- auth ---------------------------------------------------------------------------------------------------------
    def authorization(self, scope):
        with self.lock:
            challenge = self.challenge
        if challenge is None:
            return {}
        if challenge[0] == 'basic':
            if not self.credentials:
                raise RegistryFailure(f'{self.host} asks for credentials (Basic) and the target has none')
            return {'Authorization': 'Basic ' + base64.b64encode(':'.join(self.credentials).encode()).decode()}
        return {'Authorization': 'Bearer ' + self.token(challenge[1], scope)}

    def token(self, params, scope, renew=False):
        """A Bearer token for scope from the realm the registry named; cached until it is due to expire."""
        scope_text = f'repository:{self.repo}:{scope}'
        with self.lock:
            cached = self.tokens.get(scope_text)
        if cached and not renew and time.monotonic() < cached[1]:
            return cached[0]
        realm = params.get('realm', '')
        if urllib.parse.urlsplit(realm).scheme != 'https':
            raise RegistryFailure(f'{self.host} names the token realm {realm!r}: only https realms are used')
        query = urllib.parse.urlencode([(k, v) for k, v in (('service', params.get('service')), ('scope', scope_text)) if v])
        headers = {}
        if self.credentials:
            headers['Authorization'] = 'Basic ' + base64.b64encode(':'.join(self.credentials).encode()).decode()
        resp = self.raw('GET', realm + ('&' if '?' in realm else '?') + query, headers)
        self.token_requests += 1
        if resp.status in (408, 429) or resp.status >= 500:
            raise RegistryRetry(f'token service {urllib.parse.urlsplit(realm).netloc}: {registry_words(resp.status, resp.body)}')
        if resp.status != 200:
            who = 'the target\'s credentials' if self.credentials else 'anonymous access (the target has no credentials)'
            raise RegistryFailure(f'the token service {urllib.parse.urlsplit(realm).netloc} of {self.host} refused {who} '
                                  f'for {scope_text}: {registry_words(resp.status, resp.body)}')
        try:
            answer = json.loads(resp.body.decode('utf-8'))
            token = answer.get('token') or answer.get('access_token')
            lifetime = float(answer.get('expires_in') or 60)
        except (ValueError, AttributeError, TypeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryFailure(f'the token service of {self.host} answered without a token')
        with self.lock:
            # Renewed a little before it expires (at least 60 s is the spec's default lifetime).
            self.tokens[scope_text] = (token, time.monotonic() + max(1.0, lifetime - min(30.0, lifetime / 4)))
        return token

    def learn(self, resp, scope):
        """After a 401: the registry's challenge. Returns whether asking again can help."""
        header = resp.header('WWW-Authenticate')
        scheme, _, rest = header.partition(' ')
        params = dict(PARAM_RE.findall(rest))
        scheme = scheme.lower()
        if scheme not in ('basic', 'bearer'):
            raise RegistryFailure(f'{self.host} answered 401 with an authentication scheme this client does not speak: {header!r}')
        with self.lock:
            first = self.challenge is None or self.challenge[0] != scheme
            self.challenge = (scheme, params)
        if scheme == 'bearer':
            # A refused token (expired early, revoked): once more with a new one.
            self.token(params, scope, renew=True)
            return True
        return first

    # -- requests -----------------------------------------------------------------------------------------------------
    def url(self, path):
        return path if path.startswith('https://') else f'https://{self.host}/v2/{self.repo}/{path}'

    def once(self, method, path, headers=None, body=b'', scope='pull'):
        """One request with auth (a 401 learns the challenge and asks once more); 408, 429 and 5xx are RegistryRetry."""
        url = self.url(path)
        for _ in range(3):
            resp = self.raw(method, url, {**(headers or {}), **self.authorization(scope)}, body)
            if resp.status != 401 or not self.learn(resp, scope):
                break
        if resp.status == 401:
            raise RegistryFailure(f'{self.host} refused the target\'s credentials for {method} {urllib.parse.urlsplit(url).path}: '
                                  f'{registry_words(resp.status, resp.body)}')
        if resp.status in (408, 429) or resp.status >= 500:
            wait = resp.header('Retry-After')
            self.local.said = f'{method} {urllib.parse.urlsplit(url).path}: {registry_words(resp.status, resp.body)}'
            raise RegistryRetry(self.local.said, float(wait) if wait.isdigit() else None)
        return resp

    def pause(self, error, stalled):
        """Waits before a retry, or raises RegistryFailure when the retries or the deadline are spent."""
        said = getattr(self.local, 'said', None)
        last = f' (the registry\'s last answer: {said})' if said and said != str(error) else ''
        if error.wait is None and stalled >= self.retries:
            raise RegistryFailure(f'{error}; gave up after {stalled} attempts in a row without progress{last}')
        delay = error.wait if error.wait is not None else min(30.0, self.backoff * 2 ** (stalled - 1)) * random.uniform(1.0, 1.2)
        if delay > self.left():
            raise RegistryFailure(f'{error}; no time left before the deadline to retry{last}')
        self.log(f'  {self.host}: {error}; retrying in {delay:.1f}s')
        time.sleep(delay)

    def request(self, method, path, headers=None, body=b'', scope='pull', ok=(200,)):
        """A request retried on transient failures; a status outside `ok` is RegistryFailure, in the registry's words."""
        stalled, self.local.said = 0, None
        while True:
            try:
                resp = self.once(method, path, headers, body, scope)
                break
            except RegistryRetry as e:
                stalled += 1
                self.pause(e, stalled)
        if resp.status not in ok:
            raise RegistryFailure(f'{method} {self.repository} {urllib.parse.urlsplit(self.url(path)).path.rsplit("/", 2)[-2:]}: '
                                  f'{registry_words(resp.status, resp.body)}')
        return resp

    # -- what the publisher asks --------------------------------------------------------------------------------------
    def check_access(self):
        """GET /v2/ with the target's credentials: what the registry thinks of them, in its words (a HEAD has none)."""
        self.request('GET', f'https://{self.host}/v2/', scope='pull,push')

    def manifest(self, reference):
        """(bytes, digest) of a manifest, or None when the registry has none under reference."""
        resp = self.request('GET', f'manifests/{reference}', {'Accept': ', '.join(MANIFEST_TYPES)}, ok=(200, 404))
        if resp.status == 404:
            return None
        return resp.body, 'sha256:' + hashlib.sha256(resp.body).hexdigest()

    def has_blob(self, digest):
        return self.request('HEAD', f'blobs/{digest}', scope='pull,push', ok=(200, 404)).status == 200

    def blob(self, digest, start=0, end=None):
        """A blob's bytes [start, end) (all of it without end, then checked against its digest); a redirect to the
        blob's storage is followed without the registry's credentials."""
        headers = {} if end is None else {'Range': f'bytes={start}-{end - 1}'}
        resp = self.request('GET', f'blobs/{digest}', headers, ok=(200, 206, 301, 302, 303, 307, 308))
        for _ in range(5):
            if resp.status in (200, 206):
                break
            stalled, target = 0, urllib.parse.urljoin(self.url(f'blobs/{digest}'), resp.header('Location'))
            while True:
                try:
                    resp = self.raw('GET', target, headers)
                    if resp.status in (408, 429) or resp.status >= 500:
                        raise RegistryRetry(f'GET blob {digest} from its storage: {registry_words(resp.status, resp.body)}')
                    break
                except RegistryRetry as e:
                    stalled += 1
                    self.pause(e, stalled)
        if resp.status not in (200, 206):
            raise RegistryFailure(f'blob {digest} of {self.repository}: {registry_words(resp.status, resp.body)}')
        data = resp.body if resp.status == 206 or end is None else resp.body[start:end]
        if end is None and 'sha256:' + hashlib.sha256(data).hexdigest() != digest:
            raise RegistryFailure(f'blob {digest} of {self.repository} has other bytes than its digest')
        if end is not None and len(data) != end - start:
            raise RegistryFailure(f'blob {digest} of {self.repository}: asked bytes {start}-{end - 1}, got {len(data)} bytes')
        return data

    def put_manifest(self, reference, media_type, data):
        resp = self.request('PUT', f'manifests/{reference}', {'Content-Type': media_type}, data, 'pull,push', ok=(201, 200))
        said = resp.header('Docker-Content-Digest')
        digest = 'sha256:' + hashlib.sha256(data).hexdigest()
        if said and said != digest:
            raise RegistryFailure(f'{self.repository} stored the manifest as {said}, its bytes are {digest}')
        return digest

    def mount(self, digest, source_repo):
        """Cross-repository mount within this registry: True when the registry mounted it (201)."""
        query = urllib.parse.urlencode({'mount': digest, 'from': source_repo})
        resp = self.request('POST', f'blobs/uploads/?{query}', {'Content-Length': '0'}, b'', 'pull,push', ok=(201, 202))
        if resp.status == 202 and resp.header('Location'):
            self.cancel(self.location(resp))
        return resp.status == 201

    def location(self, resp):
        where = resp.header('Location')
        if not where:
            raise RegistryFailure(f'{self.repository}: an upload answer without Location')
        url = urllib.parse.urljoin(f'https://{self.host}/', where)
        if urllib.parse.urlsplit(url).netloc != self.host:
            raise RegistryFailure(f'{self.repository} moved the upload to another host ({urllib.parse.urlsplit(url).netloc}): refusing to send credentials there')
        return url

    def cancel(self, url):
        try:
            self.once('DELETE', url, scope='pull,push')
        except (RegistryRetry, RegistryFailure):
            pass  # a session left behind expires on its own

    def offset(self, url):
        """The bytes the registry holds of an upload session (GET on its URL)."""
        resp = self.request('GET', url, scope='pull,push', ok=(204, 404))
        if resp.status == 404:
            raise UploadGone(f'the registry no longer knows the upload session ({registry_words(resp.status, resp.body)})')
        match = re.match(r'^(?:bytes=)?0-(\d+)$', resp.header('Range'))
        if not match:
            raise UploadGone(f'the registry answered an upload status without a Range ({resp.header("Range")!r})')
        end = int(match.group(1))
        return (end + 1 if end else 0), self.location(resp)

    def upload(self, source, what):
        """Uploads the blob whose chunks `source.chunks()` yields (a generator made anew for each try); `source.digest()`,
        asked after the last chunk, checks what was read and names the blob. The session is cancelled on any failure:
        nothing is committed unless every chunk was read and checked. Returns (digest, size)."""
        for attempt in range(1, 4):
            url = self.location(self.request('POST', 'blobs/uploads/', {'Content-Length': '0'}, b'', 'pull,push', ok=(202,)))
            sent, chunks = 0, source.chunks()
            try:
                for chunk in chunks:
                    url, sent = self.send(url, chunk, sent, what)
                    chunk = None  # freed before the source fetches the next one: its memory bound holds
                digest = source.digest()
                sep = '&' if '?' in url else '?'
                resp = self.request('PUT', f'{url}{sep}digest={digest}', {'Content-Length': '0'}, b'', 'pull,push', ok=(201, 404))
                if resp.status == 404:
                    raise UploadGone(f'the registry lost the upload session at the commit ({registry_words(resp.status, resp.body)})')
                said = resp.header('Docker-Content-Digest')
                if said and said != digest:
                    raise RegistryFailure(f'{self.repository} committed {what} as {said}, not {digest}')
                return digest, sent
            except UploadGone as e:
                self.cancel(url)
                if attempt == 3:
                    raise RegistryFailure(f'{what}: {e}; three upload sessions lost, giving up')
                self.log(f'  {what}: {e}; starting the blob again (session {attempt + 1} of 3)')
            except BaseException:
                self.cancel(url)
                raise
            finally:
                chunks.close()  # a source still reading (an upload that failed) stops now, not when collected

    def send(self, url, chunk, offset, what):
        """PATCHes `chunk` at `offset`; after a lost request, asks the registry what it holds and sends the rest."""
        end = offset + len(chunk)
        pos, stalled, self.local.said = offset, 0, None
        view = memoryview(chunk)
        while pos < end:
            try:
                resp = self.once('PATCH', url, {'Content-Type': 'application/octet-stream', 'Content-Length': str(end - pos),
                                                'Content-Range': f'{pos}-{end - 1}'}, view[pos - offset:], 'pull,push')
                if resp.status == 202:
                    match = re.match(r'^(?:bytes=)?0-(\d+)$', resp.header('Range'))
                    if match and int(match.group(1)) + 1 != end:
                        raise UploadGone(f'the registry holds {int(match.group(1)) + 1} bytes after a chunk ending at {end}')
                    return self.location(resp), end
                if resp.status == 404:
                    raise UploadGone(f'the registry no longer knows the upload session ({registry_words(resp.status, resp.body)})')
                if resp.status != 416:
                    raise RegistryFailure(f'PATCH {what} to {self.repository}: {registry_words(resp.status, resp.body)}')
                error = RegistryRetry(f'the registry refused the range {pos}-{end - 1} ({registry_words(resp.status, resp.body)})')
            except RegistryRetry as e:
                error = e
            held, url = self.offset(url)
            if held < offset or held > end:
                raise UploadGone(f'the registry holds {held} bytes of {what}, this chunk is {offset}-{end - 1}')
            if held > pos:
                stalled = 0
                self.log(f'  {what}: {error}; the registry holds {held} bytes, resuming there')
            else:
                stalled += 1
                self.pause(error, stalled)
            pos = held
        return url, end

    def upload_bytes(self, data, digest, what):
        """A small blob (config) in one PUT, unless the registry has it."""
        if self.has_blob(digest):
            return
        url = self.location(self.request('POST', 'blobs/uploads/', {'Content-Length': '0'}, b'', 'pull,push', ok=(202,)))
        sep = '&' if '?' in url else '?'
        self.request('PUT', f'{url}{sep}digest={digest}', {'Content-Type': 'application/octet-stream', 'Content-Length': str(len(data))},
                     data, 'pull,push', ok=(201,))
        self.log(f'  {what} {digest}: {len(data)} bytes sent')


def https_proxy(netloc):
    """The proxy for an https netloc from HTTPS_PROXY and NO_PROXY (as urllib, and so the hub's requests, and skopeo
    read them), or None. Only an http:// proxy (CONNECT) is taken."""
    url = urllib.request.getproxies().get('https')
    if not url or urllib.request.proxy_bypass(netloc.rpartition(':')[0] if netloc.rpartition(':')[2].isdigit() else netloc):
        return None
    proxy = urllib.parse.urlsplit(url if '://' in url else 'http://' + url)
    if proxy.scheme != 'http' or not proxy.hostname:
        raise RegistryFailure(f'HTTPS_PROXY {proxy.scheme}://{proxy.hostname}: only an http:// proxy (CONNECT) is supported for registries')
    return proxy


def tls_for(ca_dir, verify, variable):
    """TLS context for a registry: the system CAs and ca_dir; without verify (tlsVerify: false), no checks at all."""
    try:
        context = tls_context(ca_dir, variable)
    except ValueError as e:
        raise RegistryFailure(str(e))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
