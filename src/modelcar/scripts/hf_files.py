"""The download on disk: file state (for resume), checks, atomic final names, disk preflight, SHA256SUMS."""

import hashlib
import json
import os
import shutil
import threading
import urllib.parse

from hf_hub import *


class DigestMismatch(FetchError):
    pass


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass  # a file system that cannot sync a directory: the rename is atomic all the same


def remove_quietly(*paths):
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            log(f"  warning: could not remove {path}: {e}")


def write_atomic(path, data):
    with open(path + ".tmp", "w") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path + ".tmp", path)


def read_record(path):
    try:
        with open(path) as handle:
            record = json.load(handle)
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


class FileState(object):
    """A file being downloaded into STATE_DIR/<key>.data, its ranges complete in <key>.json (for a Tekton
    retry), its checked sha256 in <key>.done (written before the rename into MODEL_DIR: a kept file's digest)."""

    def __init__(self, cfg, sha, repo_file):
        self.cfg = cfg
        self.file = repo_file
        key = hashlib.sha256(f"{repo_file.path}\0{repo_file.blob_id}\0{repo_file.sha256}".encode()).hexdigest()[:40]
        self.data_path, self.state_path, self.done_path = (os.path.join(cfg.state_dir, key + x) for x in (".data", ".json", ".done"))
        self.dest = os.path.join(cfg.model_dir, *repo_file.path.split("/"))
        self.url = f"{cfg.endpoint}/{cfg.repo}/resolve/{sha}/{urllib.parse.quote(repo_file.path)}"
        self.sha = sha
        # Files kept in git are small: one request. LFS files come in ranges.
        self.chunk = cfg.chunk_bytes if repo_file.sha256 else max(repo_file.size, 1)
        self.chunks = max(1, -(-repo_file.size // self.chunk))
        self.lock = threading.Lock()
        self.fd = None
        self.direct_url = None  # the CDN URL a redirect gave ("" if none), reused for the other ranges
        self.resolve_lock = threading.Lock()
        self.finished = self.restarted = False
        self.reset()

    def reset(self):
        self.complete = [False] * self.chunks
        self.hashed_chunks = self.resumed_bytes = 0
        self.sha256 = hashlib.sha256()
        self.git = hashlib.sha1(b"blob %d\0" % self.file.size) if self.file.sha256 is None else None

    def kept(self):
        record = read_record(self.done_path)
        digest = record.get("sha256")
        if not os.path.isfile(self.dest) or os.path.getsize(self.dest) != self.file.size or record.get("size") != self.file.size \
                or not SHA256_RE.match(str(digest)) or self.file.sha256 not in (None, digest):
            return False
        self.file.digest = digest
        return True

    def open(self):
        state = read_record(self.state_path)
        resume = os.path.isfile(self.data_path) and os.path.getsize(self.data_path) == self.file.size \
            and state.get("size") == self.file.size and state.get("chunk") == self.chunk
        if not resume:
            remove_quietly(self.data_path, self.state_path)
        self.fd = os.open(self.data_path, os.O_RDWR | os.O_CREAT, 0o664)
        if not resume:
            try:
                os.posix_fallocate(self.fd, 0, self.file.size)
            except OSError:  # a file system without it (or a size of 0): a sparse file
                os.ftruncate(self.fd, self.file.size)
            self.save_state()
            return
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
        write_atomic(self.state_path, json.dumps({"path": self.file.path, "size": self.file.size, "chunk": self.chunk,
                                                  "complete": [i for i in range(self.chunks) if self.complete[i]]}))

    def chunk_done(self, index):
        with self.lock:
            self.complete[index] = True
            self.save_state()

    def advance(self):
        """Hashes the ranges complete in order (the hasher thread only); True once the whole file is. Reads from
        the page cache: holding out-of-order ranges in memory would cost connections x chunk of RAM."""
        while True:
            with self.lock:
                index = self.hashed_chunks
                if index >= self.chunks or not self.complete[index]:
                    return index >= self.chunks
            pos, end = self.chunk_start(index), self.chunk_end(index)
            while pos < end:
                data = os.pread(self.fd, min(4 * MIB, end - pos), pos)
                if not data:
                    raise FetchError(f"{self.file.path}: the temporary file is shorter than the hub's size")
                self.sha256.update(data)
                if self.git:
                    self.git.update(data)
                pos += len(data)
            self.hashed_chunks = index + 1

    def finish(self):
        digest, path = self.sha256.hexdigest(), self.file.path
        if self.file.sha256 not in (None, digest):
            raise DigestMismatch(f"sha256 mismatch for {path}: the hub listed {self.file.sha256}, the downloaded file has {digest}")
        if self.git and self.git.hexdigest() != self.file.blob_id:
            raise DigestMismatch(f"git blob id mismatch for {path}: the hub listed {self.file.blob_id}, the downloaded file has {self.git.hexdigest()}")
        os.fsync(self.fd)
        self.close()
        parent = os.path.dirname(self.dest)
        model_dir = os.path.realpath(self.cfg.model_dir)
        for _ in range(2):  # before creating the directories, and after (a symlink could redirect them)
            if os.path.commonpath([model_dir, os.path.realpath(parent)]) != model_dir:
                raise FetchError(f"refusing to write {path}: it resolves outside MODEL_DIR")
            os.makedirs(parent, mode=0o775, exist_ok=True)
        os.chmod(self.data_path, 0o664)
        write_atomic(self.done_path, json.dumps({"path": path, "size": self.file.size, "sha256": digest}))
        os.replace(self.data_path, self.dest)
        fsync_dir(parent)
        remove_quietly(self.state_path)
        self.file.digest = digest
        self.finished = True

    def discard(self):
        self.close()
        remove_quietly(self.data_path, self.state_path)
        self.reset()
        self.open()

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def check_space(cfg, total, still_needed, kept):
    """Before the first byte: room for the rest of the model, the image the build writes beside it, and a
    margin for what the counts cannot foresee (base image, manifests, file system)."""
    os.makedirs(cfg.state_dir, mode=0o775, exist_ok=True)
    usage = shutil.disk_usage(cfg.state_dir)
    image = int(total * cfg.image_factor)
    margin = max(64 * MIB, int((total + image) * 0.02))
    need = still_needed + image + margin
    free, size, need_h, still_h, image_h, margin_h = map(human_bytes, (usage.free, usage.total, need, still_needed, image, margin))
    log(f"disk space: {free} free of {size} on the run's volume; this run needs {need_h} more (model files still to fetch {still_h}, "
        f"the image the {cfg.builder} builder writes {image_h}, margin {margin_h})" + (f"; {human_bytes(kept)} already on the volume" if kept else ""))
    if usage.free < need:
        raise FetchError(f"not enough space on the run's volume: {free} free (of {size}), the run needs {need_h} (model {still_h} still to fetch "
                         f"+ image {image_h} + margin {margin_h}); nothing was downloaded. Give the run more storage (addRun(..., "
                         f"{{ storage: Size.gibibytes({-(-(total + image + margin) // 1024 ** 3) + 1}) }}) or more), or free space on its claim")


def write_sums(cfg, files):
    """MODEL_DIR holds exactly the selected files: their checked digests go to SHA256SUMS, by path bytes."""
    found = {os.path.relpath(os.path.join(root, name), cfg.model_dir).replace(os.sep, "/")
             for root, _dirs, names in os.walk(cfg.model_dir) for name in names}
    extra, missing = sorted(found - {f.path for f in files}), sorted({f.path for f in files} - found)
    if extra or missing:
        raise FetchError(f"{cfg.model_dir} does not hold exactly the selected files: unexpected {extra[:5] or 'none'}, missing {missing[:5] or 'none'}")
    write_atomic(cfg.sums_file, "".join(f"{f.digest}  {f.path}\n" for f in sorted(files, key=lambda f: f.path.encode())))
    fsync_dir(os.path.dirname(cfg.sums_file))
