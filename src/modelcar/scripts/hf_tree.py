"""The files of a revision: its commit, the commit's tree (every page), the selection."""

import fnmatch
import re
import urllib.parse

from hf_hub import *

MAX_TREE_PAGES = 10000
LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel\s*=\s*"?next"?')


class RepoFile(object):
    def __init__(self, path, parts, size, blob_id, sha256):
        self.path = path
        self.parts = parts
        self.size = size
        self.blob_id = blob_id  # git blob id: sha1 of "blob <size>\0" + content (of the pointer, for LFS)
        self.sha256 = sha256  # the LFS oid; None for a file stored in git
        self.digest = None  # the sha256 checked during the download (or kept from an earlier attempt)


def safe_parts(name):
    """The '/'-separated components of a repo path; FetchError if it could escape MODEL_DIR."""
    if not isinstance(name, str) or name == "":
        raise FetchError("refusing a file with an empty or non-string name in the hub listing: %r" % (name,))
    if name.startswith("/") or "\\" in name or "\x00" in name or len(name) > 4096:
        raise FetchError("refusing unsafe path %r in the hub listing (absolute, backslash or NUL)" % name)
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise FetchError("refusing unsafe path %r in the hub listing ('..', '.' or empty component)" % name)
    return parts


def listed_size(value, name):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FetchError("hub listing has an invalid size for %s: %r" % (name, value))
    return value


def parse_tree_entry(entry):
    """A RepoFile, or None for a directory."""
    if not isinstance(entry, dict):
        raise FetchError("hub tree entry is not an object: %r" % (entry,))
    kind, name = entry.get("type"), entry.get("path")
    parts = safe_parts(name)
    if kind == "directory":
        return None
    if kind != "file":
        raise FetchError("hub tree entry %r has an unknown type %r" % (name, kind))
    size = listed_size(entry.get("size"), name)
    blob_id = entry.get("oid")
    if not isinstance(blob_id, str) or not SHA1_RE.match(blob_id):
        raise FetchError("hub tree entry %s has no git blob id ('oid'): %r" % (name, blob_id))
    sha256 = None
    lfs = entry.get("lfs")
    if lfs is not None:
        if not isinstance(lfs, dict):
            raise FetchError("hub tree entry %s has an invalid 'lfs' entry" % name)
        sha256 = lfs.get("oid")
        if not isinstance(sha256, str) or not SHA256_RE.match(sha256.lower()):
            raise FetchError("hub tree entry %s has an invalid lfs oid (sha256): %r" % (name, sha256))
        sha256 = sha256.lower()
        size = listed_size(lfs.get("size", size), name)
    return RepoFile(name, parts, size, blob_id, sha256)


def resolve_commit(cfg):
    """The revision's commit, and the file names its summary lists (the "siblings", which may be truncated)."""
    url = "%s/api/models/%s/revision/%s" % (cfg.endpoint, cfg.repo, urllib.parse.quote(cfg.revision, safe=""))
    info, _ = read_json(cfg, url, "revision %s of %s" % (cfg.revision, cfg.repo),
                        "repo or revision not found: %s@%s" % (cfg.repo, cfg.revision))
    if not isinstance(info, dict):
        raise FetchError("hub revision response is not a JSON object")
    sha = info.get("sha")
    if not isinstance(sha, str) or not SHA1_RE.match(sha):
        raise FetchError("hub revision response has no commit sha (got %r)" % (sha,))
    siblings = info.get("siblings")
    siblings = siblings if isinstance(siblings, list) else []
    return sha, {s.get("rfilename") for s in siblings if isinstance(s, dict) and isinstance(s.get("rfilename"), str)}


def list_tree(cfg, sha):
    """Every file of the commit, from the recursive tree API, page after page (the Link header's next)."""
    url = "%s/api/models/%s/tree/%s?recursive=true&expand=false" % (cfg.endpoint, cfg.repo, sha)
    files, seen, pages = [], set(), 0
    while url:
        pages += 1
        if pages > MAX_TREE_PAGES:
            raise FetchError("the hub's tree listing of %s@%s has more than %d pages" % (cfg.repo, sha, MAX_TREE_PAGES))
        entries, link = read_json(cfg, url, "the file tree of %s@%s (page %d)" % (cfg.repo, sha, pages),
                                  "repo or commit not found: %s@%s" % (cfg.repo, sha))
        if not isinstance(entries, list):
            raise FetchError("hub tree response (page %d) is not a JSON list" % pages)
        for repo_file in filter(None, map(parse_tree_entry, entries)):
            if repo_file.path in seen:
                raise FetchError("the hub's tree listing names %s twice (page %d): refusing an inconsistent listing" % (repo_file.path, pages))
            seen.add(repo_file.path)
            files.append(repo_file)
        match = LINK_NEXT_RE.search(link or "")
        url = urllib.parse.urljoin(cfg.endpoint + "/", match.group(1)) if match else None
        if url and not cfg.on_hub(url):
            raise FetchError("the hub's tree listing points its next page to another host (%s): refusing" % redact_url(url))
    return files, pages


def resolve_files(cfg):
    """The revision's commit, every file of it and those HF_INCLUDE / HF_EXCLUDE select (at least one)."""
    sha, sibling_names = resolve_commit(cfg)
    if SHA1_RE.match(cfg.revision) and cfg.revision != sha:
        raise FetchError("asked for commit %s but the hub resolved it to %s" % (cfg.revision, sha))
    files, pages = list_tree(cfg, sha)
    log("resolved %s@%s -> commit %s: %d files, %s in the repo (tree listing, %d page%s)"
        % (cfg.repo, cfg.revision, sha, len(files), human_bytes(sum(f.size for f in files)), pages, "" if pages == 1 else "s"))
    # The siblings may be truncated, never longer than the tree: a name only they know means the tree
    # listing is incomplete, and an incomplete model must not pass as a whole one.
    missing = sorted(sibling_names - {f.path for f in files})
    if missing:
        raise FetchError("the hub's tree listing of %s@%s lacks %d file(s) its revision info names: %s; refusing an incomplete model"
                         % (cfg.repo, sha, len(missing), ", ".join(missing[:5])))
    selected = [f for f in files if (not cfg.include or matches_any(f.path, cfg.include)) and not matches_any(f.path, cfg.exclude)]
    if not selected:
        raise FetchError("no file of %s@%s matches include %r exclude %r" % (cfg.repo, sha, " ".join(cfg.include), " ".join(cfg.exclude)))
    return sha, files, selected


def matches_any(path, patterns):
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)
