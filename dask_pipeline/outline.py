"""Course structure -> video labels (SPEC §2): which section, subsection and unit each video
block sits in, its title and its place in the course.

Reads an OLX course export (the directory a Studio export unpacks to, or the ``.tar.gz``
itself, read in one pass with ``tarfile`` and never extracted) or a Course Blocks API
response (one JSON object, one per line with ``course_id``, or the ``get_course_structure=``
value of the mobile app's ``.properties`` captures). Both become one small tree that a
single walk turns into ``Video`` rows. Then ``label_videos`` joins them to the ``videos``
table on (course, url_name), whatever form the logs give the ids in.

Pure: no Dask; reads only the files it is given.
"""

from __future__ import annotations

import json
import math
import re
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np
import pandas as pd

from . import schema

#: OLX elements whose children are walked (and whose pointer files are followed); every
#: other element is a leaf (html, problem, discussion ...), never opened.
CONTAINERS = frozenset(
    {
        "course",
        "chapter",
        "sequential",
        "vertical",
        "videosequence",
        "split_test",
        "conditional",
        "library_content",
        "itembank",
        "unit",
        "wrapper",
        "problemset",
        "randomize",
    }
)
#: The containers of a Studio outline: a pointer to one of them without its file means an
#: incomplete export (an error); other containers' files are optional (libraries ...).
OUTLINE_LEVELS = frozenset({"course", "chapter", "sequential", "vertical"})
VIDEO_TYPES = frozenset({"video", "videoalpha"})
#: The block type of a section: the course's other children (``wiki``, ...) are not sections.
SECTION = "chapter"
#: Files of a directory of structures that are read; other files are named in a warning.
STRUCTURE_SUFFIXES = (".tar.gz", ".tgz", ".json", ".jsonl", ".ndjson", ".properties")
#: The key of the mobile app's mock-server table that holds a Course Blocks response.
PROPERTIES_KEY = "get_course_structure"

_COURSE_V1 = re.compile(r"course-v1:([^+/:]+)\+([^+/:]+)\+([^+/:]+)")
_LEGACY = re.compile(r"([^/+:]+)/([^/+:]+)/([^/+:]+)")
_BLOCK_V1_ROOT = re.compile(r"block-v1:([^+/:]+)\+([^+/:]+)\+([^+/:]+)\+type@course\+block@.+")
_I4X_ROOT = re.compile(r"i4x://([^/]+)/([^/]+)/course/([^/]+)")
_URL_NAME = (
    re.compile(r"\+type@[^+@]+\+block@(.+)"),  # block-v1:ORG+COURSE+RUN+type@video+block@H
    re.compile(r"i4x://[^/]+/[^/]+/[^/]+/([^/@]+)"),  # i4x://ORG/COURSE/video/H
    re.compile(r"i4x-[^-]+-[^-]+-video-(.+)"),  # i4x-ORG-COURSE-video-H
)


class OutlineError(ValueError):
    """A course structure cannot be read: one line naming the file and what is wrong."""


class Video(NamedTuple):
    """One video of an outline. Indexes are 1-based; ``section_index`` counts the course's
    sections, ``subsection_index`` the section's children, ``unit_index`` the subsection's."""

    url_name: str
    title: str | None
    section: str | None
    subsection: str | None
    unit: str | None
    position: int
    section_index: int | None
    subsection_index: int | None
    unit_index: int | None
    duration: float | None


@dataclass(frozen=True)
class Outline:
    """The videos of one course in outline order. ``course_id`` is the one the structure
    names, or the one given as ``COURSE_ID=PATH``."""

    course_id: str
    source: str
    title: str | None
    videos: tuple[Video, ...]

    @property
    def key(self) -> str:
        return course_key(self.course_id)


@dataclass(frozen=True)
class Source:
    """One ``--course-structure [COURSE_ID=]PATH`` argument."""

    path: str
    course_id: str | None = None


class _Node(NamedTuple):
    kind: str
    url_name: str | None
    title: str | None
    duration: float | None
    children: tuple[_Node, ...]


# ------------------------------------------------------------------ ids
def course_key(course_id: str) -> str:
    """``ORG+COURSE+RUN`` for ``course-v1:ORG+COURSE+RUN`` and ``ORG/COURSE/RUN`` alike, so
    the two forms of one course match; any other id is its own key."""
    s = course_id.strip()
    m = _COURSE_V1.fullmatch(s) or _LEGACY.fullmatch(s)
    return "+".join(m.groups()) if m else s


def is_course_id(text: str) -> bool:
    return bool(_COURSE_V1.fullmatch(text) or _LEGACY.fullmatch(text))


def url_name(video_id: str) -> str:
    """The block's ``url_name`` in any of the forms logs write a video id in: a bare hash,
    ``i4x-ORG-COURSE-video-H``, ``i4x://ORG/COURSE/video/H``, ``block-v1:...+block@H``."""
    s = video_id.strip()
    for pattern in _URL_NAME:
        m = pattern.fullmatch(s) if pattern.pattern.startswith("i4x") else pattern.search(s)
        if m:
            return m.group(1)
    return s


def _url_names(video_ids: pd.Series) -> pd.Series:
    """``url_name`` of each id, as strings (also when there is none)."""
    names = schema.strings([None if pd.isna(v) else url_name(v) for v in video_ids])
    return pd.Series(names, index=video_ids.index)


def parse_source(arg: str) -> Source:
    """``[COURSE_ID=]PATH``; an existing path containing ``=`` is taken as a path."""
    if "=" in arg and not Path(arg).exists():
        cid, path = arg.split("=", 1)
        if not is_course_id(cid):
            raise OutlineError(
                f"{cid!r} is not a course id (course-v1:ORG+COURSE+RUN or ORG/COURSE/RUN)"
            )
        return Source(path, cid)
    return Source(arg)


# ------------------------------------------------------------------ the walk
def _videos(course: _Node) -> tuple[Video, ...]:
    """The videos under ``course`` in depth-first outline order, each url_name once (the
    first place wins), labelled by its ancestors at depths 1-3: section, subsection, unit.
    A video at depth 2 or 3 is its own subsection or unit, as the LMS shows it."""
    out: list[Video] = []
    seen: set[str] = set()

    def visit(node: _Node, chain: tuple[tuple[str | None, int], ...]) -> None:
        if node.kind in VIDEO_TYPES:
            if node.url_name and node.url_name not in seen:
                seen.add(node.url_name)
                out.append(_video(node, chain, len(out) + 1))
            return
        for i, child in enumerate(node.children, 1):
            visit(child, chain + ((child.title, i),) if len(chain) < 3 else chain)

    sections = [c for c in course.children if c.kind == SECTION]
    for i, sec in enumerate(sections, 1):
        visit(sec, ((sec.title, i),))
    return tuple(out)


def _video(node: _Node, chain: tuple[tuple[str | None, int], ...], position: int) -> Video:
    levels = list(chain) + [(None, None)] * (3 - len(chain))
    (sec, si), (sub, ssi), (unit, ui) = levels
    return Video(node.url_name, node.title, sec, sub, unit, position, si, ssi, ui, node.duration)


def _positive(x: object) -> float | None:
    """A positive finite number (or numeric string) as float, else None."""
    if isinstance(x, bool):
        return None
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


# ------------------------------------------------------------------ OLX
class _Files:
    """The files of an export by relative POSIX path: a directory, or a tarball's members
    read in one pass (only the XML and policies an outline needs)."""

    def __init__(self, source: str, get: Callable[[str], bytes | None]):
        self.source = source
        self.get = get


def _directory_files(root: Path) -> _Files:
    def get(rel: str) -> bytes | None:
        p = root / rel
        return p.read_bytes() if p.is_file() else None

    return _Files(str(root), get)


def _unsafe(name: str) -> bool:
    p = PurePosixPath(name)
    return p.is_absolute() or ".." in p.parts


def _tar_files(path: Path) -> _Files:
    """Read an export tarball without extracting it; refuses absolute paths, ``..`` and
    links anywhere in it. The export may sit in a top directory (Studio writes one)."""
    wanted: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for m in tar:
                if _unsafe(m.name) or m.issym() or m.islnk():
                    raise OutlineError(
                        f"{path}: refusing tar member {m.name!r} "
                        "(absolute path, '..' or link): not read"
                    )
                if m.isfile() and (m.name.endswith(".xml") or m.name.endswith("policy.json")):
                    f = tar.extractfile(m)
                    wanted[PurePosixPath(m.name).as_posix()] = f.read() if f else b""
    except (tarfile.TarError, EOFError, OSError) as e:
        raise OutlineError(f"{path}: not a readable tar archive ({e})") from None
    tops = sorted(
        (n for n in wanted if PurePosixPath(n).name == "course.xml"),
        key=lambda n: len(PurePosixPath(n).parts),
    )
    if not tops:
        raise OutlineError(f"{path}: no course.xml in the archive: not an OLX course export")
    prefix = str(PurePosixPath(tops[0]).parent)
    prefix = "" if prefix == "." else prefix + "/"
    return _Files(str(path), lambda rel: wanted.get(prefix + rel))


def _xml(files: _Files, rel: str, data: bytes) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise OutlineError(f"{files.source}: {rel}: not well-formed XML ({e})") from None


def read_olx(files: _Files) -> Outline:
    """The outline of an OLX export: ``course.xml`` names org, course and run (its
    ``url_name``); ``course/<run>.xml`` lists the sections; pointers are followed."""
    data = files.get("course.xml")
    if data is None:
        raise OutlineError(f"{files.source}: no course.xml: not an OLX course export")
    top = _xml(files, "course.xml", data)
    org, num, run = (top.get(a) for a in ("org", "course", "url_name"))
    if top.tag != "course" or not (org and num and run):
        raise OutlineError(
            f"{files.source}: course.xml does not name a course (<course org course url_name>)"
        )
    pol = files.get(f"policies/{run}/policy.json")
    try:
        policy = json.loads(pol) if pol else {}
    except ValueError:
        raise OutlineError(f"{files.source}: policies/{run}/policy.json is not JSON") from None
    course = _olx_node(files, top, policy if isinstance(policy, dict) else {}, ())
    return Outline(f"course-v1:{org}+{num}+{run}", files.source, course.title, _videos(course))


def _olx_node(files: _Files, el: ET.Element, policy: dict, stack: tuple[str, ...]) -> _Node:
    """One element as a node; a pointer (``<tag url_name=.../>`` with a ``tag/<url_name>.xml``
    file) is replaced by its file. ``stack`` holds the files being opened (no cycles)."""
    name = el.get("url_name")
    kind = el.tag
    if (kind in CONTAINERS or kind in VIDEO_TYPES) and name and len(el) == 0:
        rel = f"{kind}/{name}.xml"
        if rel in stack:
            raise OutlineError(f"{files.source}: {rel} includes itself")
        data = files.get(rel)
        if data is not None:
            el, stack = _xml(files, rel, data), stack + (rel,)
        elif kind in OUTLINE_LEVELS and (kind == "course" or set(el.attrib) <= {"url_name"}):
            raise OutlineError(f"{files.source}: {rel} is missing: the export is incomplete")
    meta = policy.get(f"{kind}/{name}") if name else None
    title = el.get("display_name")
    if title is None and isinstance(meta, dict):
        title = meta.get("display_name")
    if kind in VIDEO_TYPES:
        durations = [_positive(a.get("duration")) for a in el.iter("video_asset")]
        duration = max((d for d in durations if d), default=None)
        return _Node(kind, name, title, duration, ())
    children: tuple[_Node, ...] = ()
    if kind in CONTAINERS:
        children = tuple(_olx_node(files, c, policy, stack) for c in el)
    return _Node(kind, name, title, None, children)


# ------------------------------------------------------------------ Course Blocks API
def _blocks_course_id(doc: dict, source: str) -> str | None:
    cid = doc.get("course_id")
    if isinstance(cid, str) and cid.strip():
        return cid.strip()
    root = doc["root"]
    m = _BLOCK_V1_ROOT.fullmatch(root)
    if m:
        return "course-v1:" + "+".join(m.groups())
    m = _I4X_ROOT.fullmatch(root)
    return "/".join(m.groups()) if m else None


def _as_dict_response(doc: object) -> object:
    """A ``return_type=list`` response (a list of blocks, bare or under ``blocks``) in the
    default shape: blocks keyed by id, the course block as root."""
    blocks = doc.get("blocks") if isinstance(doc, dict) else doc
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        return doc
    by_id = {b["id"]: b for b in blocks if isinstance(b.get("id"), str)}
    roots = [k for k, b in by_id.items() if b.get("type") == "course"]
    out = dict(doc) if isinstance(doc, dict) else {}
    out["blocks"] = by_id
    if "root" not in out and len(roots) == 1:
        out["root"] = roots[0]
    return out


def read_blocks(doc: object, source: str) -> Outline:
    """The outline of one Course Blocks API response: the tree from ``root`` through
    ``children`` (or the mobile ``descendants``), in list order."""
    doc = _as_dict_response(doc)
    blocks = doc.get("blocks") if isinstance(doc, dict) else None
    if not isinstance(blocks, dict) or not isinstance(doc.get("root"), str):
        raise OutlineError(f"{source}: not a Course Blocks response (needs 'root' and 'blocks')")
    if doc["root"] not in blocks:
        raise OutlineError(f"{source}: its root {doc['root']!r} is not among its blocks")
    cid = _blocks_course_id(doc, source)
    if cid is None:
        raise OutlineError(f"{source}: names no course id; give it as COURSE_ID=PATH")
    visited: set[str] = set()

    def node(key: str) -> _Node:
        visited.add(key)
        b = blocks.get(key)
        b = b if isinstance(b, dict) else {}
        kind = str(b.get("type", ""))
        kids = b.get("children", b.get("descendants")) or []
        kids = [k for k in kids if isinstance(k, str) and k in blocks and k not in visited]
        name = b.get("block_id") if isinstance(b.get("block_id"), str) else url_name(key)
        data = b.get("student_view_data")
        duration = _positive(data.get("duration")) if isinstance(data, dict) else None
        title = b.get("display_name") if isinstance(b.get("display_name"), str) else None
        return _Node(kind, name, title, duration, tuple(node(k) for k in kids))

    course = node(doc["root"])
    return Outline(cid, source, course.title, _videos(course))


def _json_docs(path: Path, text: str) -> list[tuple[object, str]]:
    """(document, where) pairs of a JSON file, a JSON Lines file or a ``.properties`` file."""
    lines = text.splitlines()
    key = PROPERTIES_KEY + "="
    props = [(i, ln) for i, ln in enumerate(lines, 1) if ln.startswith(key)]
    if props:
        return [(_loads(path, ln[len(key) :], i), f"{path}:{i}") for i, ln in props]
    if path.suffix == ".properties":
        raise OutlineError(f"{path}: no {PROPERTIES_KEY}= line: not a course structure")
    try:
        return [(json.loads(text), str(path))]
    except ValueError:
        pass
    docs = []
    for i, ln in enumerate(lines, 1):
        if ln.strip():
            docs.append((_loads(path, ln, i), f"{path}:{i}"))
    return docs


def _loads(path: Path, text: str, line: int) -> object:
    try:
        return json.loads(text)
    except ValueError:
        raise OutlineError(
            f"{path}: line {line} is not JSON: not an OLX export or a Course Blocks response"
        ) from None


# ------------------------------------------------------------------ entry points
def read_path(path: Path) -> list[Outline]:
    """Every outline one file or directory holds (a JSON Lines file may hold several)."""
    if path.is_dir():
        if (path / "course.xml").is_file():
            return [read_olx(_directory_files(path))]
        raise OutlineError(f"{path}: a directory without course.xml (use read_sources)")
    if not path.is_file():
        raise OutlineError(f"{path}: no such file or directory")
    if tarfile.is_tarfile(path):
        return [read_olx(_tar_files(path))]
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        raise OutlineError(
            f"{path}: neither an OLX export (.tar.gz), JSON nor a .properties file"
        ) from None
    docs = _json_docs(path, text)
    if not docs:
        raise OutlineError(f"{path}: empty: not a course structure")
    return [read_blocks(doc, where) for doc, where in docs]


def expand(path: Path) -> tuple[list[Path], list[str]]:
    """The structures a path names: itself, or for a directory that is no OLX export, its
    entries in name order (structure files and OLX subdirectories); plus warnings naming the
    entries skipped."""
    if not path.is_dir() or (path / "course.xml").is_file():
        return [path], []
    found, skipped = [], []
    for p in sorted(path.iterdir()):
        if p.name.startswith("."):
            continue
        if (p.is_dir() and (p / "course.xml").is_file()) or (
            p.is_file() and p.name.lower().endswith(STRUCTURE_SUFFIXES)
        ):
            found.append(p)
        else:
            skipped.append(f"--course-structure: skipped {p} (not a course structure)")
    if not found:
        raise OutlineError(f"{path}: no course structure in this directory")
    return found, skipped


def read_sources(sources: Iterable[Source]) -> tuple[tuple[Outline, ...], list[str]]:
    """Every outline of the ``--course-structure`` arguments, checked: one per course.

    Returns the outlines and warnings (directory entries skipped, outlines without videos).
    Raises OutlineError on the first bad input.
    """
    outlines: list[Outline] = []
    warnings: list[str] = []
    for src in sources:
        paths, skipped = expand(Path(src.path))
        warnings += skipped
        got = [o for p in paths for o in read_path(p)]
        if src.course_id is not None:
            if len(got) != 1:
                raise OutlineError(
                    f"{src.path}: holds {len(got)} courses; COURSE_ID=PATH needs exactly one"
                )
            got = [Outline(src.course_id, got[0].source, got[0].title, got[0].videos)]
        outlines += got
    by_key: dict[str, Outline] = {}
    for o in outlines:
        if o.key in by_key:
            raise OutlineError(
                f"course {o.course_id} has two structures: {by_key[o.key].source} and {o.source}"
            )
        by_key[o.key] = o
        if not o.videos:
            warnings.append(f"--course-structure: {o.source}: course {o.course_id} has no video")
    return tuple(outlines), warnings


def outline_frame(outlines: Sequence[Outline]) -> pd.DataFrame:
    """``schema.OUTLINE``: one row per video of each outline."""
    rows = [(o.course_id, *v) for o in outlines for v in o.videos]
    cols = list(schema.OUTLINE)
    df = pd.DataFrame(rows, columns=cols) if rows else schema.empty(schema.OUTLINE)
    return schema.conform(df.astype(object).where(df.notna(), None), schema.OUTLINE)


# ------------------------------------------------------------------ the join
class Labelled(NamedTuple):
    videos: pd.DataFrame  # schema.VIDEOS
    counts: dict[str, int]
    warnings: list[str]
    courses: list[dict]  # per outline: source, course_id, videos, matched course ids


def logged_videos(previous: pd.DataFrame | None) -> pd.DataFrame | None:
    """The rows of a stored ``videos`` table that the logs gave (outline-only rows are
    rebuilt each run), with a duration only where the logs gave it."""
    if previous is None:
        return None
    prev = previous
    if "seen_in_logs" in prev:
        prev = prev.loc[prev["seen_in_logs"].fillna(True).astype(bool)]
    if "duration_source" in prev:
        prev = prev.assign(duration=prev["duration"].where(prev["duration_source"] == "events"))
    return schema.conform(prev, schema.LOGGED_VIDEOS)


def label_videos(
    videos: pd.DataFrame, outlines: Sequence[Outline], previous: pd.DataFrame | None = None
) -> Labelled:
    """``schema.VIDEOS``: the logged videos (course_id, video_id, duration, code) with the
    outline columns of their course's outline, plus a row (``seen_in_logs`` false, video_id
    the url_name) for every outline video the logs never named. A course without an outline
    in this run keeps the labels (and outline-only rows) ``previous`` stored for it."""
    logged = videos.assign(url_name=_url_names(videos["video_id"]), seen_in_logs=True)
    matched = _matches(outlines, logged["course_id"])
    # the outline rows under the course ids the logs use
    by_key = {o.key: o for o in outlines}
    parts = [
        outline_frame([by_key[k]]).assign(course_id=c) for k, cs in matched.items() for c in cs
    ]
    labels = pd.concat(parts, ignore_index=True) if parts else schema.empty(schema.OUTLINE)
    labels = labels.rename(columns={"duration": "outline_duration"})
    both = logged.merge(labels, on=["course_id", "url_name"], how="outer", indicator=True)
    unseen = both["_merge"] == "right_only"
    both["video_id"] = both["video_id"].where(~unseen, both["url_name"])
    both["seen_in_logs"] = ~unseen
    labelled = {c for cs in matched.values() for c in cs}
    out = _carry_previous(both, previous, labelled)
    return _summary(_finish(out), outlines, matched, labelled)


def _matches(outlines: Sequence[Outline], course_ids: pd.Series) -> dict[str, list[str]]:
    """Per outline (by course key), the course ids of the logs it applies to."""
    matched: dict[str, list[str]] = {o.key: [] for o in outlines}
    for c in sorted(set(course_ids.dropna())):
        if course_key(c) in matched:
            matched[course_key(c)].append(c)
    return matched


def _summary(
    videos: pd.DataFrame,
    outlines: Sequence[Outline],
    matched: dict[str, list[str]],
    labelled: set[str],
) -> Labelled:
    """The labelled table with its ``_run.json`` counts, warnings and outline list."""
    has_outline = videos["course_id"].isin(labelled)
    in_outline = videos["position"].notna()
    seen = videos["seen_in_logs"]
    counts = {
        "outline_courses": len(outlines),
        "outline_videos": int(sum(len(o.videos) for o in outlines)),
        "outline_matched_videos": int((has_outline & in_outline & seen).sum()),
        "outline_log_videos_absent": int((has_outline & ~in_outline).sum()),
        "outline_videos_unseen": int((has_outline & ~seen).sum()),
        "outline_unmatched": sum(not cs for cs in matched.values()),
    }
    warnings = [
        f"--course-structure: {o.source}: course {o.course_id} is in no log "
        "(this run or stored): its outline was not used"
        for o in outlines
        if not matched[o.key]
    ]
    courses = [
        {
            "source": o.source,
            "course_id": o.course_id,
            "title": o.title,
            "videos": len(o.videos),
            "matched_courses": matched[o.key],
        }
        for o in outlines
    ]
    return Labelled(videos, counts, warnings, courses)


def _carry_previous(
    both: pd.DataFrame, previous: pd.DataFrame | None, labelled: set[str]
) -> pd.DataFrame:
    """For courses not labelled in this run, the outline columns ``previous`` stored, matched
    on (course, url_name), and its outline-only rows of videos the logs still never named."""
    if previous is None or "position" not in previous:
        return both
    prev = previous.loc[~previous["course_id"].isin(labelled) & previous["position"].notna()]
    on = ["course_id", "url_name"]
    from_outline = prev["duration_source"] == "outline" if "duration_source" in prev else False
    prev = prev.assign(
        url_name=_url_names(prev["video_id"]),
        outline_duration=prev["duration"].where(from_outline),
    )
    cols = [*schema.LABELS, "outline_duration"]
    old = prev.drop_duplicates(on)[on + cols]
    both = both.merge(old, on=on, how="left", suffixes=("", "_prev"))
    take = ~both["course_id"].isin(labelled)
    for c in cols:
        both[c] = both[c].where(~take, both[f"{c}_prev"])
    both = both.drop(columns=[f"{c}_prev" for c in cols])
    if "seen_in_logs" in prev:
        only = prev.loc[~prev["seen_in_logs"].astype(bool)]
        named = pd.MultiIndex.from_frame(both[on])
        only = only.loc[~pd.MultiIndex.from_frame(only[on]).isin(named)]
        only = only.assign(duration=np.nan)
        both = pd.concat([both, only[[c for c in only if c in both]]], ignore_index=True)
    return both


def _finish(df: pd.DataFrame) -> pd.DataFrame:
    """Duration from the logs, else from the outline (``duration_source`` says which)."""
    logs = df["duration"].where(df["duration"] > 0)
    outline = df["outline_duration"].where(df["outline_duration"] > 0)
    source = np.where(logs.notna(), "events", np.where(outline.notna(), "outline", None))
    df = df.assign(
        duration=logs.fillna(outline),
        duration_source=pd.array(source, dtype=schema.STR),
        seen_in_logs=df["seen_in_logs"].astype(bool),
    )
    return schema.conform(df, schema.VIDEOS)


def attach_labels(stats: pd.DataFrame, videos: pd.DataFrame) -> pd.DataFrame:
    """``video_stats`` rows with the outline columns of ``videos`` (null where it has none)
    and ``duration_source``: ``inferred`` for a duration video_stats inferred, else the
    source ``videos`` gives (``events`` when it names none)."""
    keys = ["course_id", "video_id"]
    cols = [c for c in (*schema.LABELS, "duration_source") if c in videos]
    base = stats.drop(columns=[c for c in (*schema.LABELS, "duration_source") if c in stats])
    out = base.merge(videos[keys + cols].drop_duplicates(keys), on=keys, how="left")
    for c in schema.LABELS:
        if c not in out:
            out[c] = pd.Series(pd.NA, index=out.index, dtype=schema.LABELS[c].dtype)
    known = out["duration"].notna()
    given = out["duration_source"] if "duration_source" in out else pd.Series(None, out.index)
    source = np.where(
        out["duration_inferred"].astype(bool),
        "inferred",
        np.where(known, given.astype(object).fillna("events"), None),
    )
    out["duration_source"] = pd.array(source, dtype=schema.STR)
    return out
