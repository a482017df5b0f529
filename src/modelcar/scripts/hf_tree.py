"""The files of a revision: its commit, the commit's tree (every page), the selection."""

import fnmatch
import re
import urllib.parse

from hf_hub import *

LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel\s*=\s*"?next"?')


class RepoFile(object):
    def __init__(self, path, size, blob_id, sha256):
        self.path = path
        self.size = size
        self.blob_id = blob_id  # git blob id: sha1 of "blob <size>\0" + content (of the pointer, for LFS)
        self.sha256 = sha256  # the LFS oid; None for a file stored in git
        self.digest = None  # the sha256 checked by the download (or kept from an earlier attempt)


def parse_tree_entry(entry):
    """A RepoFile, or None for a directory; FetchError for a path that could escape MODEL_DIR, or what is not a file."""
    name = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(name, str) or name == "":
        raise FetchError(f"refusing a tree entry without a path in the hub listing: {entry!r}")
    if name.startswith("/") or "\\" in name or "\x00" in name or len(name) > 4096:
        raise FetchError(f"refusing unsafe path {name!r} in the hub listing (absolute, backslash or NUL)")
    if set(name.split("/")) & {"", ".", ".."}:
        raise FetchError(f"refusing unsafe path {name!r} in the hub listing ('..', '.' or empty component)")
    if entry.get("type") == "directory":
        return None
    lfs, size, blob_id, sha256 = entry.get("lfs"), entry.get("size"), entry.get("oid"), None
    if isinstance(lfs, dict):
        size, sha256 = lfs.get("size", size), str(lfs.get("oid")).lower()
    if entry.get("type") != "file" or type(size) is not int or size < 0 or not SHA1_RE.match(str(blob_id)) \
            or lfs is not None and not SHA256_RE.match(str(sha256)):
        raise FetchError(f"refusing hub tree entry {entry!r}: not a file with a size, a git blob id ('oid') and, if in LFS, a sha256")
    return RepoFile(name, size, blob_id, sha256)


def resolve_commit(cfg):
    """The revision's commit, and the file names its summary lists (the "siblings", which may be truncated)."""
    url = f"{cfg.endpoint}/api/models/{cfg.repo}/revision/{urllib.parse.quote(cfg.revision, safe='')}"
    info, _ = read_json(cfg, url, f"revision {cfg.revision} of {cfg.repo}", f"repo or revision not found: {cfg.repo}@{cfg.revision}")
    sha = info.get("sha") if isinstance(info, dict) else None
    if not isinstance(sha, str) or not SHA1_RE.match(sha):
        raise FetchError(f"hub revision response has no commit sha (got {sha!r})")
    siblings = info.get("siblings")
    siblings = siblings if isinstance(siblings, list) else []
    return sha, {s.get("rfilename") for s in siblings if isinstance(s, dict) and isinstance(s.get("rfilename"), str)}


def list_tree(cfg, sha):
    """Every file of the commit, from the recursive tree API, page after page (the Link header's next)."""
    url = f"{cfg.endpoint}/api/models/{cfg.repo}/tree/{sha}?recursive=true&expand=false"
    files, pages = {}, 0
    while url:
        pages += 1
        entries, link = read_json(cfg, url, f"the file tree of {cfg.repo}@{sha} (page {pages})", f"repo or commit not found: {cfg.repo}@{sha}")
        if not isinstance(entries, list):
            raise FetchError(f"hub tree response (page {pages}) is not a JSON list")
        for repo_file in filter(None, map(parse_tree_entry, entries)):
            if repo_file.path in files:
                raise FetchError(f"the hub's tree listing names {repo_file.path} twice (page {pages}): refusing an inconsistent listing")
            files[repo_file.path] = repo_file
        match = LINK_NEXT_RE.search(link or "")
        url = match and urllib.parse.urljoin(cfg.endpoint + "/", match.group(1))
        if url and not cfg.on_hub(url):
            raise FetchError(f"the hub's tree listing points its next page to another host ({redact_url(url)}): refusing")
        if pages >= 10000 and url:
            raise FetchError(f"the hub's tree listing of {cfg.repo}@{sha} has more than 10000 pages")
    return list(files.values()), pages


def resolve_files(cfg):
    """The revision's commit, every file of it, and those HF_INCLUDE and HF_EXCLUDE select (at least one)."""
    sha, sibling_names = resolve_commit(cfg)
    if SHA1_RE.match(cfg.revision) and cfg.revision != sha:
        raise FetchError(f"asked for commit {cfg.revision} but the hub resolved it to {sha}")
    files, pages = list_tree(cfg, sha)
    log(f"resolved {cfg.repo}@{cfg.revision} -> commit {sha}: {len(files)} files, {human_bytes(sum(f.size for f in files))} in the repo "
        f"(tree listing, {pages} page{'' if pages == 1 else 's'})")
    # The siblings may be truncated, never longer than the tree: a name only they know means the tree
    # listing is incomplete, and an incomplete model must not pass as a whole one.
    missing = sorted(sibling_names - {f.path for f in files})
    if missing:
        raise FetchError(f"the hub's tree listing of {cfg.repo}@{sha} lacks {len(missing)} file(s) its revision info names: "
                         f"{', '.join(missing[:5])}; refusing an incomplete model")
    selected = [f for f in files if (not cfg.include or matches_any(f.path, cfg.include)) and not matches_any(f.path, cfg.exclude)]
    if not selected:
        raise FetchError(f"no file of {cfg.repo}@{sha} matches include {' '.join(cfg.include)!r} exclude {' '.join(cfg.exclude)!r}")
    return sha, files, selected


def matches_any(path, patterns):
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)
