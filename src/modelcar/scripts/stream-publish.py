#!/usr/bin/env python3
"""The streaming publisher's step: one commit of a Hugging Face model into a registry as the modelcar image, with no
volume. Each layer of the layout builder's plan (oci_image.py: the same plan, tar headers, configs and manifests, so
the same digests) is read from the hub and sent to the registry in the same pass, chunk by chunk:

- a layer's chunks are fetched RANGES at a time (byte ranges of its files, each resumed from its last byte after a
  cut, within the hub's rate limits) and sent in order over one chunked upload that resumes from the offset the
  registry reports (oci_registry.py); LAYERS layers go at once;
- every file is checked against the hub's listing (the LFS sha256, or the git blob id of a small file) before its
  layer's upload is committed: a layer with a file that differs is cancelled, and nothing names it;
- the base image's layers go registry to registry (a mount within the same registry), then each platform's config
  and manifest, the index, and only then the tags: no tag names an image with a missing blob.

Memory: at most LAYERS x (RANGES + 1) chunks of STREAM_CHUNK_BYTES in flight, plus the interpreter (about 30 MiB);
the log states the bound. Nothing is written to disk.

Env: the hub's (HF_REPO, HF_REVISION: the commit, HF_INCLUDE, HF_EXCLUDE, HF_TOKEN, HF_ENDPOINT, HF_CA_DIR, HF_RETRIES,
HF_DEADLINE_SECONDS, HF_TIMEOUT_SECONDS, HF_RETRY_BACKOFF_SECONDS; README, "The download"); the target's (IMAGE,
IMAGE_TAGS, SERVING_TAG, TLS_VERIFY, CERT_DIR, AUTH_MODE, AUTHFILE, SA_TOKEN_FILE); the base's (BASE_IMAGE by digest,
BASE_TLS_VERIFY, BASE_CERT_DIR, BASE_AUTH_MODE, BASE_AUTHFILE); the build's (PLATFORMS, LARGE_FILE_BYTES, MAX_LAYERS,
MODELS_PATH, BUILD_CONFIG); STREAM_LAYERS, STREAM_RANGES, STREAM_CHUNK_BYTES; RESULT_IMAGE_URL, RESULT_IMAGE_DIGEST,
RESULT_IMAGE_REF. Exit status 0, 2 for bad configuration, 1 for any other failure."""

import collections
import concurrent.futures
import hashlib
import json
import os
import re
import sys
import threading
import time
import urllib.parse

from hf_hub import *
from hf_tree import *
from oci_image import *
from oci_registry import *

TAG_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$')


def registry_credentials(mode_var, file_var, host):
    """The (user, password) a registry-auth.sh step would hand skopeo: by AUTH_MODE, never printed."""
    mode = env(mode_var, 'none')
    if mode == 'none':
        return None
    if mode == 'service-account-token':
        path = env('SA_TOKEN_FILE')
        try:
            with open(path, encoding='utf-8') as f:
                return 'serviceaccount', f.read().strip()
        except OSError as e:
            raise ConfigError(f'cannot read the service account token {path}: {e} (the pod needs automountServiceAccountToken)')
    if mode not in ('secret', 'service-account'):
        raise ConfigError(f'unknown {mode_var} {mode!r}')
    path = env(file_var)
    if mode == 'service-account' and not os.path.isfile(path):
        log(f'no docker credentials linked to the service account ({path} absent): going without credentials for {host}')
        return None
    try:
        found = docker_credentials(path, host)
    except RegistryFailure as e:
        raise ConfigError(str(e))
    if found is None:
        log(f'{path} has no credentials for {host}: going without')
    return found


class StreamConfig(Config):
    def __init__(self):
        super().__init__()
        self.image = env('IMAGE')
        self.tags = env('IMAGE_TAGS').split()
        self.serving_tag = env('SERVING_TAG')
        if not self.tags:
            raise ConfigError('no tag given (IMAGE_TAGS is empty)')
        for tag in self.tags + ([self.serving_tag] if self.serving_tag else []):
            if not TAG_RE.match(tag):
                raise ConfigError(f'tag {tag!r} is invalid: use letters, digits, "_", "." and "-", at most 128, not "." or "-" first')
        if not SHA1_RE.match(self.revision):
            raise ConfigError(f'HF_REVISION={self.revision!r} is not a commit sha: the streaming publisher takes the commit the check resolved')
        self.base_image = env('BASE_IMAGE')
        base_repo, _, self.base_digest = self.base_image.partition('@')
        if not re.match(r'^sha256:[0-9a-f]{64}$', self.base_digest):
            raise ConfigError(f'BASE_IMAGE={self.base_image!r} is not pinned by a sha256 digest')
        # host[:port]/path[:tag]@digest: the digest decides, a tag beside it is dropped.
        head, _, last = base_repo.rpartition('/')
        self.base_repo = f'{head}/{last.split(":")[0]}' if head else base_repo
        try:
            self.platforms = parse_platforms(env('PLATFORMS'))
        except ImageError as e:
            raise ConfigError(str(e))
        if not self.platforms:
            raise ConfigError('no platform given (PLATFORMS is empty)')
        self.large = env_number('LARGE_FILE_BYTES', 64 * MIB, int, 1, 2 ** 62)
        self.max_layers = env_number('MAX_LAYERS', 100, int, 2, 500)
        self.prefix = env('MODELS_PATH', '/models').strip('/')
        self.build_config = env('BUILD_CONFIG')
        self.layers = env_number('STREAM_LAYERS', 4, int, 1, 32)
        self.ranges = env_number('STREAM_RANGES', 2, int, 1, 16)
        self.chunk = env_number('STREAM_CHUNK_BYTES', 16 * MIB, int, 64 * 1024, 512 * MIB)
        self.results = [env(n) for n in ('RESULT_IMAGE_URL', 'RESULT_IMAGE_DIGEST', 'RESULT_IMAGE_REF')]
        try:
            self.target = Registry(self.image, registry_credentials('AUTH_MODE', 'AUTHFILE', self.image.split('/')[0]),
                                   tls_for(env('CERT_DIR'), env('TLS_VERIFY', 'true') != 'false', 'CERT_DIR'),
                                   self.deadline, self.retries, log=log)
            self.base = Registry(self.base_repo, registry_credentials('BASE_AUTH_MODE', 'BASE_AUTHFILE', self.base_repo.split('/')[0]),
                                 tls_for(env('BASE_CERT_DIR'), env('BASE_TLS_VERIFY', 'true') != 'false', 'BASE_CERT_DIR'),
                                 self.deadline, self.retries, log=log)
        except RegistryFailure as e:
            raise ConfigError(str(e))


class HubReader(object):
    """Byte ranges of the commit's files, each resumed from its last byte after a cut; the CDN's signed URL of a
    file is kept for its next ranges, and asked again when the CDN refuses it."""

    def __init__(self, cfg, sha, stop):
        self.cfg, self.sha, self.stop = cfg, sha, stop
        self.direct = {}
        self.lock = threading.Lock()

    def read(self, rf, start, end, view):
        url = f'{self.cfg.endpoint}/{self.cfg.repo}/resolve/{self.sha}/{urllib.parse.quote(rf.path)}'
        pos, budget = start, Budget(self.cfg)
        while pos < end:
            if self.stop.is_set():
                raise FetchError('stopped: another layer failed')
            before = pos
            try:
                pos = self.attempt(rf, url, pos, start, end, view)
            except Exception as exc:  # noqa: BLE001 - classified below
                pos = getattr(exc, 'pos', pos)
                if pos > before:
                    budget.stalled = 0
                error = classify(exc, self.cfg, 'file ' + rf.path, None)
                if error is None:
                    raise
                code = 404 if isinstance(error, EntryNotFound) else getattr(exc, 'code', None)
                with self.lock:
                    direct = self.direct.get(rf.path)
                if direct and code in (401, 403, 404):
                    with self.lock:
                        self.direct.pop(rf.path, None)
                    budget.failed(RetryableError(f'the CDN refused {rf.path} (HTTP {code}); resolving it again'))
                elif isinstance(error, EntryNotFound):
                    raise FetchError(f'the hub\'s tree of commit {self.sha} lists {rf.path}, but resolve does not find it (HTTP 404{error})')
                elif not isinstance(error, RetryableError):
                    raise error
                else:
                    if pos < end and pos > before:
                        log(f'  {rf.path}: connection lost at byte {pos} of {rf.size} ({error}); resuming from there')
                    if pos == before or error.wait is not None:
                        budget.failed(error)

    def attempt(self, rf, url, pos, start, end, view):
        with self.lock:
            target = self.direct.get(rf.path) or url
        with open_url(self.cfg, target, {'Range': f'bytes={pos}-{end - 1}'}) as response:
            commit = response.headers.get('X-Repo-Commit')
            if commit and commit != self.sha:
                raise FetchError(f'resolve of {rf.path} answered for commit {commit}, not the pinned {self.sha}')
            if not self.cfg.on_hub(response.geturl()):
                with self.lock:
                    self.direct[rf.path] = response.geturl()
            skip = 0
            if response.status == 206:
                match = re.match(r'^bytes (\d+)-(\d+)/(\d+|\*)$', response.headers.get('Content-Range') or '')
                if not match or int(match.group(1)) != pos or int(match.group(2)) > end - 1:
                    raise RetryableError(f'unexpected Content-Range {response.headers.get("Content-Range")!r} for {rf.path} (asked bytes={pos}-{end - 1})')
                if match.group(3) != '*' and int(match.group(3)) != rf.size:
                    raise FetchError(f'{rf.path} has {match.group(3)} bytes at the CDN, the hub listed {rf.size}')
            elif response.status == 200:
                skip = pos  # the server ignored Range: read up to where we are
            else:
                raise FetchError(f'unexpected HTTP {response.status} for {redact_url(target)}')
            try:
                while pos < end:
                    if skip:
                        n = len(response.read(min(skip, MIB)))
                        skip -= n
                    else:
                        n = response.readinto(view[pos - start:end - start])
                        pos += n
                    if not n:
                        raise RetryableError(f'connection closed after byte {pos} of {rf.path} (wanted up to {end})')
            except Exception as e:
                e.pos = pos
                raise
            return pos


class LayerSource(object):
    """One layer's tar stream in chunks: fetched RANGES chunks at a time, yielded in order, each hashed (the layer's
    digest, every file's sum) before it is handed on; a file that differs from the hub's listing stops the layer."""

    def __init__(self, cfg, hub, entries, files, stop):
        self.cfg, self.hub, self.files, self.stop = cfg, hub, files, stop
        pieces, pos = [], 0
        for piece in layer_pieces(cfg.prefix, entries):
            length = len(piece) if isinstance(piece, bytes) else piece[1]
            pieces.append((pos, length, piece))
            pos += length
        self.size = pos
        self.plan = []  # per chunk: [(offset in chunk, length, bytes | (path, start in file))]
        for start in range(0, self.size, cfg.chunk):
            end = min(start + cfg.chunk, self.size)
            self.plan.append([(max(p, start) - start, min(p + n, end) - max(p, start),
                               piece[max(p, start) - p:min(p + n, end) - p] if isinstance(piece, bytes) else (piece[0], max(p, start) - p))
                              for p, n, piece in pieces if p < end and p + n > start and n > 0])
        self.sha = None
        empty = hashlib.sha256(b'').hexdigest(), hashlib.sha1(b'blob 0\0').hexdigest()
        for rel, size in entries:
            rf = files[rel]
            if size == 0 and (rf.sha256 or rf.blob_id) not in empty:
                raise FetchError(f'{rel} is empty at the hub, and the hub\'s listing names content ({rf.sha256 or rf.blob_id}): refusing to publish it')

    def fetch(self, k):
        plan = self.plan[k]
        buf = bytearray(sum(n for _, n, _ in plan))
        view = memoryview(buf)
        for off, n, what in plan:
            if isinstance(what, bytes):
                view[off:off + n] = what
            else:
                path, at = what
                self.hub.read(self.files[path], at, at + n, view[off:off + n])
        return buf

    def chunks(self):
        """The chunks in order. RANGES chunks are being fetched while the one yielded is checked and sent: RANGES + 1
        buffers at most (the consumer drops each chunk before it asks for the next)."""
        self.sha, sums, done = hashlib.sha256(), {}, 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=self.cfg.ranges) as pool:
            queue = collections.deque()

            def fill():
                while len(queue) < self.cfg.ranges and done + len(queue) < len(self.plan):
                    queue.append(pool.submit(self.fetch, done + len(queue)))
            try:
                fill()
                while done < len(self.plan):
                    buf = queue.popleft().result()
                    done += 1
                    fill()  # the next range starts now, while this one is checked and sent
                    self.check(self.plan[done - 1], buf, sums)
                    yield buf
                    buf = None
            finally:
                for f in queue:
                    f.cancel()

    def check(self, plan, buf, sums):
        self.sha.update(buf)
        view = memoryview(buf)
        for off, n, what in plan:
            if isinstance(what, bytes):
                continue
            path, at = what
            rf = self.files[path]
            if at == 0:
                sums[path] = hashlib.sha256() if rf.sha256 else hashlib.sha1(b'blob %d\0' % rf.size)
            sums[path].update(view[off:off + n])
            if at + n == rf.size:
                got, want = sums.pop(path).hexdigest(), rf.sha256 or rf.blob_id
                if got != want:
                    kind = 'sha256 (LFS oid)' if rf.sha256 else 'git blob id'
                    raise FetchError(f'{path} from the hub does not match the hub\'s listing ({kind} {got}, listed {want}): '
                                     'refusing to publish it; its layer is cancelled')

    def digest(self):
        return 'sha256:' + self.sha.hexdigest()


class BlobCopy(object):
    """A base layer copied from the base's registry in ranges, checked against its digest before it is committed."""

    def __init__(self, registry, digest, size, chunk):
        self.registry, self.want, self.size, self.chunk = registry, digest, size, chunk

    def chunks(self):
        self.sha = hashlib.sha256()
        for start in range(0, self.size, self.chunk):
            data = self.registry.blob(self.want, start, min(self.size, start + self.chunk))
            self.sha.update(data)
            yield data

    def digest(self):
        got = 'sha256:' + self.sha.hexdigest()
        if got != self.want:
            raise RegistryFailure(f'the base layer {self.want} read from {self.registry.repository} has digest {got}')
        return got


def read_bases(cfg):
    """(platform, base manifest, base config) per platform, from the pinned base (an index, or one manifest)."""
    found = cfg.base.manifest(cfg.base_digest)
    if found is None:
        raise FetchError(f'the base image {cfg.base_image} is not in its registry')
    data, digest = found
    if digest != cfg.base_digest:
        raise FetchError(f'the base image\'s registry answered {digest} for {cfg.base_image}')
    top = json.loads(data)
    bases = []
    for platform in cfg.platforms:
        manifest, where = top, cfg.base_digest
        if 'manifests' in top:
            named = [m for m in top['manifests'] if (m.get('platform') or {}).get('os') == platform[0]
                     and m['platform'].get('architecture') == platform[1]
                     and (len(platform) < 3 or m['platform'].get('variant') == platform[2])]
            if not named:
                raise FetchError(f'the base image {cfg.base_image} has no manifest for {"/".join(platform)}')
            where = named[0]['digest']
            got = cfg.base.manifest(where)
            if got is None or got[1] != where:
                raise FetchError(f'the base image\'s manifest {where} for {"/".join(platform)} is missing or other bytes')
            manifest = json.loads(got[0])
        if 'layers' not in manifest or 'config' not in manifest:
            raise FetchError(f'base image {where} is not a single-platform image manifest')
        config = json.loads(cfg.base.blob(manifest['config']['digest']))
        check_base_platform(platform, config, where)
        bases.append((platform, manifest, config))
    return bases


def copy_base_layers(cfg, bases):
    layers = {}
    for _, manifest, _ in bases:
        for layer in manifest['layers']:
            layers[layer['digest']] = layer['size']
    same = cfg.base.host == cfg.target.host
    for digest, size in layers.items():
        if cfg.target.has_blob(digest):
            log(f'  base layer {digest}: already in {cfg.image}')
        elif same and cfg.target.mount(digest, cfg.base.repo):
            log(f'  base layer {digest}: mounted from {cfg.base.repo}')
        else:
            cfg.target.upload(BlobCopy(cfg.base, digest, size, cfg.chunk), f'base layer {digest}')
            log(f'  base layer {digest}: {human_bytes(size)} copied from {cfg.base.repository}')


def publish(cfg):
    started = time.monotonic()
    bound = cfg.layers * (cfg.ranges + 1) * cfg.chunk
    log_start('stream-publish', cfg, f'; to {cfg.image}; {cfg.layers} layers at once, {cfg.ranges} ranges of '
              f'{human_bytes(cfg.chunk)} each: at most {human_bytes(bound)} of model bytes in memory')
    sha, _, selected = resolve_files(cfg)
    if sha != cfg.revision:
        raise FetchError(f'asked for commit {cfg.revision} but the hub resolved it to {sha}')
    files = {f.path: f for f in selected}
    ordered = sorted(selected, key=lambda f: f.path.encode())
    bases = read_bases(cfg)
    base_layers = max(len(m['layers']) for _, m, _ in bases)
    room = cfg.max_layers - base_layers
    if room < 1:
        raise FetchError(f'the base image has {base_layers} layers, MAX_LAYERS is {cfg.max_layers}: no layer is left for the model')
    plan = plan_layers([(f.path, f.size) for f in ordered], cfg.large, room)
    total = sum(f.size for f in ordered)
    log(f'model: {len(ordered)} files, {total} bytes -> {len(plan)} layers (files of {cfg.large} bytes or more get a layer '
        f'of their own, up to {room} layers beside the base\'s {base_layers})')
    cfg.target.check_access()
    copy_base_layers(cfg, bases)

    stop = threading.Event()
    hub = HubReader(cfg, sha, stop)

    def push_layer(numbered):
        i, entries = numbered
        t = time.monotonic()
        try:
            source = LayerSource(cfg, hub, entries, files, stop)
            digest, size = cfg.target.upload(source, f'layer {i}/{len(plan)}')
        except BaseException:
            stop.set()
            raise
        secs = time.monotonic() - t
        log(f'layer {i}/{len(plan)}: {digest} {size} bytes in {secs:.1f} s ({size / MIB / max(secs, 1e-6):.1f} MiB/s; {layer_names(entries)})')
        return digest, size, layer_names(entries)

    with concurrent.futures.ThreadPoolExecutor(max_workers=cfg.layers) as pool:
        futures = [pool.submit(push_layer, numbered) for numbered in enumerate(plan, 1)]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        failed = [f.exception() for f in futures if f.done() and f.exception() is not None]
        if failed:
            stop.set()
            concurrent.futures.wait(futures)
            raise failed[0]
        new_layers = [f.result() for f in futures]

    labels = model_labels(cfg.repo, sha, cfg.build_config)
    images = []
    for platform, manifest, config in bases:
        (config_data, config_digest), (data, digest), _ = model_image(manifest, config, new_layers, cfg.prefix, labels)
        cfg.target.upload_bytes(config_data, config_digest, f'config of {"/".join(platform)}')
        cfg.target.put_manifest(digest, OCI_MANIFEST, data)
        images.append((platform, digest, len(data)))
    if len(images) == 1:
        top_media, top = OCI_MANIFEST, (data, images[0][1])
    else:
        top_media, top = OCI_INDEX, image_index(images)
    digest = cfg.target.put_manifest(top[1], top_media, top[0])
    log(f'pushed {cfg.image}@{digest}: {len(new_layers)} model layers, {total} model bytes in {time.monotonic() - started:.1f} s')

    # Tags only now: every blob and manifest is committed.
    for tag in cfg.tags:
        cfg.target.put_manifest(tag, top_media, top[0])
        log(f'tagged {cfg.image}:{tag}')
    if cfg.serving_tag:
        # The serving tag (model commit, build configuration) is never moved: an InferenceService in git serves by it.
        served = cfg.target.manifest(cfg.serving_tag)
        if served is None:
            cfg.target.put_manifest(cfg.serving_tag, top_media, top[0])
            log(f'tagged {cfg.image}:{cfg.serving_tag} (the serving tag)')
        elif served[1] != digest:
            raise FetchError(f'the serving tag {cfg.serving_tag} names {served[1]}, and this build of the same model commit and build '
                             f'configuration is {digest}: the build did not reproduce the image; a serving tag is never moved, so it keeps {served[1]}')
        else:
            log(f'the serving tag {cfg.serving_tag} already names {digest}')
    back = cfg.target.manifest(cfg.tags[0])
    if back is None or back[1] != digest:
        raise FetchError(f'the registry serves {back and back[1]} under {cfg.image}:{cfg.tags[0]}, not the pushed {digest}')
    log(f'registry serves {cfg.image}:{cfg.tags[0]} at {digest}')
    for path, text in zip(cfg.results, (f'{cfg.image}:{cfg.tags[0]}', digest, f'{cfg.image}@{digest}')):
        with open(path, 'w') as f:
            f.write(text)


def step(cfg):
    try:
        publish(cfg)
    except (RegistryFailure, ImageError) as e:
        raise FetchError(str(e))
    except RegistryRetry as e:
        raise FetchError(f'{e}; no retry left')
    finally:
        cfg.target.close()
        cfg.base.close()


if __name__ == '__main__':
    sys.exit(run_step('stream-publish', StreamConfig, step))
