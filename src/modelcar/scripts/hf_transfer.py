"""The transfer: connections shared by files and byte ranges, resumed where a cut left them, a hasher
thread beside them, and the progress line."""

import os
import queue
import re
import threading
import time

from hf_hub import *
from hf_files import *


def human_seconds(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


def mib_per_second(n, seconds):
    return "%.1f MiB/s" % (n / MIB / seconds) if seconds > 0 else "n/a"


class Progress(object):
    """Shared counters and the periodic progress line (a line per interval, no carriage return)."""

    def __init__(self, cfg, total, files):
        self.cfg = cfg
        self.total = total
        self.files = files
        self.lock = threading.Lock()
        self.done = 0  # bytes this attempt wrote
        self.base = 0  # bytes already there (kept or resumed)
        self.active = 0
        self.files_done = 0
        self.started = self.last_time = time.monotonic()
        self.last_done = 0
        self.stop = threading.Event()

    def add(self, n, active=0, files=0):
        with self.lock:
            self.done += n
            self.active += active
            self.files_done += files

    def line(self):
        now = time.monotonic()
        with self.lock:
            done, active, files_done = self.done, self.active, self.files_done
        have = self.base + done
        interval = now - self.last_time
        recent = (done - self.last_done) / interval if interval > 0 else 0.0
        self.last_time, self.last_done = now, done
        overall = done / (now - self.started) if now > self.started else 0.0
        left = self.total - have
        eta = "0s" if left <= 0 else human_seconds(left / overall) if overall > 0 else "unknown"
        log("progress: %s of %s (%.0f%%), %s now, %s on average, ETA %s, %d of %d connections in use, %d of %d files done"
            % (human_bytes(have), human_bytes(self.total), 100.0 * have / self.total if self.total else 100.0,
               mib_per_second(recent, 1.0), mib_per_second(overall, 1.0), eta, active, self.cfg.connections, files_done, self.files))

    def run(self):
        while not self.stop.wait(self.cfg.progress_interval):
            self.line()


class Transfer(object):
    """N connections over a shared queue of (file, range) jobs."""

    def __init__(self, cfg, states, progress):
        self.cfg = cfg
        self.progress = progress
        self.lock = threading.Lock()
        # pop() takes them in order: small files first, then each large file's ranges in order.
        self.jobs = [(state, index) for state in states for index in state.pending()][::-1]
        self.error = None
        self.ranged = 0
        # One thread hashes (and checks, syncs, renames) while the connections keep downloading:
        # hashlib releases the GIL, so hashing runs beside the transfers instead of stalling one.
        self.hashq = queue.Queue()
        threading.Thread(target=self.hash_loop, name="hasher", daemon=True).start()

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
            return self.jobs.pop() if self.error is None and self.jobs else None

    def fail(self, error):
        with self.lock:
            self.error = self.error or error

    def worker(self):
        try:
            while True:
                job = self.take()
                if job is None:
                    return
                state, index = job
                self.progress.add(0, active=1)
                try:
                    self.fetch_range(state, index)
                finally:
                    self.progress.add(0, active=-1)
                state.chunk_done(index)
                self.hashq.put(state)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self.fail(e)

    def completed(self, state):
        try:
            state.finish()
        except DigestMismatch as e:
            if state.resumed_bytes == 0 or state.restarted:
                raise
            # What an earlier attempt left did not survive (a node crash loses unflushed pages): start over once.
            log("  %s; the part kept from an earlier attempt is discarded, downloading %s again" % (e, state.file.path))
            state.restarted = True
            state.discard()
            with self.lock:
                self.jobs.extend((state, i) for i in reversed(state.pending()))
            return
        self.progress.add(0, files=1)
        log("  %s: %s, %s" % (state.file.path, human_bytes(state.file.size), "sha256 verified against the hub's LFS oid"
                              if state.file.sha256 else "git blob id verified, sha256 " + state.file.digest))

    def fetch_range(self, state, index):
        pos, end = state.chunk_start(index), state.chunk_end(index)
        what = "file " + state.file.path
        budget = Budget(self.cfg)
        while pos < end:
            if self.error is not None:
                raise FetchError("stopped: another connection failed")
            before = pos
            try:
                pos = self.attempt(state, pos, end)
            except Exception as exc:  # noqa: BLE001 - classified below
                pos = getattr(exc, "pos", pos)
                if pos > before:
                    budget.stalled = 0  # only attempts without progress count
                error = classify(exc, self.cfg, what, None)
                if error is None:
                    raise
                # A 404 from the CDN, or a 401/403 there (an expired signature): ask the hub for a fresh URL.
                code = 404 if isinstance(error, EntryNotFound) else getattr(exc, "code", None)
                if state.direct_url and code in (401, 403, 404):
                    state.direct_url = None
                    budget.failed(RetryableError("the CDN refused %s (HTTP %d); resolving it again" % (state.file.path, code)))
                    continue
                if isinstance(error, EntryNotFound):
                    raise FetchError("the hub's tree of commit %s lists %s, but resolve does not find it (HTTP 404%s): "
                                     "the hub's listing disagrees with itself; retry later or report it to the hub"
                                     % (state.sha, state.file.path, error))
                if not isinstance(error, RetryableError):
                    raise error
                if pos < end:
                    log("  %s: connection lost at byte %d of %d (%s); resuming from there" % (state.file.path, pos, state.file.size, error))
                if pos == before or error.wait is not None:
                    budget.failed(error)

    def resolve_direct(self, state):
        """For a file in ranges: one 1-byte request to the hub follows its redirect, and the other ranges go
        straight to the CDN's signed URL: no token leaves the hub's host, and the hub's resolver limits see
        one request per file, not one per range."""
        with state.resolve_lock:
            if state.direct_url is None:
                with open_url(self.cfg, state.url, {"Range": "bytes=0-0"}) as response:
                    response.read(1024)
                    final_url = response.geturl()
                state.direct_url = "" if self.cfg.on_hub(final_url) else final_url

    def attempt(self, state, pos, end):
        """One request for [pos, end) of the file; returns the position reached. An exception carries the
        position reached in `pos`, where the next attempt resumes."""
        if state.chunks > 1:
            self.resolve_direct(state)
        whole = state.chunks == 1 and pos == 0 and end == state.file.size
        url = state.direct_url or state.url
        with open_url(self.cfg, url, {} if whole else {"Range": "bytes=%d-%d" % (pos, end - 1)}) as response:
            commit = response.headers.get("X-Repo-Commit")
            if commit and commit != state.sha:
                raise FetchError("resolve of %s answered for commit %s, not the pinned %s" % (state.file.path, commit, state.sha))
            if state.direct_url is None and not self.cfg.on_hub(response.geturl()):
                state.direct_url = response.geturl()  # a resumed range goes straight to the CDN
            skip = 0
            if response.status == 206:
                content_range = response.headers.get("Content-Range") or ""
                match = re.match(r"^bytes (\d+)-(\d+)/(\d+|\*)$", content_range)
                if not match or int(match.group(1)) != pos or int(match.group(2)) > end - 1:
                    raise RetryableError("unexpected Content-Range %r for %s (asked bytes=%d-%d)" % (content_range, state.file.path, pos, end - 1))
                if match.group(3) != "*" and int(match.group(3)) != state.file.size:
                    raise FetchError("%s has %s bytes at the CDN, the hub listed %d" % (state.file.path, match.group(3), state.file.size))
                self.ranged += 1
            elif response.status == 200:
                length = response.headers.get("Content-Length") or ""
                if length.isdigit() and int(length) != state.file.size:
                    raise FetchError("%s has %s bytes at the hub, the tree listed %d" % (state.file.path, length, state.file.size))
                skip = pos  # the server ignored the Range header: read up to where we are
            else:
                raise FetchError("unexpected HTTP %d for %s" % (response.status, redact_url(url)))
            buf = memoryview(bytearray(READ_SIZE))
            try:
                while pos < end:
                    n = response.readinto(buf[:min(READ_SIZE, end - pos + skip)])
                    if not n:
                        break
                    drop = min(skip, n)
                    skip -= drop
                    if drop < n:
                        written = os.pwrite(state.fd, buf[drop:n], pos)
                        pos += written
                        self.progress.add(written)
                if pos < end:
                    raise RetryableError("connection closed after byte %d of %s (wanted up to %d)" % (pos, state.file.path, end))
            except Exception as e:
                e.pos = pos
                raise
            return pos
