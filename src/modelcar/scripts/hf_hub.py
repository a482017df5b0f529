"""Hub access shared by the resolve and fetch steps: config (README, "The download"), TLS, redirects, errors, retries."""

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

from ca_trust import *

MIB = 1024 * 1024
MAX_REDIRECTS = 10
MAX_API_BYTES = 64 * MIB
USER_AGENT = "cdk8s-modelcar-tekton-hf-fetch/2 python/%d.%d" % sys.version_info[:2]
# "namespace/name" of word characters, "-" and "."; no "--" or "..", no "-" or "." at either end.
REPO_RE = re.compile(r"^(\w(?:[\w.-]*\w)?)/(\w(?:[\w.-]*\w)?)$", re.ASCII)
# A branch, tag or sha: none of the characters git forbids in refs.
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
    """Retried after a backoff, or after the wait the hub asks for."""

    def __init__(self, message, wait=None, wait_reason=None):
        super().__init__(message)
        self.wait = wait
        self.wait_reason = wait_reason


class EntryNotFound(Exception):
    """resolve answered 404 for a file the tree listed."""


LOG_LOCK = threading.Lock()


def log(message):
    with LOG_LOCK:  # a print is two writes: the lines of several threads would mix
        print(message, flush=True)


def human_bytes(n):
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def redact_url(url):
    """scheme://host/path only: CDN redirects carry signatures in the query string."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def check_url_allowed(url, what):
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise FetchError(f"{what} {redact_url(url)} has no host")
    if parts.username is not None or parts.password is not None:
        raise FetchError(f"{what} {redact_url(url)} must not carry credentials")
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")):
        raise FetchError(f"{what} {redact_url(url)} is not https: plain http is only allowed for 127.0.0.1/localhost")


def env(name, default=""):
    return os.environ.get(name, "").strip() or default


def env_number(name, default, parse, minimum, maximum):
    raw = env(name)
    try:
        value = parse(raw) if raw else default
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number")
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={raw!r} must be between {minimum} and {maximum}")
    return value


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """open_url follows redirects itself: it decides which headers go to the next host."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Config(object):
    """What both steps read from the environment."""

    def __init__(self):
        self.repo = env("HF_REPO")
        match = REPO_RE.match(self.repo)
        if not match or "--" in self.repo or ".." in self.repo or len(match.group(2)) > 96:
            raise ConfigError(f"HF_REPO={self.repo!r} is not a Hugging Face model id of the form org/name "
                              "(letters, digits, '_', '-', '.'; no '--' or '..')")
        self.revision = env("HF_REVISION", "main")
        if not REVISION_RE.match(self.revision) or ".." in self.revision:
            raise ConfigError(f"HF_REVISION={self.revision!r} is not a valid branch, tag or commit sha")
        # A pattern ending in "/" means everything under that folder.
        self.include, self.exclude = ([p + "*" if p.endswith("/") else p for p in env(n).split()] for n in ("HF_INCLUDE", "HF_EXCLUDE"))
        self.token = env("HF_TOKEN")
        if re.search(r"[\s\x00-\x1f\x7f]", self.token) or not self.token.isascii():
            raise ConfigError("HF_TOKEN contains whitespace, control or non-ASCII characters (value not shown)")
        self.endpoint = env("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
        parts = urllib.parse.urlsplit(self.endpoint)
        if parts.query or parts.fragment:
            raise ConfigError(f"HF_ENDPOINT={redact_url(self.endpoint)} must not have a query or fragment")
        try:
            check_url_allowed(self.endpoint, "HF_ENDPOINT")
        except FetchError as e:
            raise ConfigError(str(e))
        self.endpoint_netloc = parts.netloc
        # The system CAs plus every *.crt of HF_CA_DIR; verification and hostname checks stay on.
        try:
            context = tls_context(env("HF_CA_DIR"), "HF_CA_DIR")
        except ValueError as e:
            raise ConfigError(str(e))
        # The default ProxyHandler stays: HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured.
        self.opener = urllib.request.build_opener(NoRedirect(), urllib.request.HTTPSHandler(context=context))
        self.resolved_revision_file = env("RESOLVED_REVISION_FILE")
        self.model_size_file = env("MODEL_SIZE_FILE")
        self.retries = env_number("HF_RETRIES", 5, int, 1, 100)
        self.deadline_seconds = env_number("HF_DEADLINE_SECONDS", 3300.0, float, 1.0, 7 * 86400.0)
        self.timeout = env_number("HF_TIMEOUT_SECONDS", 60.0, float, 0.001, 86400.0)
        self.backoff = env_number("HF_RETRY_BACKOFF_SECONDS", 2.0, float, 0.0, 3600.0)
        self.deadline = time.monotonic() + self.deadline_seconds
        # When the hub tells one connection to come back later, every connection waits: the limit is per client.
        self.hub_lock = threading.Lock()
        self.hub_not_before = 0.0

    def on_hub(self, url):
        return urllib.parse.urlsplit(url).netloc == self.endpoint_netloc

    def left(self):
        return self.deadline - time.monotonic()


def open_url(cfg, url, extra=None):
    """GET url, following redirects; the token only to the hub's host (a CDN URL is signed, no other host may see it)."""
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_url_allowed(current, "URL")
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(extra or {})}
        if cfg.on_hub(current):
            while (delay := cfg.hub_not_before - time.monotonic()) > 0:  # another connection may extend it meanwhile
                if delay > cfg.left():
                    raise FetchError(f"the hub asked to wait {delay:.0f}s, past the download deadline (HF_DEADLINE_SECONDS={cfg.deadline_seconds:g})")
                time.sleep(min(delay, 1.0))
            if cfg.token:
                headers["Authorization"] = "Bearer " + cfg.token
        try:
            return cfg.opener.open(urllib.request.Request(current, headers=headers), timeout=cfg.timeout)
        except urllib.error.HTTPError as e:
            location = e.headers.get("Location")
            if e.code not in (301, 302, 303, 307, 308):
                raise
            e.close()
            if not location:
                raise FetchError(f"HTTP {e.code} redirect without Location from {redact_url(current)}")
            current = urllib.parse.urljoin(current, location)
    raise FetchError(f"too many redirects (more than {MAX_REDIRECTS}) from {redact_url(url)}")


def server_wait(headers):
    """Seconds to wait, and why: Retry-After (seconds or a date), or RateLimit's reset if no request is left."""
    raw = (headers.get("Retry-After") or "").strip()
    try:
        seconds = float(raw) if raw.isdigit() else email.utils.parsedate_to_datetime(raw).timestamp() - time.time()
        return max(0.0, seconds), "Retry-After: " + raw
    except (TypeError, ValueError):  # none, or not a date
        pass
    raw = headers.get("RateLimit") or ""
    match = RATELIMIT_RE.search(raw)
    if match and int(match.group(1)) == 0:
        return float(match.group(2)), "RateLimit: " + raw.strip()
    return None, None


def classify(exc, cfg, what, not_found):
    """A request's exception as RetryableError, FetchError, EntryNotFound (a 404 when not_found is None) or None."""
    if isinstance(exc, (RetryableError, FetchError, ConfigError, EntryNotFound)):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        code, url = exc.code, redact_url(exc.geturl() or "")
        said = [exc.headers.get(h) for h in ("X-Error-Code", "X-Error-Message") if exc.headers.get(h)]
        detail = f" (hub says: {': '.join(said)})" if said else ""
        if code in (401, 403):
            gated = "; the repo is gated: accept its conditions on the hub with the token's account" if "GatedRepo" in said else ""
            return FetchError(f"HTTP {code} for {what}: token missing or lacks access to {cfg.repo}; set the hf token secret "
                              f"(HF_TOKEN was {'set' if cfg.token else 'not set'}){gated}{detail}")
        if code == 404:
            return EntryNotFound(detail) if not_found is None else FetchError(f"HTTP 404 for {what} ({url}): {not_found}{detail}")
        if code in (408, 429) or code >= 500:
            return RetryableError(f"HTTP {code} for {what} ({url})", *server_wait(exc.headers))
        return FetchError(f"HTTP {code} for {what} ({url}){detail}")
    connecting = isinstance(exc, urllib.error.URLError)  # what fails before a response, wrapped by urllib
    reason = exc.reason if connecting else exc
    if isinstance(reason, ssl.SSLCertVerificationError):
        return FetchError(f"TLS certificate verification failed for {what}: {reason} (give the hub's CA: hubTrust / HF_CA_DIR)")
    if isinstance(reason, TimeoutError):
        return RetryableError(f"timed out after {cfg.timeout:g}s {'connecting' if connecting else 'waiting'} for {what}")
    if connecting:
        return RetryableError(f"cannot reach the hub for {what}: {reason}")
    if isinstance(exc, (ConnectionError, http.client.HTTPException, ssl.SSLError)):
        return RetryableError(f"connection failed during {what}: {type(exc).__name__}: {exc}")
    return None


class Budget(object):
    """The retries of one request: attempts in a row without progress (so a CDN that cuts every few hundred
    MiB never exhausts them), within the deadline; a wait the server asks for is waited out."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.stalled = 0

    def failed(self, error):
        cfg = self.cfg
        if error.wait is not None:
            delay = error.wait + random.uniform(0.0, 0.5)
            if delay > cfg.left():
                raise FetchError(f"{error}; the hub asks to wait {error.wait:.0f}s ({error.wait_reason}), past the download deadline "
                                 f"in {max(0.0, cfg.left()):.0f}s (HF_DEADLINE_SECONDS={cfg.deadline_seconds:g})")
            with cfg.hub_lock:
                cfg.hub_not_before = max(cfg.hub_not_before, time.monotonic() + delay)
            log(f"  rate limited: {error}; waiting {delay:.1f}s as the hub asks ({error.wait_reason})")
        else:
            self.stalled += 1
            if self.stalled >= cfg.retries:
                raise FetchError(f"{error}; giving up after {self.stalled} attempt(s) in a row without progress (HF_RETRIES={cfg.retries})")
            delay = min(60.0, cfg.backoff * 2 ** (self.stalled - 1))
            delay += random.uniform(0, delay / 10.0)
            if delay > cfg.left():
                raise FetchError(f"{error}; no time left before the download deadline (HF_DEADLINE_SECONDS={cfg.deadline_seconds:g})")
            log(f"  attempt {self.stalled}/{cfg.retries} without progress failed: {error}; retrying in {delay:.1f}s")
        time.sleep(delay)


def read_json(cfg, url, what, not_found):
    """The JSON body of an API response and its Link header; transient failures are retried."""
    budget = Budget(cfg)
    while True:
        try:
            body = bytearray()
            with open_url(cfg, url) as response:
                length, link = response.headers.get("Content-Length"), response.headers.get("Link")
                while len(body) <= MAX_API_BYTES and (chunk := response.read(MIB)):
                    body += chunk
            if len(body) > MAX_API_BYTES:
                raise FetchError(f"hub response for {what} is larger than {human_bytes(MAX_API_BYTES)}")
            if length and length.isdigit() and len(body) < int(length):
                raise RetryableError(f"hub response for {what} was cut short ({len(body)} of {length} bytes)")
            try:
                return json.loads(body.decode("utf-8")), link
            except ValueError as e:
                raise FetchError(f"hub response for {what} is not JSON: {e}")
        except Exception as exc:  # noqa: BLE001 - classified below
            error = classify(exc, cfg, what, not_found)
            if not isinstance(error, RetryableError):
                raise error or exc
            budget.failed(error)


def log_start(name, cfg, more=""):
    log(f"{name}: {cfg.repo}@{cfg.revision} from {redact_url(cfg.endpoint)}")
    log(f"  include: {' '.join(cfg.include) or '(everything)'}; exclude: {' '.join(cfg.exclude) or '(nothing)'}; "
        f"token: {'set' if cfg.token else 'not set'}{more}")


def write_results(cfg, sha, size):
    # Tekton results: plain writes (a temporary name would sit in /tekton/results/ meanwhile).
    for path, text in ((cfg.model_size_file, str(size)), (cfg.resolved_revision_file, sha)):
        if path:
            with open(path, "w") as handle:
                handle.write(text)
    if cfg.resolved_revision_file:
        log(f"wrote commit {sha} to {cfg.resolved_revision_file}")


def terminate(signum, _frame):
    raise SystemExit(128 + signum)  # Tekton stops a step with SIGTERM; a download keeps its partial files


def run_step(name, make_config, step):
    """step(make_config()); exit status 0 on success, 2 for a configuration error, 1 for any other failure."""
    os.umask(0o002)  # later tasks may run under another uid of the same group
    signal.signal(signal.SIGTERM, terminate)
    try:
        cfg = make_config()
    except ConfigError as e:
        print(f"{name}: configuration error: {e}", file=sys.stderr, flush=True)
        return 2
    try:
        step(cfg)
    except (FetchError, ConfigError, OSError) as e:
        print(f"{name}: error: {e}", file=sys.stderr, flush=True)
        return 1
    return 0
