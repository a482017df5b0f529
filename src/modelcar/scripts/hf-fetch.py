#!/usr/bin/env python3
"""Download one commit of a Hugging Face model repository into a directory, over several connections.

Runs as a Tekton step script in registry.access.redhat.com/ubi9/python-312 with the
standard library only (no huggingface_hub, no requests), talking to the hub's HTTP API the
way huggingface_hub does (hf_api.list_repo_tree, utils/_pagination.py, file_download.py):

  GET {endpoint}/api/models/{repo}/revision/{revision}
      -> {"sha": <commit>, "siblings": [...]}  (only the commit is used: siblings may be truncated)
  GET {endpoint}/api/models/{repo}/tree/{commit}?recursive=true&expand=false
      -> [{"type": "file", "path", "size", "oid": <git blob id>, "lfs": {"oid": <sha256>, "size"}}, ...]
         further pages through `Link: <url>; rel="next"` (the hub pages its tree listing)
  GET {endpoint}/{repo}/resolve/{commit}/{path}
      -> a small file, or a redirect (LFS/Xet files go to a CDN on another host, with
         X-Repo-Commit and X-Linked-Etag: the commit and the file's sha256)

Every input comes from the environment (never argv):

  HF_REPO                 required, "org/name"
  HF_REVISION             branch, tag or commit sha (default "main")
  HF_INCLUDE, HF_EXCLUDE  space-separated fnmatch globs on the repo-relative path
                          (empty include = every file; a pattern ending in "/" means "everything under")
  HF_TOKEN                optional; sent as "Authorization: Bearer" to the endpoint's host only,
                          never printed, never sent to the host a redirect leads to
  HF_ENDPOINT             default https://huggingface.co; http only for 127.0.0.1/localhost/::1
  HF_CA_DIR               optional directory of PEM CA certificates (*.crt) trusted besides the system CAs
  MODEL_DIR               required, destination directory (created if missing); gets the repo files only
  STATE_DIR               hidden folder for partial files and their state (default: .download beside
                          MODEL_DIR); kept on failure so that a retry resumes
  SUMS_FILE               SHA256SUMS of the model, paths relative to MODEL_DIR (default: SHA256SUMS beside
                          MODEL_DIR, so that no repo file can collide with it), written from the digests
                          checked during the download
  RESOLVED_REVISION_FILE  optional, receives the downloaded commit sha (written last, no newline)
  HF_RESOLVE_ONLY         "true": resolve the revision to its commit, list its files and select them,
                          download nothing (MODEL_DIR is not needed); writes RESOLVED_REVISION_FILE
                          and MODEL_SIZE_FILE. The check before a build needs only these.
  MODEL_SIZE_FILE         optional, receives the model's size in bytes
  HF_CONNECTIONS          parallel connections, shared by files and by byte ranges of large files (default 8)
  HF_CHUNK_BYTES          byte range per request for large files (default 32 MiB)
  HF_RETRIES              attempts in a row WITHOUT progress before a request fails (default 5); an
                          attempt that received bytes resets the count
  HF_DEADLINE_SECONDS     the whole download must end by then, waits included (default 3300)
  HF_TIMEOUT_SECONDS      socket timeout per connect/read, not for the whole file (default 60)
  HF_RETRY_BACKOFF_SECONDS  first backoff delay, doubled per attempt without progress, capped at 60 (default 2)
  PROGRESS_INTERVAL_SECONDS  seconds between progress lines (default 10)
  IMAGE_BYTES_PER_MODEL_BYTE  what the build writes to the same volume per model byte (default 1)
  BUILDER                 the builder's name, for the disk-space message (default "oci-layout")

What huggingface_hub (read at its source) does, and what this does differently:
  - snapshot_download resolves the revision to a commit, then lists the commit with
    list_repo_tree(recursive=True): tree entries carry "oid" (the git blob id), "size" and, for LFS
    files, "lfs": {"oid": sha256, "size", "pointerSize"}; pages follow the Link header (rel="next",
    GitHub's format). We do the same, and refuse a tree that lacks a name the revision's siblings have.
  - it downloads max_workers=8 files at once, one connection per file; here the same 8 connections
    also split large files into ranges, so 4 shards still use 8 connections.
  - its backoff honours Retry-After and, on 429, the IETF RateLimit header ('"api";r=0;t=55':
    r = requests left, t = seconds to the reset); so do we, bounded by the deadline, not by a count.
  - hub responses name the commit (X-Repo-Commit) and an LFS file's sha256 (X-Linked-Etag).

Exit status: 0 on success, 2 for a configuration error, 1 for any other failure.
"""

import email.utils
import fnmatch
import hashlib
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

READ_SIZE = 1024 * 1024
MAX_REDIRECTS = 10
MAX_API_BYTES = 64 * 1024 * 1024
MAX_TREE_PAGES = 10000
MAX_BACKOFF_SECONDS = 60.0
MIB = 1024 * 1024
DEFAULT_ENDPOINT = "https://huggingface.co"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
USER_AGENT = "cdk8s-modelcar-tekton-hf-fetch/2 python/%d.%d" % sys.version_info[:2]
# Room for what the byte counts cannot foresee: the base image, manifests, file system overhead.
SPACE_MARGIN_MIN = 64 * MIB
SPACE_MARGIN_RATIO = 0.02

# Hugging Face repo ids: "namespace/name", word characters, "-" and ".", no "--" or "..",
# not starting or ending with "-" or ".", name at most 96 characters.
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
REPO_RE = re.compile(r"^(%s)/(%s)$" % (_REPO_PART, _REPO_PART))
# A git branch, tag or sha: no whitespace, control characters or the characters git forbids in refs.
REVISION_RE = re.compile(r"^[^\s\x00-\x1f\x7f~^:?*\[\\]{1,255}$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# RateLimit header of the IETF draft the hub follows: "<policy>";r=<remaining>;t=<seconds to reset>.
RATELIMIT_RE = re.compile(r'"?[\w-]*"?\s*;\s*r\s*=\s*(\d+)\s*;\s*t\s*=\s*(\d+)')
LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel\s*=\s*"?next"?')


class ConfigError(Exception):
    """Bad input: exit 2."""


class FetchError(Exception):
    """A failure that retrying will not fix: exit 1."""


class RetryableError(Exception):
    """A transient failure (connection, timeout, 5xx, 429): retried with backoff, or after the wait the hub asks for."""

    def __init__(self, message, wait=None, wait_reason=None):
        super().__init__(message)
        self.wait = wait
        self.wait_reason = wait_reason


class EntryNotFound(Exception):
    """resolve answered 404 for a file the tree listed."""


_log_lock = threading.Lock()


def log(message):
    with _log_lock:
        print(message, flush=True)


def human_bytes(n):
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024
    return "%d B" % n


def mib_per_second(n, seconds):
    return "%.1f MiB/s" % (n / MIB / seconds) if seconds > 0 else "n/a"


def human_seconds(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


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
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and host in LOOPBACK_HOSTS:
        return
    raise FetchError(
        "%s %s is not https: plain http is only allowed for 127.0.0.1/localhost" % (what, redact_url(url))
    )


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def env(name, default=""):
    value = os.environ.get(name, "")
    return value if value != "" else default


def env_number(name, default, parse, minimum, maximum):
    raw = env(name).strip()
    if raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigError("%s=%r is not a number" % (name, raw))
    if not (minimum <= value <= maximum):
        raise ConfigError("%s=%r must be between %s and %s" % (name, raw, minimum, maximum))
    return value


def split_patterns(raw):
    patterns = []
    for pattern in raw.split():
        patterns.append(pattern + "*" if pattern.endswith("/") else pattern)
    return patterns


class Config(object):
    def __init__(self):
        self.repo = env("HF_REPO").strip()
        match = REPO_RE.match(self.repo)
        if not match or "--" in self.repo or ".." in self.repo or len(match.group(2)) > 96:
            raise ConfigError(
                "HF_REPO=%r is not a Hugging Face model id of the form org/name "
                "(letters, digits, '_', '-', '.'; no '--' or '..')" % self.repo
            )

        self.revision = env("HF_REVISION", "main").strip()
        if not REVISION_RE.match(self.revision) or ".." in self.revision:
            raise ConfigError("HF_REVISION=%r is not a valid branch, tag or commit sha" % self.revision)

        self.include = split_patterns(env("HF_INCLUDE"))
        self.exclude = split_patterns(env("HF_EXCLUDE"))

        token = env("HF_TOKEN").strip()
        if token and (re.search(r"[\s\x00-\x1f\x7f]", token) or not token.isascii()):
            raise ConfigError("HF_TOKEN contains whitespace, control or non-ASCII characters (value not shown)")
        self.token = token or None

        endpoint = env("HF_ENDPOINT", DEFAULT_ENDPOINT).strip().rstrip("/")
        parts = urllib.parse.urlsplit(endpoint)
        if parts.query or parts.fragment:
            raise ConfigError("HF_ENDPOINT=%s must not have a query or fragment" % redact_url(endpoint))
        try:
            check_url_allowed(endpoint, "HF_ENDPOINT")
        except FetchError as e:
            raise ConfigError(str(e))
        self.endpoint = endpoint
        self.endpoint_netloc = parts.netloc

        resolve_only = env("HF_RESOLVE_ONLY", "false").strip()
        if resolve_only not in ("true", "false"):
            raise ConfigError("HF_RESOLVE_ONLY=%r must be true or false" % resolve_only)
        self.resolve_only = resolve_only == "true"

        self.ca_dir = env("HF_CA_DIR").strip() or None
        if self.ca_dir and not os.path.isdir(self.ca_dir):
            raise ConfigError("HF_CA_DIR=%s is not a directory" % self.ca_dir)

        model_dir = env("MODEL_DIR").strip()
        if not model_dir:
            if not self.resolve_only:
                raise ConfigError("MODEL_DIR is required (the destination directory)")
            # Resolve only: nothing is written but the results; paths below stay unused.
            model_dir = "/nonexistent/model"
        self.model_dir = os.path.abspath(model_dir)
        parent = os.path.dirname(self.model_dir)
        self.state_dir = os.path.abspath(env("STATE_DIR", os.path.join(parent, ".download")).strip())
        self.sums_file = os.path.abspath(env("SUMS_FILE", os.path.join(parent, "SHA256SUMS")).strip())
        for what, path in (("STATE_DIR", self.state_dir), ("SUMS_FILE", self.sums_file)):
            if os.path.commonpath([self.model_dir, path]) == self.model_dir:
                raise ConfigError("%s=%s must be outside MODEL_DIR=%s: a repo file could collide with it" % (what, path, self.model_dir))

        self.resolved_revision_file = env("RESOLVED_REVISION_FILE").strip() or None
        self.model_size_file = env("MODEL_SIZE_FILE").strip() or None
        self.connections = env_number("HF_CONNECTIONS", 8, int, 1, 64)
        self.chunk_bytes = env_number("HF_CHUNK_BYTES", 32 * MIB, int, 64 * 1024, 1024 * MIB)
        self.retries = env_number("HF_RETRIES", 5, int, 1, 100)
        self.deadline_seconds = env_number("HF_DEADLINE_SECONDS", 3300.0, float, 1.0, 7 * 86400.0)
        self.timeout = env_number("HF_TIMEOUT_SECONDS", 60.0, float, 0.001, 86400.0)
        self.backoff = env_number("HF_RETRY_BACKOFF_SECONDS", 2.0, float, 0.0, 3600.0)
        self.progress_interval = env_number("PROGRESS_INTERVAL_SECONDS", 10.0, float, 0.1, 3600.0)
        self.image_factor = env_number("IMAGE_BYTES_PER_MODEL_BYTE", 1.0, float, 0.0, 100.0)
        self.builder = env("BUILDER", "oci-layout").strip()
        self.deadline = time.monotonic() + self.deadline_seconds

    def headers_for(self, url):
        """The token goes to the endpoint's host only: a CDN URL is signed, and another host must never see it."""
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if self.token and urllib.parse.urlsplit(url).netloc == self.endpoint_netloc:
            headers["Authorization"] = "Bearer " + self.token
        return headers

    def left(self):
        return self.deadline - time.monotonic()


# --------------------------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are followed by open_url, which decides what headers go to the next host."""

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


# The default opener's ProxyHandler honours HTTPS_PROXY / HTTP_PROXY / NO_PROXY.
OPENER = urllib.request.build_opener(_NoRedirect())


def install_opener(cfg):
    global OPENER
    OPENER = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPSHandler(context=tls_context(cfg.ca_dir)))


class HubGate(object):
    """When the hub says "come back in N s" to one connection, every connection waits: the limit is per client."""

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


def open_url(url, headers, cfg, extra=None):
    """GET url, following up to MAX_REDIRECTS redirects; returns a 2xx response or raises HTTPError.

    The headers are computed per hop: Authorization only for the endpoint's host."""
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        check_url_allowed(current, "URL")
        if urllib.parse.urlsplit(current).netloc == cfg.endpoint_netloc:
            GATE.wait(cfg)
        hop = headers(current)
        hop.update(extra or {})
        request = urllib.request.Request(current, headers=hop, method="GET")
        try:
            return OPENER.open(request, timeout=cfg.timeout)
        except urllib.error.HTTPError as e:
            if e.code not in (301, 302, 303, 307, 308):
                raise
            location = e.headers.get("Location")
            e.close()
            if not location:
                raise FetchError("HTTP %d redirect without Location from %s" % (e.code, redact_url(current)))
            current = urllib.parse.urljoin(current, location)
    raise FetchError("too many redirects (more than %d) from %s" % (MAX_REDIRECTS, redact_url(url)))


def hub_error_detail(e):
    code = e.headers.get("X-Error-Code") if e.headers else None
    message = e.headers.get("X-Error-Message") if e.headers else None
    details = [d for d in (code, message) if d]
    return (" (hub says: %s)" % ": ".join(details)) if details else ""


def server_wait(e):
    """Seconds the server asks us to wait, and why: Retry-After (seconds or an HTTP date), or the
    RateLimit header's reset when no request is left in the window."""
    headers = e.headers
    if headers is None:
        return None, None
    raw = headers.get("Retry-After")
    if raw is not None:
        raw = raw.strip()
        if raw.isdigit():
            return float(raw), "Retry-After: %s" % raw
        try:
            when = email.utils.parsedate_to_datetime(raw)
            return max(0.0, when.timestamp() - time.time()), "Retry-After: %s" % raw
        except (TypeError, ValueError):
            pass
    raw = headers.get("RateLimit")
    if raw:
        match = RATELIMIT_RE.search(raw)
        if match and int(match.group(1)) == 0:
            return float(match.group(2)), "RateLimit: %s" % raw.strip()
    return None, None


def classify(exc, cfg, what, not_found):
    """Turn an exception from a request into RetryableError or FetchError (or None: not ours)."""
    if isinstance(exc, (RetryableError, FetchError, ConfigError, EntryNotFound)):
        return exc
    if isinstance(exc, urllib.error.HTTPError):
        url = redact_url(exc.geturl() or "")
        if exc.code in (401, 403):
            gated = exc.headers is not None and exc.headers.get("X-Error-Code") == "GatedRepo"
            return FetchError(
                "HTTP %d for %s: token missing or lacks access to %s; set the hf token secret (HF_TOKEN %s)%s%s"
                % (
                    exc.code,
                    what,
                    cfg.repo,
                    "was set" if cfg.token else "was not set",
                    "; the repo is gated: accept its conditions on the hub with the token's account" if gated else "",
                    hub_error_detail(exc),
                )
            )
        if exc.code == 404:
            if not_found is None:
                return EntryNotFound(hub_error_detail(exc))
            return FetchError("HTTP 404 for %s (%s): %s%s" % (what, url, not_found, hub_error_detail(exc)))
        if exc.code in (408, 429) or 500 <= exc.code <= 599:
            wait, reason = server_wait(exc)
            return RetryableError("HTTP %d for %s (%s)" % (exc.code, what, url), wait, reason)
        return FetchError("HTTP %d for %s (%s)%s" % (exc.code, what, url, hub_error_detail(exc)))
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            return FetchError("TLS certificate verification failed for %s: %s (give the hub's CA: hubTrust / HF_CA_DIR)" % (what, reason))
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return RetryableError("timed out after %gs connecting for %s" % (cfg.timeout, what))
        return RetryableError("cannot reach the hub for %s: %s" % (what, reason))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FetchError("TLS certificate verification failed for %s: %s (give the hub's CA: hubTrust / HF_CA_DIR)" % (what, exc))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return RetryableError("timed out after %gs waiting for %s" % (cfg.timeout, what))
    if isinstance(exc, (ConnectionError, http.client.HTTPException, ssl.SSLError)):
        return RetryableError("connection failed during %s: %s: %s" % (what, type(exc).__name__, exc))
    return None


class Budget(object):
    """The retry budget of one request: attempts in a row without progress, and the overall deadline.

    An attempt that received bytes resets the count and the backoff, so a connection the CDN cuts
    every few hundred MiB never exhausts it; a server that asks to wait (Retry-After, RateLimit) is
    waited for, within the deadline."""

    def __init__(self, cfg, what):
        self.cfg = cfg
        self.what = what
        self.stalled = 0

    def progressed(self):
        self.stalled = 0

    def failed(self, error):
        cfg = self.cfg
        if error.wait is not None:
            delay = error.wait + random.uniform(0.0, 0.5)
            if delay > cfg.left():
                raise FetchError(
                    "%s; the hub asks to wait %.0fs (%s), past the download deadline in %.0fs (HF_DEADLINE_SECONDS=%g)"
                    % (error, error.wait, error.wait_reason, max(0.0, cfg.left()), cfg.deadline_seconds)
                )
            GATE.hold(delay)
            log("  rate limited: %s; waiting %.1fs as the hub asks (%s)" % (error, delay, error.wait_reason))
            time.sleep(delay)
            return
        self.stalled += 1
        if self.stalled >= cfg.retries:
            raise FetchError(
                "%s; giving up after %d attempt(s) in a row without progress (HF_RETRIES=%d)" % (error, self.stalled, cfg.retries)
            )
        delay = min(MAX_BACKOFF_SECONDS, cfg.backoff * (2 ** (self.stalled - 1)))
        delay += random.uniform(0, delay / 10.0)
        if delay > cfg.left():
            raise FetchError("%s; no time left before the download deadline (HF_DEADLINE_SECONDS=%g)" % (error, cfg.deadline_seconds))
        log("  attempt %d/%d without progress failed: %s; retrying in %.1fs" % (self.stalled, cfg.retries, error, delay))
        time.sleep(delay)


def with_retries(cfg, what, not_found, attempt_fn):
    """Run attempt_fn() until it succeeds; only transient failures are retried (API calls: no partial progress)."""
    budget = Budget(cfg, what)
    while True:
        try:
            return attempt_fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            classified = classify(exc, cfg, what, not_found)
            if classified is None:
                raise
            if not isinstance(classified, RetryableError):
                raise classified
            budget.failed(classified)


def read_json(cfg, url, what, not_found):
    def attempt():
        chunks = []
        size = 0
        with open_url(url, cfg.headers_for, cfg) as response:
            length = response.headers.get("Content-Length")
            link = response.headers.get("Link")
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

    return with_retries(cfg, what, not_found, attempt)


# --------------------------------------------------------------------------------------------
# Revision and file list
# --------------------------------------------------------------------------------------------


class RepoFile(object):
    def __init__(self, path, parts, size, blob_id, sha256):
        self.path = path
        self.parts = parts
        self.size = size
        self.blob_id = blob_id  # git blob id (sha1 of "blob <len>\0" + content); of the pointer for LFS files
        self.sha256 = sha256  # the LFS oid, or None for a file stored in git itself
        self.digest = None  # the sha256 checked during the download (or kept from an earlier attempt)


def safe_parts(name):
    """The '/'-separated components of a repo path, or FetchError if it could escape MODEL_DIR."""
    if not isinstance(name, str) or name == "":
        raise FetchError("refusing a file with an empty or non-string name in the hub listing: %r" % (name,))
    if name.startswith("/") or "\\" in name or "\x00" in name or len(name) > 4096:
        raise FetchError("refusing unsafe path %r in the hub listing (absolute, backslash or NUL)" % name)
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise FetchError("refusing unsafe path %r in the hub listing ('..', '.' or empty component)" % name)
    return parts


def listed_size(value, what):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FetchError("hub listing has an invalid size for %s: %r" % (what, value))
    return value


def parse_tree_entry(entry):
    if not isinstance(entry, dict):
        raise FetchError("hub tree entry is not an object: %r" % (entry,))
    kind = entry.get("type")
    name = entry.get("path")
    parts = safe_parts(name)
    if kind == "directory":
        return None
    if kind != "file":
        raise FetchError("hub tree entry %r has an unknown type %r" % (name, kind))
    size = listed_size(entry.get("size"), name)
    blob_id = entry.get("oid")
    if not isinstance(blob_id, str) or not SHA1_RE.match(blob_id):
        raise FetchError("hub tree entry %s has no git blob id ('oid'): %r" % (name, blob_id))
    sha256 = None
    lfs = entry.get("lfs")
    if lfs is not None:
        if not isinstance(lfs, dict):
            raise FetchError("hub tree entry %s has an invalid 'lfs' entry" % name)
        sha256 = lfs.get("oid")
        if not isinstance(sha256, str) or not SHA256_RE.match(sha256.lower()):
            raise FetchError("hub tree entry %s has an invalid lfs oid (sha256): %r" % (name, sha256))
        sha256 = sha256.lower()
        size = listed_size(lfs.get("size", size), name)
    return RepoFile(name, parts, size, blob_id, sha256)


def resolve_commit(cfg):
    url = "%s/api/models/%s/revision/%s" % (cfg.endpoint, cfg.repo, urllib.parse.quote(cfg.revision, safe=""))
    what = "revision %s of %s" % (cfg.revision, cfg.repo)
    info, _ = read_json(cfg, url, what, "repo or revision not found: %s@%s" % (cfg.repo, cfg.revision))
    if not isinstance(info, dict):
        raise FetchError("hub revision response is not a JSON object")
    sha = info.get("sha")
    if not isinstance(sha, str) or not SHA1_RE.match(sha):
        raise FetchError("hub revision response has no commit sha (got %r)" % (sha,))
    siblings = info.get("siblings")
    names = set()
    if isinstance(siblings, list):
        names = {s.get("rfilename") for s in siblings if isinstance(s, dict) and isinstance(s.get("rfilename"), str)}
    return sha, names


def list_tree(cfg, sha):
    """Every file of the commit, from the recursive tree API, page after page (the Link header's next)."""
    url = "%s/api/models/%s/tree/%s?recursive=true&expand=false" % (cfg.endpoint, cfg.repo, sha)
    files = []
    seen = set()
    pages = 0
    while url:
        pages += 1
        if pages > MAX_TREE_PAGES:
            raise FetchError("the hub's tree listing of %s@%s has more than %d pages" % (cfg.repo, sha, MAX_TREE_PAGES))
        what = "the file tree of %s@%s (page %d)" % (cfg.repo, sha, pages)
        entries, link = read_json(cfg, url, what, "repo or commit not found: %s@%s" % (cfg.repo, sha))
        if not isinstance(entries, list):
            raise FetchError("hub tree response (page %d) is not a JSON list" % pages)
        for entry in entries:
            repo_file = parse_tree_entry(entry)
            if repo_file is None:
                continue
            if repo_file.path in seen:
                raise FetchError("the hub's tree listing names %s twice (page %d): refusing an inconsistent listing" % (repo_file.path, pages))
            seen.add(repo_file.path)
            files.append(repo_file)
        url = None
        match = LINK_NEXT_RE.search(link or "")
        if match:
            url = urllib.parse.urljoin(cfg.endpoint + "/", match.group(1))
            if urllib.parse.urlsplit(url).netloc != cfg.endpoint_netloc:
                raise FetchError("the hub's tree listing points its next page to another host (%s): refusing" % redact_url(url))
    return files, pages


def matches_any(path, patterns):
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def select(cfg, files):
    return [
        f
        for f in files
        if (not cfg.include or matches_any(f.path, cfg.include)) and not matches_any(f.path, cfg.exclude)
    ]


# --------------------------------------------------------------------------------------------
# Files on disk
# --------------------------------------------------------------------------------------------


def inside(root, path):
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(path)]) == root


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        log("  warning: could not remove %s: %s" % (path, e))


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class FileState(object):
    """One repo file being downloaded: a preallocated temporary file in STATE_DIR, written at offsets by
    several connections, hashed in order as its ranges complete, then verified and renamed into MODEL_DIR.

    STATE_DIR/<key>.data holds the bytes, <key>.json the ranges already complete (for a Tekton retry),
    <key>.done the checked sha256 (written before the rename, so a kept file's digest is known)."""

    def __init__(self, cfg, sha, repo_file):
        self.cfg = cfg
        self.file = repo_file
        key = hashlib.sha256(("%s\0%s\0%s" % (repo_file.path, repo_file.blob_id, repo_file.sha256)).encode("utf-8")).hexdigest()[:40]
        self.data_path = os.path.join(cfg.state_dir, key + ".data")
        self.state_path = os.path.join(cfg.state_dir, key + ".json")
        self.done_path = os.path.join(cfg.state_dir, key + ".done")
        self.dest = os.path.join(cfg.model_dir, *repo_file.parts)
        self.url = "%s/%s/resolve/%s/%s" % (cfg.endpoint, cfg.repo, sha, urllib.parse.quote(repo_file.path))
        self.sha = sha
        size = repo_file.size
        # Files kept in git are small: one request. LFS files are split into ranges.
        self.chunk = cfg.chunk_bytes if repo_file.sha256 else max(size, 1)
        self.chunks = max(1, -(-size // self.chunk))
        self.complete = [False] * self.chunks
        self.resumed_bytes = 0
        self.lock = threading.Lock()
        self.hashed_chunks = 0
        self.sha256 = hashlib.sha256()
        self.git = hashlib.sha1(b"blob %d\0" % size) if repo_file.sha256 is None else None
        self.fd = None
        self.direct_url = None  # the CDN URL a redirect gave, reused for the other ranges
        self.resolve_lock = threading.Lock()
        self.finished = False
        self.restarted = False

    # -- before the download --------------------------------------------------------------

    def kept(self):
        """True if an earlier attempt verified this file and gave it its final name (a Tekton retry)."""
        try:
            with open(self.done_path) as handle:
                record = json.load(handle)
            st = os.stat(self.dest)
        except (OSError, ValueError):
            return False
        if not isinstance(record, dict) or record.get("size") != self.file.size or st.st_size != self.file.size:
            return False
        digest = record.get("sha256")
        if not isinstance(digest, str) or not SHA256_RE.match(digest):
            return False
        if self.file.sha256 is not None and digest != self.file.sha256:
            return False
        self.file.digest = digest
        return True

    def open(self):
        """Opens (or reopens, on a retry) the temporary file, preallocated to the file's size."""
        state = None
        if os.path.exists(self.data_path):
            try:
                with open(self.state_path) as handle:
                    state = json.load(handle)
            except (OSError, ValueError):
                state = None
            if not (isinstance(state, dict) and state.get("size") == self.file.size and state.get("chunk") == self.chunk
                    and os.path.getsize(self.data_path) == self.file.size):
                state = None
        if state is None:
            remove_quietly(self.data_path)
            remove_quietly(self.state_path)
        self.fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT, 0o664)
        if state is None:
            if self.file.size > 0:
                try:
                    os.posix_fallocate(self.fd, 0, self.file.size)
                except (AttributeError, OSError):
                    os.ftruncate(self.fd, self.file.size)
            self.save_state()
        else:
            for index in state.get("complete", []):
                if isinstance(index, int) and 0 <= index < self.chunks:
                    self.complete[index] = True
                    self.resumed_bytes += self.chunk_end(index) - self.chunk_start(index)

    def chunk_start(self, index):
        return index * self.chunk

    def chunk_end(self, index):
        return min(self.file.size, (index + 1) * self.chunk)

    def pending(self):
        return [i for i in range(self.chunks) if not self.complete[i]]

    def save_state(self):
        write_atomic(self.state_path, json.dumps(
            {"path": self.file.path, "size": self.file.size, "chunk": self.chunk,
             "complete": [i for i in range(self.chunks) if self.complete[i]]}))

    # -- during the download --------------------------------------------------------------

    def chunk_done(self, index):
        """Marks a range complete (and records it for a retry)."""
        with self.lock:
            self.complete[index] = True
            self.save_state()

    def advance(self):
        """Hashes the ranges complete in order since the last call (the hasher thread only);
        True once the whole file is hashed."""
        while True:
            with self.lock:
                nxt = self.hashed_chunks
                if nxt >= self.chunks or not self.complete[nxt]:
                    return nxt >= self.chunks
            self.hash_range(self.chunk_start(nxt), self.chunk_end(nxt))
            with self.lock:
                self.hashed_chunks = nxt + 1

    def hash_range(self, start, end):
        # Read back from the page cache just after it was written: ranges complete out of order, and
        # holding them in memory until their turn would cost connections x chunk of RAM.
        pos = start
        while pos < end:
            data = os.pread(self.fd, min(READ_SIZE * 4, end - pos), pos)
            if not data:
                raise FetchError("%s: the temporary file is shorter than the hub's size" % self.file.path)
            self.sha256.update(data)
            if self.git is not None:
                self.git.update(data)
            pos += len(data)

    def finish(self):
        """Verifies the whole file and gives it its final name (atomic); returns its sha256."""
        digest = self.sha256.hexdigest()
        if self.file.sha256 is not None and digest != self.file.sha256:
            raise DigestMismatch("sha256 mismatch for %s: the hub listed %s, the downloaded file has %s"
                                 % (self.file.path, self.file.sha256, digest))
        if self.git is not None and self.git.hexdigest() != self.file.blob_id:
            raise DigestMismatch("git blob id mismatch for %s: the hub listed %s, the downloaded file has %s"
                                 % (self.file.path, self.file.blob_id, self.git.hexdigest()))
        os.fsync(self.fd)
        os.close(self.fd)
        self.fd = None
        parent = os.path.dirname(self.dest)
        for _ in range(2):  # before creating the directories, and after (a symlink could redirect them)
            if not inside(self.cfg.model_dir, parent):
                raise FetchError("refusing to write %s: it resolves outside MODEL_DIR" % self.file.path)
            os.makedirs(parent, mode=0o775, exist_ok=True)
        os.chmod(self.data_path, 0o664)
        write_atomic(self.done_path, json.dumps({"path": self.file.path, "size": self.file.size, "sha256": digest}))
        os.replace(self.data_path, self.dest)
        fsync_dir(parent)
        remove_quietly(self.state_path)
        self.file.digest = digest
        self.finished = True
        return digest

    def discard(self):
        """Throws away what an earlier attempt left (it did not verify): the file starts over once."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        remove_quietly(self.data_path)
        remove_quietly(self.state_path)
        self.complete = [False] * self.chunks
        self.hashed_chunks = 0
        self.resumed_bytes = 0
        self.sha256 = hashlib.sha256()
        self.git = hashlib.sha1(b"blob %d\0" % self.file.size) if self.file.sha256 is None else None
        self.open()

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class DigestMismatch(FetchError):
    pass


# --------------------------------------------------------------------------------------------
# Transfer
# --------------------------------------------------------------------------------------------


class Progress(object):
    """Shared counters and the periodic progress line (one line per interval, no carriage returns)."""

    def __init__(self, cfg, total, files):
        self.cfg = cfg
        self.total = total
        self.files = files
        self.lock = threading.Lock()
        self.done = 0  # bytes of this attempt's transfer written to disk
        self.base = 0  # bytes already there (kept or resumed)
        self.active = 0
        self.files_done = 0
        self.started = time.monotonic()
        self.last_time = self.started
        self.last_done = 0
        self.stop = threading.Event()

    def add(self, n):
        with self.lock:
            self.done += n

    def connection(self, delta):
        with self.lock:
            self.active += delta

    def file_done(self):
        with self.lock:
            self.files_done += 1

    def line(self, final=False):
        now = time.monotonic()
        with self.lock:
            done, active, files_done = self.done, self.active, self.files_done
        have = self.base + done
        interval = now - self.last_time
        recent = (done - self.last_done) / interval if interval > 0 else 0.0
        self.last_time, self.last_done = now, done
        overall = done / (now - self.started) if now > self.started else 0.0
        left = self.total - have
        eta = human_seconds(left / overall) if overall > 0 and left > 0 else ("0s" if left <= 0 else "unknown")
        percent = (100.0 * have / self.total) if self.total else 100.0
        log("progress: %s of %s (%.0f%%), %s now, %s on average, ETA %s, %d of %d connections in use, %d of %d files done"
            % (human_bytes(have), human_bytes(self.total), percent, mib_per_second(recent, 1.0),
               mib_per_second(overall, 1.0), eta, active, self.cfg.connections, files_done, self.files))

    def run(self):
        while not self.stop.wait(self.cfg.progress_interval):
            self.line()


class Transfer(object):
    """N connections over a shared queue of (file, range) jobs."""

    def __init__(self, cfg, states, progress):
        self.cfg = cfg
        self.states = states
        self.progress = progress
        self.lock = threading.Lock()
        self.jobs = []
        for state in states:
            for index in state.pending():
                self.jobs.append((state, index))
        self.jobs.reverse()  # pop() takes them in order: small files first, then each large file's ranges in order
        self.error = None
        self.ranged = 0
        # One thread hashes (and verifies, syncs, renames) while the connections keep downloading:
        # hashlib releases the GIL, so hashing runs beside the transfers instead of stalling one.
        self.hashq = queue.Queue()
        self.hasher = threading.Thread(target=self.hash_loop, name="hasher", daemon=True)
        self.hasher.start()

    def hash_loop(self):
        while True:
            state = self.hashq.get()
            try:
                if state is None:
                    return
                if self.error is None and not state.finished and state.advance():
                    self.completed(state)
            except BaseException as e:  # noqa: BLE001 - handed to the main thread
                self.fail(e)
            finally:
                self.hashq.task_done()

    def take(self):
        with self.lock:
            if self.error is not None or not self.jobs:
                return None
            return self.jobs.pop()

    def push_back(self, jobs):
        with self.lock:
            self.jobs.extend(reversed(jobs))

    def fail(self, error):
        with self.lock:
            if self.error is None:
                self.error = error

    def worker(self):
        try:
            while True:
                job = self.take()
                if job is None:
                    return
                state, index = job
                self.progress.connection(+1)
                try:
                    self.fetch_range(state, index)
                finally:
                    self.progress.connection(-1)
                state.chunk_done(index)
                self.hashq.put(state)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.fail(e)

    def completed(self, state):
        try:
            digest = state.finish()
        except DigestMismatch as e:
            if state.resumed_bytes > 0 and not state.restarted:
                # What an earlier attempt left did not survive (a node crash loses unflushed pages): start over once.
                log("  %s; the part kept from an earlier attempt is discarded, downloading %s again" % (e, state.file.path))
                state.restarted = True
                state.discard()
                self.push_back([(state, i) for i in state.pending()])
                return
            raise
        self.progress.file_done()
        check = "sha256 verified against the hub's LFS oid" if state.file.sha256 else "git blob id verified, sha256 %s" % digest
        log("  %s: %s, %s" % (state.file.path, human_bytes(state.file.size), check))

    def fetch_range(self, state, index):
        start, end = state.chunk_start(index), state.chunk_end(index)
        if end <= start:
            return
        cfg = self.cfg
        what = "file %s" % state.file.path
        budget = Budget(cfg, what)
        pos = start
        while pos < end:
            if self.error is not None:
                raise FetchError("stopped: another connection failed")
            before = pos
            try:
                pos = self.attempt(state, pos, end)
            except Exception as exc:  # noqa: BLE001 - classified below
                pos = getattr(exc, "pos", pos)
                if pos > before:
                    budget.progressed()
                classified = classify(exc, cfg, what, None)
                if classified is None:
                    raise
                if isinstance(classified, EntryNotFound):
                    if state.direct_url is not None:
                        state.direct_url = None
                        budget.failed(RetryableError("the CDN answered 404 for %s; resolving it again" % state.file.path))
                        continue
                    raise FetchError(
                        "the hub's tree of commit %s lists %s, but resolve does not find it (HTTP 404%s): "
                        "the hub's listing disagrees with itself; retry later or report it to the hub"
                        % (state.sha, state.file.path, str(classified)))
                if isinstance(classified, FetchError) and state.direct_url is not None and isinstance(exc, urllib.error.HTTPError) \
                        and exc.code in (401, 403):
                    # A signed CDN URL expired: ask the hub for a fresh one.
                    state.direct_url = None
                    budget.failed(RetryableError("the CDN refused %s (HTTP %d, an expired signature?); resolving it again" % (state.file.path, exc.code)))
                    continue
                if not isinstance(classified, RetryableError):
                    raise classified
                if pos < end:
                    log("  %s: connection lost at byte %d of %d (%s); resuming from there" % (state.file.path, pos, state.file.size, classified))
                budget.failed(classified) if pos == before or classified.wait is not None else None

    def resolve_direct(self, state):
        """For a file in ranges: asks the hub once where it lives (a 1-byte request that follows the redirect)
        and keeps the CDN's signed URL, so that the other ranges go straight there: no token leaves the hub's
        host, and the hub's resolver limits see one request per file, not one per range."""
        with state.resolve_lock:
            if state.direct_url is not None:
                return
            response = open_url(state.url, self.cfg.headers_for, self.cfg, {"Range": "bytes=0-0"})
            try:
                final_url = response.geturl()
                response.read(1024)
            finally:
                response.close()
            state.direct_url = final_url if urllib.parse.urlsplit(final_url).netloc != self.cfg.endpoint_netloc else ""

    def attempt(self, state, pos, end):
        """One request for [pos, end) of the file; returns the position reached. On an error, the exception
        carries the position reached in `pos` so the next attempt resumes from the last byte received."""
        cfg = self.cfg
        whole = state.chunks == 1 and pos == 0 and end == state.file.size
        extra = {} if whole else {"Range": "bytes=%d-%d" % (pos, end - 1)}
        if state.chunks > 1:
            self.resolve_direct(state)
        url = state.direct_url or state.url
        response = open_url(url, cfg.headers_for, cfg, extra)
        try:
            final_url = response.geturl()
            commit = response.headers.get("X-Repo-Commit")
            if commit and commit != state.sha:
                raise FetchError("resolve of %s answered for commit %s, not the pinned %s" % (state.file.path, commit, state.sha))
            if state.direct_url is None and urllib.parse.urlsplit(final_url).netloc != cfg.endpoint_netloc:
                # The CDN's signed URL: a resumed range goes straight there (no token, fewer hub requests).
                state.direct_url = final_url
            status = response.status
            skip = 0
            if status == 206:
                match = re.match(r"^bytes (\d+)-(\d+)/(\d+|\*)$", response.headers.get("Content-Range") or "")
                if not match or int(match.group(1)) != pos or int(match.group(2)) > end - 1:
                    raise RetryableError("unexpected Content-Range %r for %s (asked bytes=%d-%d)"
                                         % (response.headers.get("Content-Range"), state.file.path, pos, end - 1))
                if match.group(3) != "*" and int(match.group(3)) != state.file.size:
                    raise FetchError("%s has %s bytes at the CDN, the hub listed %d" % (state.file.path, match.group(3), state.file.size))
                self.ranged += 1
            elif status == 200:
                length = response.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) != state.file.size:
                    raise FetchError("%s has %s bytes at the hub, the tree listed %d" % (state.file.path, length, state.file.size))
                skip = pos  # the server ignored the Range header: read up to where we are
            else:
                raise FetchError("unexpected HTTP %d for %s" % (status, redact_url(url)))
            buf = bytearray(READ_SIZE)
            view = memoryview(buf)
            try:
                while pos < end:
                    want = min(READ_SIZE, (end - pos) + skip) if skip else min(READ_SIZE, end - pos)
                    n = response.readinto(view[:want])
                    if not n:
                        break
                    if skip:
                        drop = min(skip, n)
                        skip -= drop
                        if drop == n:
                            continue
                        data = view[drop:n]
                    else:
                        data = view[:n]
                    written = os.pwrite(state.fd, data, pos)
                    pos += written
                    self.progress.add(written)
            except Exception as e:
                e.pos = pos
                raise
            if pos < end:
                error = RetryableError("connection closed after byte %d of %s (wanted up to %d)" % (pos, state.file.path, end))
                error.pos = pos
                raise error
            return pos
        finally:
            response.close()


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def check_space(cfg, total, still_needed, kept):
    """Before the first byte: the volume must hold the rest of the model, the image the build writes
    beside it, and a margin. Fails with both figures and the fix."""
    os.makedirs(cfg.state_dir, mode=0o775, exist_ok=True)
    usage = shutil.disk_usage(cfg.state_dir)
    image = int(total * cfg.image_factor)
    margin = max(SPACE_MARGIN_MIN, int((total + image) * SPACE_MARGIN_RATIO))
    need = still_needed + image + margin
    log("disk space: %s free of %s on the run's volume; this run needs %s more (model files still to fetch %s, "
        "the image the %s builder writes %s, margin %s)%s"
        % (human_bytes(usage.free), human_bytes(usage.total), human_bytes(need), human_bytes(still_needed), cfg.builder,
           human_bytes(image), human_bytes(margin), ("; %s already on the volume" % human_bytes(kept)) if kept else ""))
    if usage.free < need:
        suggest = -(-(total + image + margin) // (1024 ** 3)) + 1
        raise FetchError(
            "not enough space on the run's volume: %s free (of %s), the run needs %s (model %s still to fetch + image %s + margin %s); "
            "nothing was downloaded. Give the run more storage (addRun(..., { storage: Size.gibibytes(%d) }) or more), "
            "or free space on its claim" % (human_bytes(usage.free), human_bytes(usage.total), human_bytes(need),
                                            human_bytes(still_needed), human_bytes(image), human_bytes(margin), suggest))


def write_sums(cfg, files):
    lines = sorted(("%s  %s\n" % (f.digest, f.path)) for f in files)
    lines.sort(key=lambda line: line.split("  ", 1)[1].encode("utf-8"))
    write_atomic(cfg.sums_file, "".join(lines))
    fsync_dir(os.path.dirname(cfg.sums_file))


def check_model_dir(cfg, files):
    """The model directory holds exactly the selected files (nothing stray from elsewhere)."""
    wanted = {f.path for f in files}
    found = set()
    for root, _dirs, names in os.walk(cfg.model_dir):
        for name in names:
            found.add(os.path.relpath(os.path.join(root, name), cfg.model_dir).replace(os.sep, "/"))
    extra = sorted(found - wanted)
    missing = sorted(wanted - found)
    if extra or missing:
        raise FetchError("%s does not hold exactly the selected files: unexpected %s, missing %s"
                         % (cfg.model_dir, extra[:5] or "none", missing[:5] or "none"))


def fetch(cfg):
    log("hf-fetch: %s@%s from %s" % (cfg.repo, cfg.revision, redact_url(cfg.endpoint)))
    log(
        "  include: %s; exclude: %s; token: %s; connections: %d; range: %s; attempts without progress: %d; deadline: %s; timeout: %gs"
        % (
            " ".join(cfg.include) or "(everything)",
            " ".join(cfg.exclude) or "(nothing)",
            "set" if cfg.token else "not set",
            cfg.connections,
            human_bytes(cfg.chunk_bytes),
            cfg.retries,
            human_seconds(cfg.deadline_seconds),
            cfg.timeout,
        )
    )
    sha, sibling_names = resolve_commit(cfg)
    if SHA1_RE.match(cfg.revision) and cfg.revision != sha:
        raise FetchError("asked for commit %s but the hub resolved it to %s" % (cfg.revision, sha))
    files, pages = list_tree(cfg, sha)
    total_repo = sum(f.size for f in files)
    log("resolved %s@%s -> commit %s: %d files, %s in the repo (tree listing, %d page%s)"
        % (cfg.repo, cfg.revision, sha, len(files), human_bytes(total_repo), pages, "" if pages == 1 else "s"))
    # The revision's siblings may be truncated, never longer than the tree: a name only they know means the
    # tree listing is incomplete, and an incomplete model must not pass as a whole one.
    missing = sorted(sibling_names - {f.path for f in files})
    if missing:
        raise FetchError("the hub's tree listing of %s@%s lacks %d file(s) its revision info names: %s; refusing an incomplete model"
                         % (cfg.repo, sha, len(missing), ", ".join(missing[:5])))

    selected = select(cfg, files)
    if not selected:
        raise FetchError(
            "no file of %s@%s matches include %r exclude %r"
            % (cfg.repo, sha, " ".join(cfg.include), " ".join(cfg.exclude))
        )
    total = sum(f.size for f in selected)
    if cfg.resolve_only:
        return resolved_only(cfg, sha, selected, files, total)
    log("selected %d of %d files, %s, into %s" % (len(selected), len(files), human_bytes(total), cfg.model_dir))

    os.makedirs(cfg.model_dir, mode=0o775, exist_ok=True)
    os.makedirs(cfg.state_dir, mode=0o775, exist_ok=True)
    states = [FileState(cfg, sha, f) for f in selected]
    kept = [s for s in states if s.kept()]
    todo = [s for s in states if s not in kept]
    kept_bytes = sum(s.file.size for s in kept)
    # A partial file from an earlier attempt is preallocated already: only the others take new space.
    partial = [s for s in todo if os.path.exists(s.data_path)]
    check_space(cfg, total, sum(s.file.size for s in todo if s not in partial), kept_bytes + sum(s.file.size for s in partial))
    if kept:
        log("kept %d file(s), %s, verified by an earlier attempt: %s"
            % (len(kept), human_bytes(kept_bytes), ", ".join(s.file.path for s in kept[:10]) + (" ..." if len(kept) > 10 else "")))
    for s in todo:
        s.open()
    resumed = sum(s.resumed_bytes for s in todo)
    if resumed:
        log("resuming %s of partial files from an earlier attempt" % human_bytes(resumed))
    # Small files first (they are quick, and a missing one fails early), then the large ones range by range.
    todo.sort(key=lambda s: (s.file.sha256 is not None, s.file.size, s.file.path))

    progress = Progress(cfg, total, len(selected))
    progress.base = kept_bytes + resumed
    progress.files_done = len(kept)
    transfer = Transfer(cfg, todo, progress)
    started = time.monotonic()
    reporter = threading.Thread(target=progress.run, name="progress", daemon=True)
    reporter.start()
    try:
        # States whose every range was complete already (a retry stopped while hashing): hash them now.
        for s in todo:
            if not s.pending():
                transfer.hashq.put(s)
        # A second round only if a resumed file failed its check and starts over (its jobs are back in the queue).
        for _round in range(3):
            if not transfer.jobs or transfer.error is not None:
                break
            workers = [threading.Thread(target=transfer.worker, name="conn-%d" % i, daemon=True)
                       for i in range(min(cfg.connections, len(transfer.jobs)))]
            for w in workers:
                w.start()
            while any(w.is_alive() for w in workers):
                for w in workers:
                    w.join(0.2)
                if transfer.error is None and cfg.left() <= 0:
                    transfer.fail(FetchError("the download did not finish within its deadline (HF_DEADLINE_SECONDS=%g); "
                                             "what was received is kept for a retry" % cfg.deadline_seconds))
            transfer.hashq.join()
        transfer.hashq.join()
        if transfer.error is not None:
            raise transfer.error
    finally:
        transfer.hashq.put(None)
        progress.stop.set()
        for s in todo:
            s.close()
    unfinished = [s.file.path for s in todo if not s.finished]
    if unfinished:
        raise FetchError("internal: %d file(s) did not complete: %s" % (len(unfinished), ", ".join(unfinished[:5])))
    elapsed = time.monotonic() - started
    progress.line(final=True)
    check_model_dir(cfg, selected)
    write_sums(cfg, selected)
    log(
        "downloaded %d files (%d kept from an earlier attempt), %s in %.1fs (%s, %d ranged requests) from %s@%s; SHA256SUMS in %s"
        % (len(selected), len(kept), human_bytes(progress.done), elapsed, mib_per_second(progress.done, elapsed),
           transfer.ranged, cfg.repo, sha, cfg.sums_file)
    )
    if cfg.model_size_file:
        with open(cfg.model_size_file, "w") as handle:
            handle.write(str(total))
    # Every file has its final name and its digest is in SUMS_FILE: the state (records, no data) can go.
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    if cfg.resolved_revision_file:
        with open(cfg.resolved_revision_file, "w") as handle:
            handle.write(sha)
        log("wrote commit %s to %s" % (sha, cfg.resolved_revision_file))
    return sha


def resolved_only(cfg, sha, selected, files, total):
    """The commit and the selection's size, from the revision and tree APIs alone: small JSON
    requests, no file downloaded. The check before a build needs nothing more."""
    log("resolve only: %d of %d files selected, %s; nothing downloaded" % (len(selected), len(files), human_bytes(total)))
    # Tekton results: plain writes (a temporary name would sit in /tekton/results/ meanwhile).
    if cfg.model_size_file:
        with open(cfg.model_size_file, "w") as handle:
            handle.write(str(total))
    if cfg.resolved_revision_file:
        with open(cfg.resolved_revision_file, "w") as handle:
            handle.write(sha)
        log("wrote commit %s to %s" % (sha, cfg.resolved_revision_file))
    return sha


def _terminate(signum, _frame):
    # Tekton stops a step with SIGTERM: exit; partial files stay in STATE_DIR for a retry.
    raise SystemExit(128 + signum)


def main():
    os.umask(0o002)  # later tasks may run under another uid of the same group
    # The connections hand the GIL over at every TLS record (16 KiB): a shorter switch interval keeps a thread
    # whose read returned from waiting up to 5 ms for it, which on a busy node costs each connection its pace.
    sys.setswitchinterval(0.0005)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        cfg = Config()
        install_opener(cfg)
    except ConfigError as e:
        print("hf-fetch: configuration error: %s" % e, file=sys.stderr, flush=True)
        return 2
    try:
        fetch(cfg)
    except (FetchError, ConfigError) as e:
        print("hf-fetch: error: %s" % e, file=sys.stderr, flush=True)
        return 1
    except OSError as e:
        print("hf-fetch: error: %s" % e, file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
