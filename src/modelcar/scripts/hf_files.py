"""The download on disk: each file's state (for resume), its checks and atomic final name, the disk
space preflight, SHA256SUMS."""

import hashlib
import json
import os
import shutil
import threading
import urllib.parse

from hf_hub import *

# Room for what the byte counts cannot foresee: the base image, manifests, file system overhead.
SPACE_MARGIN_MIN = 64 * MIB
SPACE_MARGIN_RATIO = 0.02


class DigestMismatch(FetchError):
    pass


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
    with open(path + ".tmp", "w") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(path + ".tmp", path)


class FileState(object):
    """One repo file being downloaded: a preallocated file in STATE_DIR written at offsets by several
    connections, hashed in order as its ranges complete, then checked and renamed into MODEL_DIR.

    STATE_DIR/<key>.data holds the bytes, <key>.json the ranges complete (for a Tekton retry), <key>.done
    the checked sha256 (written before the rename, so that a kept file's digest is known)."""

    def __init__(self, cfg, sha, repo_file):
        self.cfg = cfg
        self.file = repo_file
        key = hashlib.sha256(("%s\0%s\0%s" % (repo_file.path, repo_file.blob_id, repo_file.sha256)).encode("utf-8")).hexdigest()[:40]
        self.data_path, self.state_path, self.done_path = (os.path.join(cfg.state_dir, key + x) for x in (".data", ".json", ".done"))
        self.dest = os.path.join(cfg.model_dir, *repo_file.parts)
        self.url = "%s/%s/resolve/%s/%s" % (cfg.endpoint, cfg.repo, sha, urllib.parse.quote(repo_file.path))
        self.sha = sha
        # Files kept in git are small: one request. LFS files come in ranges.
        self.chunk = cfg.chunk_bytes if repo_file.sha256 else max(repo_file.size, 1)
        self.chunks = max(1, -(-repo_file.size // self.chunk))
        self.lock = threading.Lock()
        self.fd = None
        self.direct_url = None  # the CDN URL a redirect gave ("" if none), reused for the other ranges
        self.resolve_lock = threading.Lock()
        self.finished = False
        self.restarted = False
        self.reset()

    def reset(self):
        self.complete = [False] * self.chunks
        self.hashed_chunks = 0
        self.resumed_bytes = 0
        self.sha256 = hashlib.sha256()
        self.git = hashlib.sha1(b"blob %d\0" % self.file.size) if self.file.sha256 is None else None

    def kept(self):
        """True if an earlier attempt checked this file and gave it its final name (a Tekton retry)."""
        try:
            with open(self.done_path) as handle:
                record = json.load(handle)
            size = os.stat(self.dest).st_size
        except (OSError, ValueError):
            return False
        if not isinstance(record, dict) or record.get("size") != self.file.size or size != self.file.size:
            return False
        digest = record.get("sha256")
        if not isinstance(digest, str) or not SHA256_RE.match(digest) or self.file.sha256 not in (None, digest):
            return False
        self.file.digest = digest
        return True

    def open(self):
        """Opens (or reopens, on a retry) the data file, preallocated to the file's size."""
        state = None
        if os.path.exists(self.data_path):
            try:
                with open(self.state_path) as handle:
                    state = json.load(handle)
            except (OSError, ValueError):
                pass
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
                except OSError:
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
        """Hashes the ranges complete in order since the last call (the hasher thread only);
        True once the whole file is hashed."""
        while True:
            with self.lock:
                nxt = self.hashed_chunks
                if nxt >= self.chunks or not self.complete[nxt]:
                    return nxt >= self.chunks
            # Read back from the page cache just after it was written: ranges complete out of order, and
            # holding them in memory until their turn would cost connections x chunk of RAM.
            pos, end = self.chunk_start(nxt), self.chunk_end(nxt)
            while pos < end:
                data = os.pread(self.fd, min(READ_SIZE * 4, end - pos), pos)
                if not data:
                    raise FetchError("%s: the temporary file is shorter than the hub's size" % self.file.path)
                self.sha256.update(data)
                if self.git is not None:
                    self.git.update(data)
                pos += len(data)
            with self.lock:
                self.hashed_chunks = nxt + 1

    def finish(self):
        """Checks the whole file and gives it its final name (atomic)."""
        digest = self.sha256.hexdigest()
        if self.file.sha256 is not None and digest != self.file.sha256:
            raise DigestMismatch("sha256 mismatch for %s: the hub listed %s, the downloaded file has %s"
                                 % (self.file.path, self.file.sha256, digest))
        if self.git is not None and self.git.hexdigest() != self.file.blob_id:
            raise DigestMismatch("git blob id mismatch for %s: the hub listed %s, the downloaded file has %s"
                                 % (self.file.path, self.file.blob_id, self.git.hexdigest()))
        os.fsync(self.fd)
        self.close()
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

    def discard(self):
        """Throws away what an earlier attempt left (it did not check out): the file starts over."""
        self.close()
        remove_quietly(self.data_path)
        remove_quietly(self.state_path)
        self.reset()
        self.open()

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def check_space(cfg, total, still_needed, kept):
    """Before the first byte: the volume must hold the rest of the model, the image the build writes
    beside it, and a margin."""
    os.makedirs(cfg.state_dir, mode=0o775, exist_ok=True)
    usage = shutil.disk_usage(cfg.state_dir)
    image = int(total * cfg.image_factor)
    margin = max(SPACE_MARGIN_MIN, int((total + image) * SPACE_MARGIN_RATIO))
    need = still_needed + image + margin
    free, size, need_h, still_h, image_h, margin_h = map(human_bytes, (usage.free, usage.total, need, still_needed, image, margin))
    log("disk space: %s free of %s on the run's volume; this run needs %s more (model files still to fetch %s, "
        "the image the %s builder writes %s, margin %s)%s" % (free, size, need_h, still_h, cfg.builder, image_h, margin_h,
                                                              "; %s already on the volume" % human_bytes(kept) if kept else ""))
    if usage.free < need:
        raise FetchError("not enough space on the run's volume: %s free (of %s), the run needs %s (model %s still to fetch + image %s "
                         "+ margin %s); nothing was downloaded. Give the run more storage (addRun(..., { storage: Size.gibibytes(%d) }) "
                         "or more), or free space on its claim"
                         % (free, size, need_h, still_h, image_h, margin_h, -(-(total + image + margin) // 1024 ** 3) + 1))


def check_model_dir(cfg, files):
    """The model directory holds exactly the selected files (nothing stray from elsewhere)."""
    found = {os.path.relpath(os.path.join(root, name), cfg.model_dir).replace(os.sep, "/")
             for root, _dirs, names in os.walk(cfg.model_dir) for name in names}
    wanted = {f.path for f in files}
    extra, missing = sorted(found - wanted), sorted(wanted - found)
    if extra or missing:
        raise FetchError("%s does not hold exactly the selected files: unexpected %s, missing %s"
                         % (cfg.model_dir, extra[:5] or "none", missing[:5] or "none"))


def write_sums(cfg, files):
    """SHA256SUMS from the digests checked during the download, in the byte order of the paths."""
    write_atomic(cfg.sums_file, "".join("%s  %s\n" % (f.digest, f.path) for f in sorted(files, key=lambda f: f.path.encode())))
    fsync_dir(os.path.dirname(cfg.sums_file))
