"""Hugging Face hub access shared by the resolve and fetch steps: configuration from the environment,
TLS, requests and redirects, error classification, retries, JSON reads. Standard library only; the
environment and the hub API it uses are described in the README ("The download")."""

import email.utils
import http.client
import json
import os
import random
import re
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

MIB = 1024 * 1024
READ_SIZE = MIB
MAX_REDIRECTS = 10
MAX_API_BYTES = 64 * MIB
MAX_BACKOFF_SECONDS = 60.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
USER_AGENT = "cdk8s-modelcar-tekton-hf-fetch/2 python/%d.%d" % sys.version_info[:2]
# Hub repo ids: "namespace/name" of word characters, "-" and "."; no "--" or "..", neither "-" nor "."
# at either end, a name of at most 96 characters.
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
REPO_RE = re.compile(r"^(%s)/(%s)$" % (_REPO_PART, _REPO_PART))
# A branch, tag or sha: none of the whitespace, control or other characters git forbids in refs.
REVISION_RE = re.compile(r"^[^\s\x00-\x1f\x7f~^:?*\[\\]{1,255}$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# The IETF RateLimit header the hub sends: "<policy>";r=<requests left>;t=<seconds to the reset>.
RATELIMIT_RE = re.compile(r'"?[\w-]*"?\s*;\s*r\s*=\s*(\d+)\s*;\s*t\s*=\s*(\d+)')


class ConfigError(Exception):
    """Bad input: exit 2."""


class FetchError(Exception):
    """A failure that retrying will not fix: exit 1."""


class RetryableError(Exception):
    """A transient failure (connection, timeout, 5xx, 429): retried after a backoff, or after the wait the hub asks for."""

    def __init__(self, message, wait=None, wait_reason=None):
        super().__init__(message)
        self.wait = wait
        self.wait_reason = wait_reason


class EntryNotFound(Exception):
    """resolve answered 404 for a file the tree listed."""


LOG_LOCK = threading.Lock()


def log(message):
    with LOG_LOCK:  # one print is two writes: lines of several threads would mix
        print(message, flush=True)


def human_bytes(n):
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return "%d B" % n if unit == "B" else "%.1f %s" % (value, unit)
        value /= 1024
    return "%.1f TiB" % value


def redact_url(url):
    """scheme://host/path only: CDN redirects carry signatures in the query string."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def check_url_allowed(url, what):
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise FetchError("%s %s has no host" % (what, redact_url(url)))
    if parts.username is not None or parts.password is not None:
        raise FetchError("%s %s must not carry credentials" % (what, redact_url(url)))
    if parts.scheme != "https" and not (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        raise FetchError("%s %s is not https: plain http is only allowed for 127.0.0.1/localhost" % (what, redact_url(url)))


def env(name, default=""):
    return os.environ.get(name) or default


def env_number(name, default, parse, minimum, maximum):
    raw = env(name).strip()
    if raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError("%s=%r is not a number" % (name, raw))
    if not minimum <= value <= maximum:
        raise ConfigError("%s=%r must be between %s and %s" % (name, raw, minimum, maximum))
    return value


def env_patterns(name):
    # A pattern ending in "/" means everything under that folder.
    return [p + "*" if p.endswith("/") else p for p in env(name).split()]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """open_url follows redirects itself: it decides which headers go to the next host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def tls_context(ca_dir):
    """The system CAs plus every *.crt of ca_dir; verification and hostname checks stay on."""
    context = ssl.create_default_context()
    if ca_dir:
        found = sorted(n for n in os.listdir(ca_dir) if n.endswith(".crt"))
        if not found:
            raise ConfigError("HF_CA_DIR=%s holds no *.crt file" % ca_dir)
        for name in found:
            try:
                context.load_verify_locations(cafile=os.path.join(ca_dir, name))
            except (ssl.SSLError, OSError) as e:
                raise ConfigError("cannot load CA certificate %s: %s" % (os.path.join(ca_dir, name), e))
    return context


class Config(object):
    """What both steps read from the environment; the fetch step adds its own."""

    def __init__(self):
        self.repo = env("HF_REPO").strip()
        match = REPO_RE.match(self.repo)
        if not match or "--" in self.repo or ".." in self.repo or len(match.group(2)) > 96:
            raise ConfigError("HF_REPO=%r is not a Hugging Face model id of the form org/name "
                              "(letters, digits, '_', '-', '.'; no '--' or '..')" % self.repo)
        self.revision = env("HF_REVISION", "main").strip()
        if not REVISION_RE.match(self.revision) or ".." in self.revision:
            raise ConfigError("HF_REVISION=%r is not a valid branch, tag or commit sha" % self.revision)
        self.include = env_patterns("HF_INCLUDE")
        self.exclude = env_patterns("HF_EXCLUDE")
        self.token = env("HF_TOKEN").strip() or None
        if self.token and (re.search(r"[\s\x00-\x1f\x7f]", self.token) or not self.token.isascii()):
            raise ConfigError("HF_TOKEN contains whitespace, control or non-ASCII characters (value not shown)")
        self.endpoint = env("HF_ENDPOINT", "https://huggingface.co").strip().rstrip("/")
        parts = urllib.parse.urlsplit(self.endpoint)
        if parts.query or parts.fragment:
            raise ConfigError("HF_ENDPOINT=%s must not have a query or fragment" % redact_url(self.endpoint))
        try:
            check_url_allowed(self.endpoint, "HF_ENDPOINT")
        except FetchError as e:
            raise ConfigError(str(e))
        self.endpoint_netloc = parts.netloc
        ca_dir = env("HF_CA_DIR").strip()
        if ca_dir and not os.path.isdir(ca_dir):
            raise ConfigError("HF_CA_DIR=%s is not a directory" % ca_dir)
        # The default ProxyHandler stays: HTTPS_PROXY / HTTP_PROXY / NO_PROXY are honoured.
        self.opener = urllib.request.build_opener(NoRedirect(), urllib.request.HTTPSHandler(context=tls_context(ca_dir)))
        self.resolved_revision_file = env("RESOLVED_REVISION_FILE").strip()
        self.model_size_file = env("MODEL_SIZE_FILE").strip()
        self.retries = env_number("HF_RETRIES", 5, int, 1, 100)
        self.deadline_seconds = env_number("HF_DEADLINE_SECONDS", 3300.0, float, 1.0, 7 * 86400.0)
        self.timeout = env_number("HF_TIMEOUT_SECONDS", 60.0, float, 0.001, 86400.0)
        self.backoff = env_number("HF_RETRY_BACKOFF_SECONDS", 2.0, float, 0.0, 3600.0)
        self.deadline = time.monotonic() + self.deadline_seconds

    def headers_for(self, url):
        """The token goes to the endpoint's host only: a CDN URL is signed, and another host must never see it."""
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if self.token and self.on_hub(url):
            headers["Authorization"] = "Bearer " + self.token
        return headers

    def on_hub(self, url):
        return urllib.parse.urlsplit(url).netloc == self.endpoint_netloc

    def left(self):
        return self.deadline - time.monotonic()


class HubGate(object):
    """When the hub tells one connection to come back in N s, every connection waits: the limit is per client."""

    def __init__(self):
        self.lock = threading.Lock()
        self.not_before = 0.0

    def hold(self, seconds):
        with self.lock:
            self.not_before = max(self.not_before, time.monotonic() + seconds)

    def wait(self, cfg):
        while True:
            with self.lock:
                delay = self.not_before - time.monotonic()
            if delay <= 0:
                return
            if delay > cfg.left():
                raise FetchError("the hub asked to wait %.0fs, past the download deadline (HF_DEADLINE_SECONDS=%g)" % (delay, cfg.deadline_seconds))
            time.sleep(min(delay, 1.0))


GATE = HubGate()


def open_url(cfg, url, extra=None):
    """GET url, following up to MAX_REDIRECTS redirects with headers chosen per hop (the token on the
    hub's host only); returns a 2xx response or raises HTTPError."""
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_url_allowed(current, "URL")
        if cfg.on_hub(current):
            GATE.wait(cfg)
        headers = cfg.headers_for(current)
        headers.update(extra or {})
        try:
            return cfg.opener.open(urllib.request.Request(current, headers=headers), timeout=cfg.timeout)
        except urllib.error.HTTPError as e:
            if e.code not in (301, 302, 303, 307, 308):
                raise
            location = e.headers.get("Location")
            e.close()
            if not location:
                raise FetchError("HTTP %d redirect without Location from %s" % (e.code, redact_url(current)))
            current = urllib.parse.urljoin(current, location)
    raise FetchError("too many redirects (more than %d) from %s" % (MAX_REDIRECTS, redact_url(url)))


def hub_error_detail(headers):
    details = [d for d in (headers.get("X-Error-Code"), headers.get("X-Error-Message")) if d] if headers else []
    return " (hub says: %s)" % ": ".join(details) if details else ""


def server_wait(headers):
    """Seconds the server asks us to wait, and why: Retry-After (seconds or an HTTP date), or the
    RateLimit header's reset when no request is left in the window."""
    raw = (headers.get("Retry-After") or "").strip() if headers else ""
    if raw.isdigit():
        return float(raw), "Retry-After: " + raw
    if raw:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(raw).timestamp() - time.time()), "Retry-After: " + raw
        except (TypeError, ValueError):
            pass
    raw = headers.get("RateLimit") if headers else None
    match = RATELIMIT_RE.search(raw or "")
    if match and int(match.group(1)) == 0:
        return float(match.group(2)), "RateLimit: " + raw.strip()
    return None, None


def classify(exc, cfg, what, not_found):
    """What a request's exception means: RetryableError, FetchError, EntryNotFound (a 404 when
    not_found is None: the caller decides) or None (not a request failure)."""
    if isinstance(exc, (RetryableError, FetchError, ConfigError, EntryNotFound)):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        url, detail = redact_url(exc.geturl() or ""), hub_error_detail(exc.headers)
        if exc.code in (401, 403):
            gated = exc.headers is not None and exc.headers.get("X-Error-Code") == "GatedRepo"
            return FetchError("HTTP %d for %s: token missing or lacks access to %s; set the hf token secret (HF_TOKEN %s)%s%s"
                              % (exc.code, what, cfg.repo, "was set" if cfg.token else "was not set",
                                 "; the repo is gated: accept its conditions on the hub with the token's account" if gated else "", detail))
        if exc.code == 404:
            if not_found is None:
                return EntryNotFound(detail)
            return FetchError("HTTP 404 for %s (%s): %s%s" % (what, url, not_found, detail))
        if exc.code in (408, 429) or 500 <= exc.code <= 599:
            return RetryableError("HTTP %d for %s (%s)" % (exc.code, what, url), *server_wait(exc.headers))
        return FetchError("HTTP %d for %s (%s)%s" % (exc.code, what, url, detail))
    connecting = isinstance(exc, urllib.error.URLError)  # urllib wraps what fails before the response
    reason = exc.reason if connecting else exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return FetchError("TLS certificate verification failed for %s: %s (give the hub's CA: hubTrust / HF_CA_DIR)" % (what, reason))
    if isinstance(reason, TimeoutError):
        return RetryableError("timed out after %gs %s for %s" % (cfg.timeout, "connecting" if connecting else "waiting", what))
    if connecting:
        return RetryableError("cannot reach the hub for %s: %s" % (what, reason))
    if isinstance(exc, (ConnectionError, http.client.HTTPException, ssl.SSLError)):
        return RetryableError("connection failed during %s: %s: %s" % (what, type(exc).__name__, exc))
    return None


class Budget(object):
    """The retry budget of one request: attempts in a row without progress, within the overall deadline.

    An attempt that received bytes resets the count and the backoff, so a connection the CDN cuts every
    few hundred MiB never exhausts it; a wait the server asks for (Retry-After, RateLimit) is waited out."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.stalled = 0

    def failed(self, error):
        cfg = self.cfg
        if error.wait is not None:
            delay = error.wait + random.uniform(0.0, 0.5)
            if delay > cfg.left():
                raise FetchError("%s; the hub asks to wait %.0fs (%s), past the download deadline in %.0fs (HF_DEADLINE_SECONDS=%g)"
                                 % (error, error.wait, error.wait_reason, max(0.0, cfg.left()), cfg.deadline_seconds))
            GATE.hold(delay)
            log("  rate limited: %s; waiting %.1fs as the hub asks (%s)" % (error, delay, error.wait_reason))
            time.sleep(delay)
            return
        self.stalled += 1
        if self.stalled >= cfg.retries:
            raise FetchError("%s; giving up after %d attempt(s) in a row without progress (HF_RETRIES=%d)" % (error, self.stalled, cfg.retries))
        delay = min(MAX_BACKOFF_SECONDS, cfg.backoff * 2 ** (self.stalled - 1))
        delay += random.uniform(0, delay / 10.0)
        if delay > cfg.left():
            raise FetchError("%s; no time left before the download deadline (HF_DEADLINE_SECONDS=%g)" % (error, cfg.deadline_seconds))
        log("  attempt %d/%d without progress failed: %s; retrying in %.1fs" % (self.stalled, cfg.retries, error, delay))
        time.sleep(delay)


def read_json(cfg, url, what, not_found):
    """The JSON body of an API response and its Link header; transient failures are retried."""
    budget = Budget(cfg)
    while True:
        try:
            chunks, size = [], 0
            with open_url(cfg, url) as response:
                length, link = response.headers.get("Content-Length"), response.headers.get("Link")
                while size <= MAX_API_BYTES:
                    chunk = response.read(READ_SIZE)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
            body = b"".join(chunks)
            if len(body) > MAX_API_BYTES:
                raise FetchError("hub response for %s is larger than %s" % (what, human_bytes(MAX_API_BYTES)))
            if length is not None and length.isdigit() and len(body) < int(length):
                raise RetryableError("hub response for %s was cut short (%d of %s bytes)" % (what, len(body), length))
            try:
                return json.loads(body.decode("utf-8")), link
            except ValueError as e:
                raise FetchError("hub response for %s is not JSON: %s" % (what, e))
        except Exception as exc:  # noqa: BLE001 - classified below
            error = classify(exc, cfg, what, not_found)
            if not isinstance(error, RetryableError):
                raise error or exc
            budget.failed(error)


def log_start(name, cfg, more=""):
    log("%s: %s@%s from %s" % (name, cfg.repo, cfg.revision, redact_url(cfg.endpoint)))
    log("  include: %s; exclude: %s; token: %s%s" % (" ".join(cfg.include) or "(everything)", " ".join(cfg.exclude) or "(nothing)",
                                                      "set" if cfg.token else "not set", more))


def write_results(cfg, sha, size):
    # Tekton results: plain writes (a temporary name would sit in /tekton/results/ meanwhile).
    for path, text in ((cfg.model_size_file, str(size)), (cfg.resolved_revision_file, sha)):
        if path:
            with open(path, "w") as handle:
                handle.write(text)
    if cfg.resolved_revision_file:
        log("wrote commit %s to %s" % (sha, cfg.resolved_revision_file))


def terminate(signum, _frame):
    # Tekton stops a step with SIGTERM: exit (the fetch keeps its partial files for a retry).
    raise SystemExit(128 + signum)


def run_step(name, make_config, step):
    """step(make_config()); exit status 0 on success, 2 for a configuration error, 1 for any other failure."""
    os.umask(0o002)  # later tasks may run under another uid of the same group
    signal.signal(signal.SIGTERM, terminate)
    try:
        cfg = make_config()
    except ConfigError as e:
        print("%s: configuration error: %s" % (name, e), file=sys.stderr, flush=True)
        return 2
    try:
        step(cfg)
    except (FetchError, ConfigError, OSError) as e:
        print("%s: error: %s" % (name, e), file=sys.stderr, flush=True)
        return 1
    return 0
