"""The modelcar image's bytes, shared by the OCI layout builder (layout-build.py, which writes them to a layout on the
run's volume) and the streaming publisher (stream-publish.py, which sends them to a registry): the layer plan, every
tar header, the configs, manifests and index. Both modes give byte for byte the same image, so a registry that holds
one mode's image stores nothing again for the other's. Python standard library only; nothing here touches a file."""

import hashlib
import json
import tarfile

OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
OCI_INDEX = 'application/vnd.oci.image.index.v1+json'
OCI_CONFIG = 'application/vnd.oci.image.config.v1+json'
OCI_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar'
REF_NAME = 'org.opencontainers.image.ref.name'
# Docker schema 2 media types a base image may have, and their OCI equivalents.
DOCKER_TO_OCI = {
    'application/vnd.docker.container.image.v1+json': OCI_CONFIG,
    'application/vnd.docker.image.rootfs.diff.tar.gzip': 'application/vnd.oci.image.layer.v1.tar+gzip',
    'application/vnd.docker.image.rootfs.diff.tar': OCI_LAYER_TAR,
}
EPOCH = 0  # every entry's mtime and the image's "created": 1970-01-01T00:00:00Z
CREATED = '1970-01-01T00:00:00Z'
BLOCK = 512
OCTAL_MAX = 8 ** 11 - 1  # the largest size the ustar header's 11 octal digits hold


class ImageError(Exception):
    """What makes the image impossible to build as asked."""


def json_blob(obj):
    """A JSON blob as the builder writes it: (bytes, digest)."""
    data = json.dumps(obj, separators=(',', ':')).encode()
    return data, 'sha256:' + hashlib.sha256(data).hexdigest()


def plan_layers(sized, large, room):
    """The layers of the model's (path, size) files, given in byte order of their paths: one layer per large file,
    then the small files together, last. Past `room` layers, the two neighbouring large-file layers with the fewest
    bytes together become one, again and again, the small files keeping their own layer on top (while room allows
    two): no file is split, the largest files keep their own layers, and the plan depends on the model and `room`
    only.

    The small files go on top because they are what a new revision most often changes alone (config, tokenizer,
    generation settings), and a node's containers/storage names a layer by its chain (every layer under it): a
    changed layer makes the node re-create every layer above it from its local copy. On top, a config-only revision
    re-creates one small layer, not the whole model."""
    small, big = [], []
    for rel, size in sized:
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


def layer_names(entries):
    return ', '.join(rel for rel, _ in entries[:3]) + (f' and {len(entries) - 3} more' if len(entries) > 3 else '')


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


def layer_pieces(prefix, entries):
    """A layer's tar stream, in order: bytes (headers, padding, the end of the archive) and, for each file, its
    (path, size) whose content comes next. Entries are deterministic: paths under `prefix`, each parent directory
    once (0755), files 0644, owner 0:0, mtime 0."""
    written_dirs = set()
    for rel, size in entries:
        parts = rel.split('/')[:-1]
        head = b''
        for i in range(len(parts) + 1):
            d = '/'.join([prefix] + parts[:i])
            if d not in written_dirs:
                written_dirs.add(d)
                head += tar_header(d, 0, 0o755, tarfile.DIRTYPE)
        yield head + tar_header(f'{prefix}/{rel}', size, 0o644, tarfile.REGTYPE)
        yield (rel, size)
        pad = (-size) % BLOCK
        if pad:
            yield b'\0' * pad
    yield b'\0' * (2 * BLOCK)


def layer_size(prefix, entries):
    return sum(len(p) if isinstance(p, bytes) else p[1] for p in layer_pieces(prefix, entries))


def oci_descriptor(desc, what):
    media = DOCKER_TO_OCI.get(desc.get('mediaType'), desc.get('mediaType'))
    if not media or not media.startswith('application/vnd.oci.image.'):
        raise ImageError(f'the base image has a {what} of media type {desc.get("mediaType")!r}, which this builder does not handle')
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
            raise ImageError(f'platform {word!r} in PLATFORMS is not os/architecture[/variant]')
        if parts in platforms:
            raise ImageError(f'platform {word!r} is twice in PLATFORMS')
        platforms.append(parts)
    return platforms


def oci_platform(platform):
    out = {'architecture': platform[1], 'os': platform[0]}
    if len(platform) > 2:
        out['variant'] = platform[2]
    return out


def check_base_platform(platform, config, digest):
    """Fails when a platform's base is built for another one (skopeo copies a single-platform base whatever is asked)."""
    got = (config.get('os'), config.get('architecture'))
    if platform is not None and got != platform[:2]:
        raise ImageError(f'the base image for {"/".join(platform)} ({digest}) is built for '
                         f'{got[0]}/{got[1]}: the base image must be an image index with a manifest for every '
                         'platform (pin it by the index digest), or build for the platforms it has')


def model_labels(repo, revision, build_config):
    return {
        'org.opencontainers.image.source': f'https://huggingface.co/{repo}',
        'io.kserve.modelcar.model': repo,
        'io.kserve.modelcar.revision': revision,
        'io.kserve.modelcar.build-config': build_config,
    }


def model_image(base_manifest, config, new_layers, prefix, labels):
    """The base's config with the model's (digest, size, names) layers, history and labels, and its manifest:
    ((config bytes, digest), (manifest bytes, digest), manifest). `config` is changed."""
    config.setdefault('rootfs', {'type': 'layers', 'diff_ids': []})['diff_ids'].extend(d for d, _, _ in new_layers)
    history = config.setdefault('history', [])
    for d, _, names in new_layers:
        history.append({'created': CREATED, 'created_by': f'modelcar layout builder: /{prefix}: {names}'})
    inner = config.setdefault('config', {})
    merged = inner.get('Labels') or {}
    merged.update(labels)
    inner['Labels'] = merged
    config['created'] = CREATED
    config_blob = json_blob(config)
    manifest = {
        'schemaVersion': 2,
        'mediaType': OCI_MANIFEST,
        'config': {'mediaType': OCI_CONFIG, 'digest': config_blob[1], 'size': len(config_blob[0])},
        'layers': [oci_descriptor(layer, 'layer') for layer in base_manifest['layers']]
        + [{'mediaType': OCI_LAYER_TAR, 'digest': d, 'size': s} for d, s, _ in new_layers],
    }
    return config_blob, json_blob(manifest), manifest


def image_index(images):
    """The OCI image index of (platform, manifest digest, manifest size) images: (bytes, digest)."""
    return json_blob({
        'schemaVersion': 2,
        'mediaType': OCI_INDEX,
        'manifests': [{'mediaType': OCI_MANIFEST, 'digest': d, 'size': n, 'platform': oci_platform(platform)}
                      for platform, d, n in images],
    })
