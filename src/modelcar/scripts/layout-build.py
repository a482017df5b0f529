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
import tarfile
import time

OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar'
REF_NAME = 'org.opencontainers.image.ref.name'
# Docker schema 2 media types skopeo may leave in a layout, and their OCI equivalents.
DOCKER_TO_OCI = {
    'application/vnd.docker.container.image.v1+json': OCI_CONFIG,
    'application/vnd.docker.image.rootfs.diff.tar.gzip': 'application/vnd.oci.image.layer.v1.tar+gzip',
    'application/vnd.docker.image.rootfs.diff.tar': OCI_LAYER_TAR,
}
EPOCH = 0  # every entry's mtime and the image's "created": 1970-01-01T00:00:00Z
CREATED = '1970-01-01T00:00:00Z'
CHUNK = 8 * 1024 * 1024
BLOCK = 512
OCTAL_MAX = 8 ** 11 - 1  # the largest size the ustar header's 11 octal digits hold


class BuildError(Exception):
    pass


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

    def write_json(self, obj, label):
        data = json.dumps(obj, separators=(',', ':')).encode()
        digest = 'sha256:' + hashlib.sha256(data).hexdigest()
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


def plan_layers(model_dir, files, large, room):
    """One layer per large file, then the small files together, last. Past `room` layers,
    the two neighbouring large-file layers with the fewest bytes together become one, again
    and again, the small files keeping their own layer on top (while room allows two): no
    file is split, the largest files keep their own layers, and the plan depends on the
    model and `room` only.

    The small files go on top because they are what a new revision most often changes
    alone (config, tokenizer, generation settings), and a node's containers/storage names a
    layer by its chain (every layer under it): a changed layer makes the node re-create every
    layer above it from its local copy. On top, a config-only revision re-creates one small
    layer, not the whole model."""
    small, big = [], []
    for rel in files:
        size = os.path.getsize(os.path.join(model_dir, rel))
        (big if size >= large else small).append((rel, size))
    if small and room < 2:
        return [big + small]
    layers = [[f] for f in big]
    sizes = [size for _, size in big]
    while len(layers) > room - (1 if small else 0):
        i = min(range(len(layers) - 1), key=lambda i: sizes[i] + sizes[i + 1])
        layers[i:i + 2] = [layers[i] + layers[i + 1]]
        sizes[i:i + 2] = [sizes[i] + sizes[i + 1]]
    return layers + [small] if small else layers


def tar_header(name, size, mode, kind):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.type = kind
    info.uid = info.gid = 0
    info.uname = info.gname = ''
    info.mtime = EPOCH
    big = size > OCTAL_MAX
    if big:
        info.pax_headers = {'size': str(size)}
    buf = info.tobuf(format=tarfile.PAX_FORMAT, encoding='utf-8', errors='strict')
    if not big:
        return buf
    # Past 11 octal digits (8 GiB) tarfile puts the size in the PAX record only and 0 in the
    # ustar field, and a reader that skips PAX (Clair's tarfs, containers/olot#210) takes the
    # file for empty and reads its data as headers. The ustar field gets the size too, in GNU
    # tar's base-256 form, which GNU tar, Go's archive/tar (containers/storage, Docker) and
    # Clair's tarfs parse in any header; PAX readers take the record. Smaller files keep
    # the plain PAX headers, so their layers keep their digests.
    head = bytearray(buf[-BLOCK:])
    head[124:136] = b'\x80' + size.to_bytes(11, 'big')
    head[148:156] = b' ' * 8
    head[148:155] = b'%06o\0' % sum(head)
    return buf[:-BLOCK] + bytes(head)


def write_layer(blobs, index, model_dir, prefix, entries, sums, buf):
    tmp, raw = blobs.open_temp(f'layer{index}')
    out = HashingWriter(raw)
    try:
        written_dirs = set()
        for rel, size in entries:
            # Parent directories first, each once per layer.
            parts = rel.split('/')[:-1]
            for i in range(len(parts) + 1):
                d = '/'.join([prefix] + parts[:i])
                if d not in written_dirs:
                    written_dirs.add(d)
                    out.write(tar_header(d, 0, 0o755, tarfile.DIRTYPE))
            out.write(tar_header(f'{prefix}/{rel}', size, 0o644, tarfile.REGTYPE))
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
            pad = (-size) % BLOCK
            if pad:
                out.write(b'\0' * pad)
        out.write(b'\0' * (2 * BLOCK))
        digest = out.digest()
        blobs.commit(tmp, raw, digest)
        return digest, out.size
    except BaseException:
        raw.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def oci_descriptor(desc, what):
    media = DOCKER_TO_OCI.get(desc.get('mediaType'), desc.get('mediaType'))
    if not media or not media.startswith('application/vnd.oci.image.'):
        raise BuildError(f'the base image has a {what} of media type {desc.get("mediaType")!r}, which this builder does not handle')
    out = {'mediaType': media, 'digest': desc['digest'], 'size': desc['size']}
    if desc.get('annotations'):
        out['annotations'] = desc['annotations']
    return out


def parse_platforms(text):
    """PLATFORMS as (os, architecture[, variant]) tuples; none when empty."""
    platforms = []
    for word in text.split():
        parts = tuple(word.split('/'))
        if len(parts) not in (2, 3) or not all(parts):
            raise BuildError(f'platform {word!r} in PLATFORMS is not os/architecture[/variant]')
        if parts in platforms:
            raise BuildError(f'platform {word!r} is twice in PLATFORMS')
        platforms.append(parts)
    return platforms


def oci_platform(platform):
    out = {'architecture': platform[1], 'os': platform[0]}
    if len(platform) > 2:
        out['variant'] = platform[2]
    return out


def image_manifest(blobs, base_manifest, config, new_layers, prefix, labels):
    """Writes the base's config with the model's layers, history and labels, and the manifest; returns
    (manifest, digest, size). `config` is changed."""
    config.setdefault('rootfs', {'type': 'layers', 'diff_ids': []})['diff_ids'].extend(d for d, _, _ in new_layers)
    history = config.setdefault('history', [])
    for d, _, names in new_layers:
        history.append({'created': CREATED, 'created_by': f'modelcar layout builder: /{prefix}: {names}'})
    inner = config.setdefault('config', {})
    merged = inner.get('Labels') or {}
    merged.update(labels)
    inner['Labels'] = merged
    config['created'] = CREATED
    config_digest, config_size = blobs.write_json(config, 'config')
    manifest = {
        'schemaVersion': 2,
        'mediaType': OCI_MANIFEST,
        'config': {'mediaType': OCI_CONFIG, 'digest': config_digest, 'size': config_size},
        'layers': [oci_descriptor(layer, 'layer') for layer in base_manifest['layers']]
        + [{'mediaType': OCI_LAYER_TAR, 'digest': d, 'size': s} for d, s, _ in new_layers],
    }
    digest, size = blobs.write_json(manifest, 'manifest')
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
            got = (config.get('os'), config.get('architecture'))
            if got != platform[:2]:
                raise BuildError(f'the base image for {"/".join(platform)} ({named[0]["digest"]}) is built for '
                                 f'{got[0]}/{got[1]}: the base image must be an image index with a manifest for every '
                                 'platform (pin it by the index digest), or build for the platforms it has')
        bases.append((platform, named[0]['digest'], base_manifest, config))

    sums = read_sums(env('SUMS_FILE'))
    files = model_files(model_dir, sums)
    base_layers = max(len(b[2]['layers']) for b in bases)
    room = max_layers - base_layers
    if room < 1:
        raise BuildError(f'the base image has {base_layers} layers, MAX_LAYERS is {max_layers}: '
                         'no layer is left for the model; raise maxLayers or choose a base image with fewer layers')
    plan = plan_layers(model_dir, files, large, room)
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
        names = ', '.join(rel for rel, _ in entries[:3]) + (f' and {len(entries) - 3} more' if len(entries) > 3 else '')
        print(f'layer {i}/{len(plan)}: {digest} {size} bytes in {secs:.1f} s ({names})', flush=True)
        new_layers.append((digest, size, names))

    labels = {
        'org.opencontainers.image.source': f'https://huggingface.co/{repo}',
        'io.kserve.modelcar.model': repo,
        'io.kserve.modelcar.revision': revision,
        'io.kserve.modelcar.build-config': build_config,
    }
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
        top_digest, top_size = blobs.write_json({
            'schemaVersion': 2,
            'mediaType': OCI_INDEX,
            'manifests': [{'mediaType': OCI_MANIFEST, 'digest': d, 'size': n, 'platform': oci_platform(platform)}
                          for platform, (_, d, n) in images],
        }, 'index')
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
