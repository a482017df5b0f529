#!/usr/bin/env python3
"""Resolves a Hugging Face model revision to its commit and sizes the files selected, downloading none
of them: check-published's resolve step (the check before a build needs nothing more). Writes
RESOLVED_REVISION_FILE and MODEL_SIZE_FILE; inputs come from the environment only (README, "The
download"). Exit status 0, 2 for a configuration error, 1 for any other failure. Each
`from hf_x import *` line is replaced by hf_x.py at synth (loadScript in scripts.ts)."""

import sys

from hf_hub import *
from hf_tree import *


def resolve(cfg):
    log_start("hf-resolve", cfg)
    sha, files, selected = resolve_files(cfg)
    total = sum(f.size for f in selected)
    log("resolve only: %d of %d files selected, %s; nothing downloaded" % (len(selected), len(files), human_bytes(total)))
    write_results(cfg, sha, total)


if __name__ == "__main__":
    sys.exit(run_step("hf-resolve", Config, resolve))
