#!/usr/bin/env python3
"""Adds the model to an OCI image layout as uncompressed tar layers, without a build container.

The previous step copied the pinned base image into LAYOUT under the reference BASE_REF.
This script (Python standard library only):

1. splits the model's files into layers: each file of at least LARGE_FILE_BYTES gets a layer
   of its own, the smaller files share one, on top (very large single layers break some
   registries; see plan_layers for the order);
   the image, base included, has MAX_LAYERS layers at most (Docker stops at 125, moby
   layer/layer_store.go maxLayerDepth; overlayfs at 500 lower dirs, OVL_MAX_STACK), so past it
   neighbouring layers are merged, the smallest pairs first;
2. writes each layer once, streaming every file through two sha256s: the layer's digest,
   and the file's own sum, checked against SHA256SUMS from the download task (SUMS_FILE, beside
   the model directory so that no repo file can collide with it; so the model
   is read once and written once, and a file changed since the download fails the build);
3. makes every entry deterministic: paths under models/ in byte order, owner 0:0, files 0644
   and directories 0755 (readable by the arbitrary uid KServe runs the modelcar under),
   mtime fixed: the same model on the same base gives the same digests; PAX headers, and a
   file over 8 GiB also has its size in the ustar field (base-256), for readers that skip PAX;
4. appends the layers to the base image's config (diff_ids, history, labels) and manifest;
   the base's entrypoint and command are kept (no ENTRYPOINT is added);
5. with more than one platform (PLATFORMS), does 4. for each platform's base, all of them
   sharing the model layers written once, and writes an OCI image index naming each manifest
   with its platform: the layout's reference IMAGE_REF is then the index;
6. writes every blob and index.json under a temporary name, fsyncs, then renames.

Layers are uncompressed (media type application/vnd.oci.image.layer.v1.tar): weights do not
compress, so gzip would cost CPU for nothing, and the diff_id equals the layer digest.

Env: LAYOUT, BASE_REF, IMAGE_REF, MODEL_DIR, SUMS_FILE, MODEL_REPO, MODEL_REVISION, BUILD_CONFIG,
     LARGE_FILE_BYTES, MAX_LAYERS, MODELS_PATH (default /models), PLATFORMS (optional: os/arch[/variant]
     separated by spaces; each platform's base is the reference BASE_REF-os-arch[-variant] and must be
     built for that platform; without it, BASE_REF is the one base, whatever its platform).

BUILD_CONFIG (the digest of the build configuration, from the pipeline's check task) becomes
the label io.kserve.modelcar.build-config: with the revision label it tells a later run that
a registry already serves exactly what it would build.
"""
import hashlib
import json
import os
import sys
import time

from oci_image import *

CHUNK = 8 * 1024 * 1024


BuildError = ImageError


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None or value == '':
        raise BuildError(f'environment variable {name} is not set')
    return value


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Blobs:
    """The layout's blobs/sha256 directory: every blob is written under a temporary name,
    fsynced, then renamed to its digest."""

    def __init__(self, layout):
        self.dir = os.path.join(layout, 'blobs', 'sha256')
        os.makedirs(self.dir, exist_ok=True)

    def path(self, digest):
        algo, _, hexd = digest.partition(':')
        if algo != 'sha256' or len(hexd) != 64:
            raise BuildError(f'unsupported digest {digest!r} in the base image')
        return os.path.join(self.dir, hexd)

    def read_json(self, digest):
        with open(self.path(digest), 'rb') as f:
            data = f.read()
        if 'sha256:' + hashlib.sha256(data).hexdigest() != digest:
            raise BuildError(f'blob {digest} of the base image does not match its digest')
        return json.loads(data)

    def open_temp(self, label):
        tmp = os.path.join(self.dir, f'.tmp-{label}-{os.getpid()}')
        return tmp, open(tmp, 'xb')

    def commit(self, tmp, f, digest):
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(tmp, self.path(digest))

    def write_blob(self, data, digest, label):
        tmp, f = self.open_temp(label)
        f.write(data)
        self.commit(tmp, f, digest)
        return digest, len(data)


class HashingWriter:
    """A file that hashes what is written to it and counts the bytes."""

    def __init__(self, f):
        self.f = f
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.f.write(data)
        self.sha.update(data)
        self.size += len(data)

    def digest(self):
        return 'sha256:' + self.sha.hexdigest()


def read_sums(path):
    sums = {}
    try:
        with open(path, encoding='utf-8') as f:
            for n, line in enumerate(f, 1):
                line = line.rstrip('\n')
                if not line:
                    continue
                hexd, sep, name = line.partition('  ')
                if not sep or len(hexd) != 64:
                    raise BuildError(f'{path} line {n} is not "<sha256>  <path>": {line!r}')
                sums[os.path.normpath(name)] = hexd
    except FileNotFoundError:
        raise BuildError(f'{path} is missing: the download task did not finish') from None
    return sums


def model_files(model_dir, sums):
    """The model's regular files, relative paths in byte order; every one must be in SHA256SUMS
    and every entry of SHA256SUMS must exist."""
    found = []
    for root, dirs, files in os.walk(model_dir):
        dirs.sort()
        for name in files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, model_dir)
            if os.path.islink(full) or not os.path.isfile(full):
                raise BuildError(f'{full} is not a regular file: the model must hold files only')
            found.append(rel)
    found.sort(key=lambda p: p.encode())
    missing = sorted(set(sums) - set(found))
    extra = sorted(set(found) - set(sums))
    if missing or extra:
        raise BuildError(f'model files in {model_dir} do not match SHA256SUMS from the download: '
                         f'missing {missing[:5]}, not listed {extra[:5]}: refusing to build')
    if not found:
        raise BuildError(f'no model files in {model_dir}')
    return found


def write_layer(blobs, index, model_dir, prefix, entries, sums, buf):
    tmp, raw = blobs.open_temp(f'layer{index}')
    out = HashingWriter(raw)
    try:
        for piece in layer_pieces(prefix, entries):
            if isinstance(piece, bytes):
                out.write(piece)
                continue
            rel, size = piece
            file_sha = hashlib.sha256()
            remaining = size
            with open(os.path.join(model_dir, rel), 'rb', buffering=0) as src:
                view = memoryview(buf)
                while remaining > 0:
                    n = src.readinto(view[:min(CHUNK, remaining)])
                    if not n:
                        raise BuildError(f'{rel} shrank while it was being read: refusing to build')
                    chunk = view[:n]
                    file_sha.update(chunk)
                    out.write(chunk)
                    remaining -= n
                if src.read(1):
                    raise BuildError(f'{rel} grew while it was being read: refusing to build')
            if file_sha.hexdigest() != sums[rel]:
                raise BuildError(f'{rel} does not match SHA256SUMS from the download '
                                 f'(sha256 {file_sha.hexdigest()}, expected {sums[rel]}): refusing to build')
        digest = out.digest()
        blobs.commit(tmp, raw, digest)
        return digest, out.size
    except BaseException:
        raw.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def image_manifest(blobs, base_manifest, config, new_layers, prefix, labels):
    """Writes the base's config with the model's layers, history and labels, and the manifest; returns
    (manifest, digest, size). `config` is changed."""
    config_blob, manifest_blob, manifest = model_image(base_manifest, config, new_layers, prefix, labels)
    blobs.write_blob(*config_blob, 'config')
    digest, size = blobs.write_blob(*manifest_blob, 'manifest')
    return manifest, digest, size


def main():
    os.umask(0o002)
    layout = env('LAYOUT')
    base_ref = env('BASE_REF')
    image_ref = env('IMAGE_REF')
    model_dir = env('MODEL_DIR')
    repo = env('MODEL_REPO')
    revision = env('MODEL_REVISION')
    build_config = env('BUILD_CONFIG')
    large = int(env('LARGE_FILE_BYTES'))
    max_layers = int(env('MAX_LAYERS'))
    prefix = env('MODELS_PATH', '/models').strip('/')
    started = time.monotonic()

    platforms = parse_platforms(os.environ.get('PLATFORMS', ''))
    blobs = Blobs(layout)
    with open(os.path.join(layout, 'index.json'), 'rb') as f:
        index = json.load(f)
    # One base per platform (or the one base, its platform unchecked, without PLATFORMS).
    bases = []
    for platform in platforms or [None]:
        ref = base_ref if platform is None else f'{base_ref}-{"-".join(platform)}'
        named = [m for m in index.get('manifests', []) if m.get('annotations', {}).get(REF_NAME) == ref]
        if len(named) != 1:
            raise BuildError(f'{layout}/index.json has {len(named)} manifests named {ref!r}, expected 1')
        base_manifest = blobs.read_json(named[0]['digest'])
        if 'layers' not in base_manifest or 'config' not in base_manifest:
            raise BuildError(f'base image {named[0]["digest"]} is not a single-platform image manifest')
        config = blobs.read_json(base_manifest['config']['digest'])
        if platform is not None:
            check_base_platform(platform, config, named[0]['digest'])
        bases.append((platform, named[0]['digest'], base_manifest, config))

    sums = read_sums(env('SUMS_FILE'))
    files = model_files(model_dir, sums)
    base_layers = max(len(b[2]['layers']) for b in bases)
    room = max_layers - base_layers
    if room < 1:
        raise BuildError(f'the base image has {base_layers} layers, MAX_LAYERS is {max_layers}: '
                         'no layer is left for the model; raise maxLayers or choose a base image with fewer layers')
    plan = plan_layers([(rel, os.path.getsize(os.path.join(model_dir, rel))) for rel in files], large, room)
    total = sum(size for layer in plan for _, size in layer)
    print(f'model: {len(files)} files, {total} bytes -> {len(plan)} layers '
          f'(files of {large} bytes or more get a layer of their own, up to {room} layers '
          f'beside the base\'s {base_layers})', flush=True)

    buf = bytearray(CHUNK)
    new_layers = []
    for i, entries in enumerate(plan, 1):
        t = time.monotonic()
        digest, size = write_layer(blobs, i, model_dir, prefix, entries, sums, buf)
        secs = time.monotonic() - t
        names = layer_names(entries)
        print(f'layer {i}/{len(plan)}: {digest} {size} bytes in {secs:.1f} s ({names})', flush=True)
        new_layers.append((digest, size, names))

    labels = model_labels(repo, revision, build_config)
    images = [(platform, image_manifest(blobs, base_manifest, config, new_layers, prefix, labels))
              for platform, _, base_manifest, config in bases]
    used = set()
    for _, (manifest, manifest_digest, manifest_size) in images:
        used |= {manifest['config']['digest'], manifest_digest} | {layer['digest'] for layer in manifest['layers']}
    if len(images) == 1:
        _, (_, top_digest, top_size) = images[0]
        top_media = OCI_MANIFEST
    else:
        # The model layers are the same blobs in every platform's manifest: written once, pushed once.
        top_digest, top_size = blobs.write_blob(*image_index([(p, d, n) for p, (_, d, n) in images]), 'index')
        top_media = OCI_INDEX
        used.add(top_digest)

    # index.json names only the modelcar; the base's own manifest and config are dropped
    # unless the new image still refers to them.
    new_index = {
        'schemaVersion': 2,
        'mediaType': 'application/vnd.oci.image.index.v1+json',
        'manifests': [{
            'mediaType': top_media, 'digest': top_digest, 'size': top_size,
            'annotations': {REF_NAME: image_ref},
        }],
    }
    tmp = os.path.join(layout, '.index.json.tmp')
    with open(tmp, 'x', encoding='utf-8') as f:
        json.dump(new_index, f, separators=(',', ':'))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(layout, 'index.json'))
    for _, base_digest, base_manifest, _ in bases:
        for stale in (base_digest, base_manifest['config']['digest']):
            if stale not in used and os.path.exists(blobs.path(stale)):
                os.unlink(blobs.path(stale))
    fsync_dir(blobs.dir)
    fsync_dir(layout)
    secs = time.monotonic() - started
    if len(images) == 1:
        what = f'manifest {top_digest}'
    else:
        what = f'index {top_digest} (' + ', '.join(f'{"/".join(p)} manifest {d}' for p, (_, d, _) in images) + ')'
    print(f'wrote oci:{layout}:{image_ref}: {what}, '
          f'{len(new_layers)} model layers, {total} model bytes in {secs:.1f} s', flush=True)

if __name__ == '__main__':
    try:
        main()
    except BuildError as e:
        print(f'layout build failed: {e}', file=sys.stderr)
        sys.exit(1)
