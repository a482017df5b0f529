#!/usr/bin/env python3
"""Download one commit of a Hugging Face model repository into a directory.

Runs as a Tekton step script in registry.access.redhat.com/ubi9/python-312 with the
standard library only (no huggingface_hub, no requests), talking to the hub's HTTP API:

  GET {endpoint}/api/models/{repo}/revision/{revision}?blobs=true
      -> {"sha": <commit>, "siblings": [{"rfilename", "size", "lfs": {"sha256", "size"}}]}
  GET {endpoint}/{repo}/resolve/{commit}/{path}
      -> the file, or a redirect (LFS/Xet files go to a CDN on another host)

Every input comes from the environment (never argv):

  HF_REPO                 required, "org/name"
  HF_REVISION             branch, tag or commit sha (default "main")
  HF_INCLUDE, HF_EXCLUDE  space-separated fnmatch globs on the repo-relative path
                          (empty include = every file; a pattern ending in "/" means "everything under")
  HF_TOKEN                optional; sent as "Authorization: Bearer", never printed,
                          dropped when a redirect leaves the endpoint's host
  HF_ENDPOINT             default https://huggingface.co; http only for 127.0.0.1/localhost/::1
  HF_CA_DIR               optional directory of PEM CA certificates (*.crt) trusted besides the system CAs
  MODEL_DIR               required, destination directory (created if missing)
  RESOLVED_REVISION_FILE  optional, receives the downloaded commit sha (written last, no newline)
  HF_RESOLVE_ONLY         "true": resolve the revision to its commit and select the files, download
                          nothing (MODEL_DIR is not needed); writes RESOLVED_REVISION_FILE and
                          MODEL_SIZE_FILE (bytes of the selected files as the hub lists them)
  MODEL_SIZE_FILE         optional, with HF_RESOLVE_ONLY: receives that size (no newline)
  HF_RETRIES              attempts per request, including the first (default 3)
  HF_TIMEOUT_SECONDS      socket timeout per connect/read, not for the whole file (default 60)
  HF_RETRY_BACKOFF_SECONDS  first backoff delay, doubled per attempt, capped at 60 (default 2)

Exit status: 0 on success, 2 for a configuration error, 1 for any other failure.
"""

import fnmatch
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

CHUNK_SIZE = 8 * 1024 * 1024
MAX_REDIRECTS = 10
MAX_API_BYTES = 64 * 1024 * 1024
MAX_BACKOFF_SECONDS = 60.0
PROGRESS_INTERVAL_SECONDS = 10.0
DEFAULT_ENDPOINT = "https://huggingface.co"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
USER_AGENT = "cdk8s-modelcar-tekton-hf-fetch/1 python/%d.%d" % sys.version_info[:2]

# Hugging Face repo ids: "namespace/name", word characters, "-" and ".", no "--" or "..",
# not starting or ending with "-" or ".", name at most 96 characters.
_REPO_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?"
REPO_RE = re.compile(r"^(%s)/(%s)$" % (_REPO_PART, _REPO_PART))
# A git branch, tag or sha: no whitespace, control characters or the characters git forbids in refs.
REVISION_RE = re.compile(r"^[^\s\x00-\x1f\x7f~^:?*\[\\]{1,255}$")
SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ConfigError(Exception):
    """Bad input: exit 2."""


class FetchError(Exception):
    """A failure that retrying will not fix: exit 1."""


class RetryableError(Exception):
    """A transient failure (connection, timeout, 5xx, 429): retried with backoff."""

    def __init__(self, message, retry_after=None):
        super().__init__(message)
        self.retry_after = retry_after


def log(message):
    print(message, flush=True)


def human_bytes(n):
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return ("%d %s" % (value, unit)) if unit == "B" else ("%.1f %s" % (value, unit))
        value /= 1024
    return "%d B" % n


def throughput(n, seconds):
    return "%s/s" % human_bytes(n / seconds) if seconds > 0 else "n/a"


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

        resolve_only = env("HF_RESOLVE_ONLY", "false").strip()
        if resolve_only not in ("true", "false"):
            raise ConfigError("HF_RESOLVE_ONLY=%r must be true or false" % resolve_only)
        self.resolve_only = resolve_only == "true"
        self.model_size_file = env("MODEL_SIZE_FILE").strip() or None

        model_dir = env("MODEL_DIR").strip()
        if not model_dir and not self.resolve_only:
            raise ConfigError("MODEL_DIR is required (the destination directory)")
        self.model_dir = os.path.abspath(model_dir) if model_dir else None

        self.ca_dir = env("HF_CA_DIR").strip() or None
        if self.ca_dir and not os.path.isdir(self.ca_dir):
            raise ConfigError("HF_CA_DIR=%s is not a directory" % self.ca_dir)

        self.resolved_revision_file = env("RESOLVED_REVISION_FILE").strip() or None
        self.retries = env_number("HF_RETRIES", 3, int, 1, 100)
        self.timeout = env_number("HF_TIMEOUT_SECONDS", 60.0, float, 0.001, 86400.0)
        self.backoff = env_number("HF_RETRY_BACKOFF_SECONDS", 2.0, float, 0.0, 3600.0)

    def headers(self):
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        return headers


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


def open_url(url, headers, cfg):
    """GET url, following up to MAX_REDIRECTS redirects; returns a 2xx response or raises HTTPError."""
    current = url
    headers = dict(headers)
    for _ in range(MAX_REDIRECTS + 1):
        check_url_allowed(current, "URL")
        request = urllib.request.Request(current, headers=headers, method="GET")
        try:
            return OPENER.open(request, timeout=cfg.timeout)
        except urllib.error.HTTPError as e:
            if e.code not in (301, 302, 303, 307, 308):
                raise
            location = e.headers.get("Location")
            e.close()
            if not location:
                raise FetchError("HTTP %d redirect without Location from %s" % (e.code, redact_url(current)))
            target = urllib.parse.urljoin(current, location)
            if urllib.parse.urlsplit(target).netloc != urllib.parse.urlsplit(current).netloc:
                # Another host (the LFS/Xet CDN): its URL is signed, the hub token must not leak there.
                headers.pop("Authorization", None)
            current = target
    raise FetchError("too many redirects (more than %d) from %s" % (MAX_REDIRECTS, redact_url(url)))


def hub_error_detail(e):
    code = e.headers.get("X-Error-Code") if e.headers else None
    message = e.headers.get("X-Error-Message") if e.headers else None
    details = [d for d in (code, message) if d]
    return (" (hub says: %s)" % ": ".join(details)) if details else ""


def parse_retry_after(e):
    raw = e.headers.get("Retry-After") if e.headers else None
    try:
        return max(0.0, float(raw)) if raw is not None else None
    except ValueError:
        return None


def classify(exc, cfg, what, not_found):
    """Turn an exception from a request into RetryableError or FetchError (or re-raise)."""
    if isinstance(exc, (RetryableError, FetchError, ConfigError)):
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
            return FetchError("HTTP 404 for %s (%s): %s%s" % (what, url, not_found, hub_error_detail(exc)))
        if exc.code in (408, 429) or 500 <= exc.code <= 599:
            return RetryableError("HTTP %d for %s (%s)" % (exc.code, what, url), parse_retry_after(exc))
        return FetchError("HTTP %d for %s (%s)%s" % (exc.code, what, url, hub_error_detail(exc)))
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            return FetchError("TLS certificate verification failed for %s: %s" % (what, reason))
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return RetryableError("timed out after %gs connecting for %s" % (cfg.timeout, what))
        return RetryableError("cannot reach the hub for %s: %s" % (what, reason))
    if isinstance(exc, ssl.SSLCertVerificationError):
        return FetchError("TLS certificate verification failed for %s: %s" % (what, exc))
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return RetryableError("timed out after %gs waiting for %s" % (cfg.timeout, what))
    if isinstance(exc, (ConnectionError, http.client.HTTPException, ssl.SSLError)):
        return RetryableError("connection failed during %s: %s: %s" % (what, type(exc).__name__, exc))
    return None


def backoff_delay(cfg, attempt, retry_after):
    delay = min(MAX_BACKOFF_SECONDS, cfg.backoff * (2 ** (attempt - 1)))
    delay += random.uniform(0, delay / 10.0)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_BACKOFF_SECONDS))
    return delay


def with_retries(cfg, what, not_found, attempt_fn):
    """Run attempt_fn(attempt) up to cfg.retries times; only transient failures are retried."""
    for attempt in range(1, cfg.retries + 1):
        try:
            return attempt_fn(attempt)
        except Exception as exc:  # noqa: BLE001 - classified below
            classified = classify(exc, cfg, what, not_found)
            if classified is None:
                raise
            if not isinstance(classified, RetryableError):
                raise classified
            if attempt >= cfg.retries:
                raise FetchError("%s; giving up after %d attempt(s) (HF_RETRIES=%d)" % (classified, attempt, cfg.retries))
            delay = backoff_delay(cfg, attempt, classified.retry_after)
            log("  attempt %d/%d failed: %s; retrying in %.1fs" % (attempt, cfg.retries, classified, delay))
            time.sleep(delay)
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Revision and file list
# --------------------------------------------------------------------------------------------


class RepoFile(object):
    def __init__(self, path, parts, size, sha256):
        self.path = path
        self.parts = parts
        self.size = size
        self.sha256 = sha256


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


def optional_size(value, what):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FetchError("hub listing has an invalid size for %s: %r" % (what, value))
    return value


def parse_listing(info):
    if not isinstance(info, dict):
        raise FetchError("hub revision response is not a JSON object")
    sha = info.get("sha")
    if not isinstance(sha, str) or not SHA1_RE.match(sha):
        raise FetchError("hub revision response has no commit sha (got %r)" % (sha,))
    siblings = info.get("siblings")
    if not isinstance(siblings, list):
        raise FetchError("hub revision response has no file list ('siblings')")
    files = []
    seen = set()
    for sibling in siblings:
        if not isinstance(sibling, dict):
            raise FetchError("hub listing entry is not an object: %r" % (sibling,))
        name = sibling.get("rfilename")
        parts = safe_parts(name)
        if name in seen:
            continue
        seen.add(name)
        size = optional_size(sibling.get("size"), name)
        sha256 = None
        lfs = sibling.get("lfs")
        if lfs is not None:
            if not isinstance(lfs, dict):
                raise FetchError("hub listing has an invalid 'lfs' entry for %s" % name)
            sha256 = lfs.get("sha256")
            if not isinstance(sha256, str) or not SHA256_RE.match(sha256.lower()):
                raise FetchError("hub listing has an invalid lfs sha256 for %s: %r" % (name, sha256))
            sha256 = sha256.lower()
            lfs_size = optional_size(lfs.get("size"), name)
            if lfs_size is not None:
                size = lfs_size
        files.append(RepoFile(name, parts, size, sha256))
    return sha, files


def resolve_revision(cfg):
    url = "%s/api/models/%s/revision/%s?blobs=true" % (
        cfg.endpoint,
        cfg.repo,
        urllib.parse.quote(cfg.revision, safe=""),
    )
    what = "revision %s of %s" % (cfg.revision, cfg.repo)

    def attempt(_):
        chunks = []
        size = 0
        with open_url(url, cfg.headers(), cfg) as response:
            length = response.headers.get("Content-Length")
            while size <= MAX_API_BYTES:
                chunk = response.read(1024 * 1024)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        body = b"".join(chunks)
        if len(body) > MAX_API_BYTES:
            raise FetchError("hub revision response is larger than %s" % human_bytes(MAX_API_BYTES))
        if length is not None and length.isdigit() and len(body) < int(length):
            raise RetryableError("hub revision response was cut short (%d of %s bytes)" % (len(body), length))
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError as e:
            raise FetchError("hub revision response is not JSON: %s" % e)

    info = with_retries(cfg, what, "repo or revision not found: %s@%s" % (cfg.repo, cfg.revision), attempt)
    return parse_listing(info)


def matches_any(path, patterns):
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def select(cfg, files):
    return [
        f
        for f in files
        if (not cfg.include or matches_any(f.path, cfg.include)) and not matches_any(f.path, cfg.exclude)
    ]


# --------------------------------------------------------------------------------------------
# Download
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


class Download(object):
    """One file streamed to <dest>.part; retries resume with a Range request when possible."""

    def __init__(self, cfg, sha, repo_file, dest):
        self.cfg = cfg
        self.file = repo_file
        self.dest = dest
        self.part = dest + ".part"
        self.url = "%s/%s/resolve/%s/%s" % (cfg.endpoint, cfg.repo, sha, urllib.parse.quote(repo_file.path))
        self.written = 0
        self.hasher = hashlib.sha256()
        self.handle = None
        self.started = 0.0
        self.last_progress = 0.0

    def restart(self):
        self.handle.seek(0)
        self.handle.truncate()
        self.written = 0
        self.hasher = hashlib.sha256()

    def attempt(self, attempt_number):
        headers = self.cfg.headers()
        if self.written > 0:
            headers["Range"] = "bytes=%d-" % self.written
            log("  resuming %s at byte %d (attempt %d)" % (self.file.path, self.written, attempt_number))
        try:
            response = open_url(self.url, headers, self.cfg)
        except urllib.error.HTTPError as e:
            if e.code == 416 and self.written > 0:
                e.close()
                self.restart()
                raise RetryableError("server refused to resume %s (HTTP 416); restarting it" % self.file.path)
            raise
        with response:
            status = response.status
            if self.written > 0 and status == 206:
                content_range = response.headers.get("Content-Range") or ""
                match = re.match(r"^bytes (\d+)-", content_range)
                if not match or int(match.group(1)) != self.written:
                    self.restart()
                    raise RetryableError("unexpected Content-Range %r; restarting %s" % (content_range, self.file.path))
            elif status == 200:
                if self.written > 0:
                    log("  server ignored the Range request; restarting %s" % self.file.path)
                    self.restart()
            else:
                raise FetchError("unexpected HTTP %d for %s" % (status, redact_url(self.url)))
            length = response.headers.get("Content-Length")
            body_length = int(length) if length is not None and length.isdigit() else None
            received = 0
            while True:
                chunk = response.read(CHUNK_SIZE)
                if not chunk:
                    break
                self.handle.write(chunk)
                self.hasher.update(chunk)
                self.written += len(chunk)
                received += len(chunk)
                if self.file.size is not None and self.written > self.file.size:
                    raise FetchError(
                        "%s: received more than the %d bytes the hub listed" % (self.file.path, self.file.size)
                    )
                self.progress()
            if body_length is not None and received < body_length:
                raise RetryableError(
                    "connection closed after %d of %d bytes of %s" % (received, body_length, self.file.path)
                )

    def progress(self):
        now = time.monotonic()
        if now - self.last_progress < PROGRESS_INTERVAL_SECONDS:
            return
        self.last_progress = now
        total = self.file.size
        percent = (" (%d%%)" % (100 * self.written // total)) if total else ""
        log(
            "  %s: %s of %s%s, %s"
            % (
                self.file.path,
                human_bytes(self.written),
                human_bytes(total) if total is not None else "?",
                percent,
                throughput(self.written, now - self.started),
            )
        )

    def run(self):
        parent = os.path.dirname(self.dest)
        for _ in range(2):  # before creating the directories, and after (a symlink could redirect them)
            if not inside(self.cfg.model_dir, parent):
                raise FetchError("refusing to write %s: it resolves outside MODEL_DIR" % self.file.path)
            os.makedirs(parent, mode=0o775, exist_ok=True)
        remove_quietly(self.part)
        self.started = self.last_progress = time.monotonic()
        try:
            with open(self.part, "wb") as handle:
                self.handle = handle
                what = "file %s" % self.file.path
                not_found = "repo or revision not found, or no file %s at that commit" % self.file.path
                with_retries(self.cfg, what, not_found, self.attempt)
                self.verify()
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(self.part, 0o664)
            os.replace(self.part, self.dest)
            fsync_dir(parent)
        except BaseException:
            remove_quietly(self.part)
            raise
        return time.monotonic() - self.started

    def verify(self):
        if self.file.size is not None and self.written != self.file.size:
            raise FetchError(
                "size mismatch for %s: the hub listed %d bytes, received %d"
                % (self.file.path, self.file.size, self.written)
            )
        digest = self.hasher.hexdigest()
        if self.file.sha256 is not None and digest != self.file.sha256:
            raise FetchError(
                "sha256 mismatch for %s: the hub listed %s, the downloaded file has %s"
                % (self.file.path, self.file.sha256, digest)
            )
        self.digest = digest


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def fetch(cfg):
    log("hf-fetch: %s@%s from %s" % (cfg.repo, cfg.revision, redact_url(cfg.endpoint)))
    log(
        "  include: %s; exclude: %s; token: %s; attempts per request: %d; timeout: %gs"
        % (
            " ".join(cfg.include) or "(everything)",
            " ".join(cfg.exclude) or "(nothing)",
            "set" if cfg.token else "not set",
            cfg.retries,
            cfg.timeout,
        )
    )
    sha, files = resolve_revision(cfg)
    if SHA1_RE.match(cfg.revision) and cfg.revision != sha:
        raise FetchError("asked for commit %s but the hub resolved it to %s" % (cfg.revision, sha))
    log("resolved %s@%s -> commit %s (%d files in the repo)" % (cfg.repo, cfg.revision, sha, len(files)))

    selected = select(cfg, files)
    if not selected:
        raise FetchError(
            "no file of %s@%s matches include %r exclude %r"
            % (cfg.repo, sha, " ".join(cfg.include), " ".join(cfg.exclude))
        )
    known = sum(f.size for f in selected if f.size is not None)
    if cfg.resolve_only:
        return resolved_only(cfg, sha, selected, files, known)
    log("downloading %d of %d files, %s, into %s" % (len(selected), len(files), human_bytes(known), cfg.model_dir))

    os.makedirs(cfg.model_dir, mode=0o775, exist_ok=True)
    free = shutil.disk_usage(cfg.model_dir).free
    if free < known:
        log("  warning: %s has %s free, the selected files need %s" % (cfg.model_dir, human_bytes(free), human_bytes(known)))

    started = time.monotonic()
    total = 0
    for index, repo_file in enumerate(selected, 1):
        dest = os.path.join(cfg.model_dir, *repo_file.parts)
        download = Download(cfg, sha, repo_file, dest)
        seconds = download.run()
        total += download.written
        check = "sha256 verified" if repo_file.sha256 else "sha256 %s" % download.digest
        log(
            "[%d/%d] %s  %s  %.1fs  %s  %s"
            % (index, len(selected), repo_file.path, human_bytes(download.written), seconds,
               throughput(download.written, seconds), check)
        )
    elapsed = time.monotonic() - started
    log(
        "downloaded %d files, %s in %.1fs (%s) from %s@%s"
        % (len(selected), human_bytes(total), elapsed, throughput(total, elapsed), cfg.repo, sha)
    )

    if cfg.resolved_revision_file:
        with open(cfg.resolved_revision_file, "w") as handle:
            handle.write(sha)
        log("wrote commit %s to %s" % (sha, cfg.resolved_revision_file))
    return sha


def resolved_only(cfg, sha, selected, files, known):
    """The answer of the revision API alone: one small JSON request, no file downloaded. The
    check before a build needs the commit (the image's revision label) and nothing else."""
    unsized = [f.path for f in selected if f.size is None]
    if unsized and cfg.model_size_file:
        raise FetchError("the hub lists no size for %s: cannot report the model size without downloading" % ", ".join(unsized[:3]))
    log("resolve only: %d of %d files selected, %s; nothing downloaded" % (len(selected), len(files), human_bytes(known)))
    if cfg.model_size_file:
        with open(cfg.model_size_file, "w") as handle:
            handle.write(str(known))
    if cfg.resolved_revision_file:
        with open(cfg.resolved_revision_file, "w") as handle:
            handle.write(sha)
        log("wrote commit %s to %s" % (sha, cfg.resolved_revision_file))
    return sha


def _terminate(signum, _frame):
    # Tekton stops a step with SIGTERM: unwind so the .part file is removed.
    raise SystemExit(128 + signum)


def main():
    os.umask(0o002)  # later tasks may run under another uid of the same group
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
