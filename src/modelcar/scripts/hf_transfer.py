"""The transfer: connections shared by files and ranges, each resumed where a cut left it; hashing; progress."""

import os
import queue
import re
import threading
import time

from hf_hub import *
from hf_files import *


def human_seconds(seconds):
    seconds = int(round(seconds))
    if seconds < 3600:
        return f"{seconds}s" if seconds < 60 else f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def mib_per_second(n, seconds):
    return f"{n / MIB / seconds:.1f} MiB/s" if seconds > 0 else "n/a"


class Transfer(object):
    """N connections over a shared queue of (file, range) jobs; the counters of the progress line."""

    def __init__(self, cfg, states, total, files_done, base):
        self.cfg = cfg
        self.lock = threading.Lock()
        # pop() takes them in order: small files first, then each large file's ranges in order.
        self.jobs = [(state, index) for state in states for index in state.pending()][::-1]
        self.error = None
        self.ranged = 0
        self.files = len(states) + files_done
        self.files_done = files_done
        self.total = total
        self.base = base  # bytes already there (kept or resumed)
        self.done = self.last_done = self.active = 0  # bytes written by this attempt; connections in use
        self.started = self.last_time = time.monotonic()
        self.stop = threading.Event()
        # A thread hashes (checks, renames) beside the connections: hashlib releases the GIL, no transfer stalls.
        self.hashq = queue.Queue()
        threading.Thread(target=self.hash_loop, daemon=True).start()

    def count(self, written=0, active=0, files=0):
        with self.lock:
            self.done += written
            self.active += active
            self.files_done += files

    def progress(self):
        now = time.monotonic()
        with self.lock:
            done, active, files_done = self.done, self.active, self.files_done
        have, interval, left = self.base + done, now - self.last_time, self.total - self.base - done
        recent = (done - self.last_done) / interval if interval > 0 else 0.0
        self.last_time, self.last_done = now, done
        overall = done / (now - self.started) if now > self.started else 0.0
        eta = "0s" if left <= 0 else human_seconds(left / overall) if overall > 0 else "unknown"
        log(f"progress: {human_bytes(have)} of {human_bytes(self.total)} ({100.0 * have / self.total if self.total else 100.0:.0f}%), "
            f"{mib_per_second(recent, 1.0)} now, {mib_per_second(overall, 1.0)} on average, ETA {eta}, "
            f"{active} of {self.cfg.connections} connections in use, {files_done} of {self.files} files done")

    def report(self):
        while not self.stop.wait(self.cfg.progress_interval):
            self.progress()

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

    def fail(self, error):
        with self.lock:
            self.error = self.error or error

    def worker(self):
        try:
            while True:
                with self.lock:
                    if self.error is not None or not self.jobs:
                        return
                    state, index = self.jobs.pop()
                self.count(active=1)
                try:
                    self.fetch_range(state, index)
                finally:
                    self.count(active=-1)
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
            log(f"  {e}; the part kept from an earlier attempt is discarded, downloading {state.file.path} again")
            state.restarted = True
            state.discard()
            with self.lock:
                self.jobs.extend((state, i) for i in reversed(state.pending()))
            return
        self.count(files=1)
        check = "sha256 verified against the hub's LFS oid" if state.file.sha256 else "git blob id verified, sha256 " + state.file.digest
        log(f"  {state.file.path}: {human_bytes(state.file.size)}, {check}")

    def fetch_range(self, state, index):
        pos, end = state.chunk_start(index), state.chunk_end(index)
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
                error = classify(exc, self.cfg, "file " + state.file.path, None)
                if error is None:
                    raise
                # The CDN answers 404, or 401/403 (an expired signature): ask the hub for a fresh URL.
                code = 404 if isinstance(error, EntryNotFound) else getattr(exc, "code", None)
                if state.direct_url and code in (401, 403, 404):
                    state.direct_url = None
                    budget.failed(RetryableError(f"the CDN refused {state.file.path} (HTTP {code}); resolving it again"))
                elif isinstance(error, EntryNotFound):
                    raise FetchError(f"the hub's tree of commit {state.sha} lists {state.file.path}, but resolve does not find it (HTTP 404{error}): "
                                     "the hub's listing disagrees with itself; retry later or report it to the hub")
                elif not isinstance(error, RetryableError):
                    raise error
                else:
                    if pos < end:
                        log(f"  {state.file.path}: connection lost at byte {pos} of {state.file.size} ({error}); resuming from there")
                    if pos == before or error.wait is not None:
                        budget.failed(error)

    def attempt(self, state, pos, end):
        """One request for [pos, end); returns the position reached, also as an exception's `pos` (to resume)."""
        if state.chunks > 1:
            # One 1-byte request finds the CDN's signed URL, for every range: one hub request per file, not per range.
            with state.resolve_lock:
                if state.direct_url is None:
                    with open_url(self.cfg, state.url, {"Range": "bytes=0-0"}) as response:
                        response.read(1024)  # a server that ignores Range sends it all: read no further
                        state.direct_url = "" if self.cfg.on_hub(response.geturl()) else response.geturl()
        url = state.direct_url or state.url
        whole = state.chunks == 1 and pos == 0 and end == state.file.size
        with open_url(self.cfg, url, {} if whole else {"Range": f"bytes={pos}-{end - 1}"}) as response:
            commit = response.headers.get("X-Repo-Commit")
            if commit and commit != state.sha:
                raise FetchError(f"resolve of {state.file.path} answered for commit {commit}, not the pinned {state.sha}")
            if state.direct_url is None and not self.cfg.on_hub(response.geturl()):
                state.direct_url = response.geturl()  # a resumed range goes straight to the CDN
            skip = 0
            if response.status == 206:
                content_range = response.headers.get("Content-Range") or ""
                match = re.match(r"^bytes (\d+)-(\d+)/(\d+|\*)$", content_range)
                if not match or int(match.group(1)) != pos or int(match.group(2)) > end - 1:
                    raise RetryableError(f"unexpected Content-Range {content_range!r} for {state.file.path} (asked bytes={pos}-{end - 1})")
                if match.group(3) != "*" and int(match.group(3)) != state.file.size:
                    raise FetchError(f"{state.file.path} has {match.group(3)} bytes at the CDN, the hub listed {state.file.size}")
                self.ranged += 1
            elif response.status == 200:
                length = response.headers.get("Content-Length") or ""
                if length.isdigit() and int(length) != state.file.size:
                    raise FetchError(f"{state.file.path} has {length} bytes at the hub, the tree listed {state.file.size}")
                skip = pos  # the server ignored the Range header: read up to where we are
            else:
                raise FetchError(f"unexpected HTTP {response.status} for {redact_url(url)}")
            buf = memoryview(bytearray(MIB))
            try:
                while pos < end:
                    n = response.readinto(buf[:min(MIB, end - pos + skip)])
                    if not n:
                        raise RetryableError(f"connection closed after byte {pos} of {state.file.path} (wanted up to {end})")
                    drop = min(skip, n)
                    skip -= drop
                    if drop < n:
                        written = os.pwrite(state.fd, buf[drop:n], pos)
                        pos += written
                        self.count(written)
            except Exception as e:
                e.pos = pos
                raise
            return pos
