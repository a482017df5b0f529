#!/usr/bin/env python3
"""download-model's fetch step: one commit of a Hugging Face model repository into MODEL_DIR, over parallel
connections, and its SHA256SUMS. Inputs: the environment only (README, "The download"). Exit status 0, 2 for
bad configuration, 1 for any other failure. `from hf_x import *` embeds hf_x.py at synth (scripts.ts)."""

import os
import shutil
import sys
import threading
import time

from hf_hub import *
from hf_tree import *
from hf_files import *
from hf_transfer import *


class DownloadConfig(Config):
    def __init__(self):
        super().__init__()
        model_dir = env("MODEL_DIR")
        if not model_dir:
            raise ConfigError("MODEL_DIR is required (the destination directory)")
        self.model_dir = os.path.abspath(model_dir)
        parent = os.path.dirname(self.model_dir)
        self.state_dir = os.path.abspath(env("STATE_DIR", os.path.join(parent, ".download")))
        self.sums_file = os.path.abspath(env("SUMS_FILE", os.path.join(parent, "SHA256SUMS")))
        for what, path in (("STATE_DIR", self.state_dir), ("SUMS_FILE", self.sums_file)):
            if os.path.commonpath([self.model_dir, path]) == self.model_dir:
                raise ConfigError(f"{what}={path} must be outside MODEL_DIR={self.model_dir}: a repo file could collide with it")
        self.connections = env_number("HF_CONNECTIONS", 8, int, 1, 64)
        self.chunk_bytes = env_number("HF_CHUNK_BYTES", 32 * MIB, int, 64 * 1024, 1024 * MIB)
        self.progress_interval = env_number("PROGRESS_INTERVAL_SECONDS", 10.0, float, 0.1, 3600.0)
        self.image_factor = env_number("IMAGE_BYTES_PER_MODEL_BYTE", 1.0, float, 0.0, 100.0)
        self.builder = env("BUILDER", "oci-layout")


def fetch(cfg):
    log_start("hf-fetch", cfg, f"; connections: {cfg.connections}; range: {human_bytes(cfg.chunk_bytes)}; attempts without progress: "
              f"{cfg.retries}; deadline: {human_seconds(cfg.deadline_seconds)}; timeout: {cfg.timeout:g}s")
    sha, files, selected = resolve_files(cfg)
    total = sum(f.size for f in selected)
    log(f"selected {len(selected)} of {len(files)} files, {human_bytes(total)}, into {cfg.model_dir}")
    os.makedirs(cfg.model_dir, mode=0o775, exist_ok=True)
    os.makedirs(cfg.state_dir, mode=0o775, exist_ok=True)
    states = [FileState(cfg, sha, f) for f in selected]
    kept = [s for s in states if s.kept()]
    todo = [s for s in states if s not in kept]
    kept_bytes = sum(s.file.size for s in kept)
    # A partial file from an earlier attempt is preallocated already: only the others take new space.
    partial = sum(s.file.size for s in todo if os.path.exists(s.data_path))
    check_space(cfg, total, sum(s.file.size for s in todo) - partial, kept_bytes + partial)
    if kept:
        log(f"kept {len(kept)} file(s), {human_bytes(kept_bytes)}, verified by an earlier attempt: "
            + ", ".join(s.file.path for s in kept[:10]) + (" ..." if len(kept) > 10 else ""))
    for s in todo:
        s.open()
    resumed = sum(s.resumed_bytes for s in todo)
    if resumed:
        log(f"resuming {human_bytes(resumed)} of partial files from an earlier attempt")
    # Small files first (they are quick, and a missing one fails early), then the large ones range by range.
    todo.sort(key=lambda s: (s.file.sha256 is not None, s.file.size, s.file.path))
    transfer = Transfer(cfg, todo, total, len(kept), kept_bytes + resumed)
    threading.Thread(target=transfer.report, daemon=True).start()
    try:
        # Files whose every range was complete already (a retry stopped while hashing): hash them now.
        for s in todo:
            if not s.pending():
                transfer.hashq.put(s)
        # Another round only if a resumed file failed its check and starts over (its jobs are back in the queue).
        for _round in range(3):
            if not transfer.jobs or transfer.error is not None:
                break
            workers = [threading.Thread(target=transfer.worker, daemon=True) for _ in range(min(cfg.connections, len(transfer.jobs)))]
            for w in workers:
                w.start()
            while any(w.is_alive() for w in workers):
                for w in workers:
                    w.join(0.2)
                if transfer.error is None and cfg.left() <= 0:
                    transfer.fail(FetchError(f"the download did not finish within its deadline (HF_DEADLINE_SECONDS={cfg.deadline_seconds:g}); "
                                             "what was received is kept for a retry"))
            transfer.hashq.join()
        transfer.hashq.join()
        if transfer.error is not None:
            raise transfer.error
    finally:
        transfer.hashq.put(None)
        transfer.stop.set()
        for s in todo:
            s.close()
    unfinished = [s.file.path for s in todo if not s.finished]
    if unfinished:
        raise FetchError(f"internal: {len(unfinished)} file(s) did not complete: {', '.join(unfinished[:5])}")
    elapsed = time.monotonic() - transfer.started
    transfer.progress()
    write_sums(cfg, selected)
    log(f"downloaded {len(selected)} files ({len(kept)} kept from an earlier attempt), {human_bytes(transfer.done)} in {elapsed:.1f}s "
        f"({mib_per_second(transfer.done, elapsed)}, {transfer.ranged} ranged requests) from {cfg.repo}@{sha}; SHA256SUMS in {cfg.sums_file}")
    # Every file has its final name and its digest is in SUMS_FILE: the state (records, no data) can go.
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    write_results(cfg, sha, total)


if __name__ == "__main__":
    # Connections hand the GIL over at each 16 KiB TLS record: a thread whose read returned waits for it up to
    # the switch interval (5 ms by default), which on a busy node costs each connection its pace.
    sys.setswitchinterval(0.0005)
    sys.exit(run_step("hf-fetch", DownloadConfig, fetch))
