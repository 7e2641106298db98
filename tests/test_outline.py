"""outline.py: course structures read from the real fixtures, checked against a reading of
the same files written independently here (minidom, files found by path), and every way a
structure input can be wrong."""

from __future__ import annotations

import io
import json
import tarfile
import xml.dom.minidom as minidom
from pathlib import Path

import pandas as pd
import pytest

from dask_pipeline import outline
from dask_pipeline.outline import OutlineError, Source

FIX = Path(__file__).parent / "fixtures"
LEGACY = FIX / "openedx-demo-course" / "demox-legacy"
CURRENT = FIX / "openedx-demo-course" / "demo-course-current"
BLOCKS = FIX / "openedx-course-blocks"
DEMOX_2016 = BLOCKS / "edx-app-android-demox-2016" / "mock_api_responses.properties"
TEST101 = BLOCKS / "edx-app-android-test101-2022" / "mock_api_responses.properties"
PIPELINE_JSONL = BLOCKS / "edx-analytics-pipeline" / "course_blocks.json"

FIELDS = (
    "url_name",
    "title",
    "section",
    "subsection",
    "unit",
    "position",
    "section_index",
    "subsection_index",
    "unit_index",
)


# ------------------------------------------------------------------ independent readers
def _element(root: Path, tag: str, name: str):
    """The element a pointer names, from its own file (minidom), or None."""
    f = root / tag / f"{name}.xml"
    return minidom.parse(str(f)).documentElement if f.exists() else None


def _elements(node):
    return [c for c in node.childNodes if c.nodeType == c.ELEMENT_NODE]


def _expand(root: Path, el):
    if not _elements(el) and el.getAttribute("url_name"):
        got = _element(root, el.tagName, el.getAttribute("url_name"))
        if got is not None:
            got.setAttribute("url_name", el.getAttribute("url_name"))
            return got
    return el


def expected_olx(root: Path) -> list[dict]:
    """Section > subsection > unit > video of an export, walked by hand: course.xml's
    url_name names course/<run>.xml, whose <chapter> children are the sections."""
    top = minidom.parse(str(root / "course.xml")).documentElement
    course = _element(root, "course", top.getAttribute("url_name"))
    rows = []
    chapters = [c for c in _elements(course) if c.tagName == "chapter"]
    for si, ch in enumerate(chapters, 1):
        ch = _expand(root, ch)
        for ssi, sq in enumerate(_elements(ch), 1):
            sq = _expand(root, sq)
            for ui, vert in enumerate(_elements(sq), 1):
                vert = _expand(root, vert)
                for v in vert.getElementsByTagName("video") if vert.tagName != "video" else []:
                    v = _expand(root, v)
                    rows.append(
                        {
                            "url_name": v.getAttribute("url_name"),
                            "title": v.getAttribute("display_name") or None,
                            "section": ch.getAttribute("display_name"),
                            "subsection": sq.getAttribute("display_name"),
                            "unit": vert.getAttribute("display_name"),
                            "position": len(rows) + 1,
                            "section_index": si,
                            "subsection_index": ssi,
                            "unit_index": ui,
                        }
                    )
    return rows


def expected_blocks(doc: dict) -> list[dict]:
    """The same from a Course Blocks response, with an explicit stack instead of recursion."""
    blocks = doc["blocks"]

    def kids(key):
        b = blocks[key]
        return b.get("children", b.get("descendants", []))

    rows = []
    for si, ch in enumerate(kids(doc["root"]), 1):
        for ssi, sq in enumerate(kids(ch), 1):
            for ui, unit in enumerate(kids(sq), 1):
                stack = [unit]
                while stack:
                    k = stack.pop()
                    if blocks[k]["type"] == "video":
                        rows.append(
                            {
                                "url_name": k.rsplit("@", 1)[1],
                                "title": blocks[k]["display_name"],
                                "section": blocks[ch]["display_name"],
                                "subsection": blocks[sq]["display_name"],
                                "unit": blocks[unit]["display_name"],
                                "position": len(rows) + 1,
                                "section_index": si,
                                "subsection_index": ssi,
                                "unit_index": ui,
                            }
                        )
                    stack.extend(reversed(kids(k)))
    return rows


def properties_doc(path: Path) -> dict:
    """PROVENANCE: line 13, everything after the first '='."""
    line = path.read_text(encoding="utf-8").splitlines()[12]
    assert line.startswith("get_course_structure=")
    return json.loads(line.split("=", 1)[1])


def rows(o: outline.Outline) -> list[dict]:
    return [{f: getattr(v, f) for f in FIELDS} for v in o.videos]


# ------------------------------------------------------------------ the real fixtures
@pytest.mark.parametrize("root", [LEGACY, CURRENT], ids=["legacy", "current"])
def test_olx_outline_matches_independent_reading(root):
    [o] = outline.read_path(root)
    want = expected_olx(root)
    assert rows(o) == want
    assert len(want) == {LEGACY: 5, CURRENT: 11}[root]


def test_olx_course_ids_and_known_labels():
    [legacy] = outline.read_path(LEGACY)
    [current] = outline.read_path(CURRENT)
    assert outline.course_key(legacy.course_id) == outline.course_key("edX/DemoX/Demo_Course")
    assert current.course_id == "course-v1:OpenedX+DemoX+DemoCourse"
    # PROVENANCE.md: "Welcome!" placed in vertical_0270f6de40fc
    first = legacy.videos[0]
    assert (first.url_name, first.title, first.section) == (
        "0b9e39477cf34507a7a48f74be381fdd",
        "Welcome!",
        "Introduction",
    )
    # a video whose file has no display_name keeps a null title, not an invented one
    assert legacy.videos[4].title is None and legacy.videos[4].unit == "New Unit"


@pytest.mark.parametrize("path", [DEMOX_2016, TEST101], ids=["demox-2016", "test101-2022"])
def test_blocks_outline_matches_independent_reading(path):
    [o] = outline.read_path(path)
    doc = properties_doc(path)
    assert rows(o) == expected_blocks(doc)
    assert (
        o.course_id
        == {
            DEMOX_2016: "course-v1:edX+DemoX+Demo_Course",
            TEST101: "course-v1:edX+Test101+course",
        }[path]
    )
    assert len(o.videos) == {DEMOX_2016: 4, TEST101: 3}[path]


def test_blocks_capture_agrees_with_legacy_export_where_both_have_the_video():
    [olx] = outline.read_path(LEGACY)
    [api] = outline.read_path(DEMOX_2016)
    assert olx.key == api.key
    by_name = {v.url_name: v for v in olx.videos}
    for v in api.videos:
        w = by_name[v.url_name]
        same = ["section", "subsection", "unit", "position", "section_index"]
        same += ["subsection_index", "unit_index"]
        assert [getattr(v, f) for f in same] == [getattr(w, f) for f in same]
    # the capture is a later version of the course: one video was renamed
    titles = {v.url_name: (v.title, by_name[v.url_name].title) for v in api.videos}
    differ = {k: t for k, t in titles.items() if t[0] != t[1]}
    assert list(differ) == ["7e9b434e6de3435ab99bd3fb25bde807"]


def test_blocks_as_a_list_response(tmp_path):
    """``return_type=list``: the same blocks as a list, the course block as root."""
    doc = properties_doc(TEST101)
    listed = [dict(b, id=k) for k, b in doc["blocks"].items()]
    f = tmp_path / "list.json"
    f.write_text(json.dumps(listed))
    [o] = outline.read_path(f)
    assert rows(o) == expected_blocks(doc) and o.course_id == "course-v1:edX+Test101+course"


def test_pipeline_json_lines_one_course_per_line():
    got = outline.read_path(PIPELINE_JSONL)
    assert [o.course_id for o in got] == [
        "course-v1:OpenCraft+DnDv2101x+2016",
        "course-v1:OpenCraft+PRDemo1+2016",
        "course-v1:OpenCraft+PRDemo2+2016",
        "course-v1:OpenCraft+VD101x+2016",
    ]
    assert all(not o.videos for o in got)
    outlines, warnings = outline.read_sources([Source(str(PIPELINE_JSONL))])
    assert len(outlines) == 4 and len(warnings) == 4 and "has no video" in warnings[0]


# ------------------------------------------------------------------ tarballs
def make_tar(root: Path, dest: Path, top: str = "course", extra=()) -> Path:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(root, arcname=top)
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return dest


@pytest.mark.parametrize("root", [LEGACY, CURRENT], ids=["legacy", "current"])
def test_tarball_gives_the_same_outline_as_its_directory(root, tmp_path):
    tgz = make_tar(root, tmp_path / "export.tar.gz")
    [a] = outline.read_path(root)
    [b] = outline.read_path(tgz)
    assert (a.course_id, a.title, a.videos) == (b.course_id, b.title, b.videos)
    # also when the export is at the archive's top level
    flat = tmp_path / "flat.tgz"
    with tarfile.open(flat, "w:gz") as tar:
        for p in sorted(root.rglob("*")):
            tar.add(p, arcname=str(p.relative_to(root)), recursive=False)
    [c] = outline.read_path(flat)
    assert c.videos == a.videos


def _member(name: str, kind=tarfile.REGTYPE, data: bytes | None = b"x", link: str = ""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if data is not None and kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


@pytest.mark.parametrize(
    "bad",
    [
        _member("course/../../evil.xml"),
        _member("/etc/evil.xml"),
        _member("course/link.xml", tarfile.SYMTYPE, link="/etc/passwd"),
        _member("course/hard.xml", tarfile.LNKTYPE, link="course/course.xml"),
    ],
    ids=["dotdot", "absolute", "symlink", "hardlink"],
)
def test_tarball_with_unsafe_member_is_refused(bad, tmp_path):
    tgz = make_tar(CURRENT, tmp_path / "bad.tar.gz", extra=[bad])
    with pytest.raises(OutlineError, match="refusing tar member") as e:
        outline.read_path(tgz)
    assert bad[0].name in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "evil.xml").exists() and not Path("/etc/evil.xml").exists()


def test_tarball_without_course_xml(tmp_path):
    tgz = make_tar(CURRENT / "video", tmp_path / "videos.tar.gz", top="video")
    with pytest.raises(OutlineError, match="no course.xml"):
        outline.read_path(tgz)


# ------------------------------------------------------------------ durations
def test_durations_from_the_structure(tmp_path):
    root = tmp_path / "c"
    for d in ("course", "chapter", "video"):
        (root / d).mkdir(parents=True)
    (root / "course.xml").write_text('<course url_name="R1" org="O" course="C"/>')
    (root / "course" / "R1.xml").write_text(
        '<course display_name="T"><chapter url_name="ch"/><wiki slug="x"/></course>'
    )
    # a section holding a sequence holding a video directly (old XML courses): the video is
    # its own unit; an inline video with its asset's duration
    (root / "chapter" / "ch.xml").write_text(
        '<chapter display_name="S"><sequential display_name="Sub">'
        '<video url_name="v1"/>'
        '<video url_name="v2" display_name="Inline"><video_asset duration="61.5"/></video>'
        "</sequential></chapter>"
    )
    (root / "video" / "v1.xml").write_text(
        '<video display_name="One"><video_asset duration="0.0"/></video>'
    )
    [o] = outline.read_path(root)
    assert o.course_id == "course-v1:O+C+R1"
    assert [(v.url_name, v.title, v.unit, v.unit_index, v.duration) for v in o.videos] == [
        ("v1", "One", "One", 1, None),
        ("v2", "Inline", "Inline", 2, 61.5),
    ]
    doc = {
        "root": "block-v1:O+C+R+type@course+block@course",
        "blocks": {
            "block-v1:O+C+R+type@course+block@course": {
                "type": "course",
                "children": ["block-v1:O+C+R+type@chapter+block@a"],
            },
            "block-v1:O+C+R+type@chapter+block@a": {
                "type": "chapter",
                "display_name": "A",
                "children": ["block-v1:O+C+R+type@video+block@vid"],
            },
            "block-v1:O+C+R+type@video+block@vid": {
                "type": "video",
                "display_name": "V",
                "student_view_data": {"duration": 42},
            },
        },
    }
    f = tmp_path / "blocks.json"
    f.write_text(json.dumps(doc))
    [b] = outline.read_path(f)
    assert b.course_id == "course-v1:O+C+R"
    assert b.videos[0][:3] == ("vid", "V", "A") and b.videos[0].duration == 42.0
    assert b.videos[0].subsection == "V" and b.videos[0].unit is None


# ------------------------------------------------------------------ ids
@pytest.mark.parametrize(
    "vid",
    [
        "0b9e39477cf34507a7a48f74be381fdd",
        " 0b9e39477cf34507a7a48f74be381fdd ",
        "i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd",
        "i4x://edX/DemoX/video/0b9e39477cf34507a7a48f74be381fdd",
        "block-v1:edX+DemoX+Demo_Course+type@video+block@0b9e39477cf34507a7a48f74be381fdd",
    ],
)
def test_url_name_of_every_id_form(vid):
    assert outline.url_name(vid) == "0b9e39477cf34507a7a48f74be381fdd"


def test_course_key_folds_both_forms():
    assert outline.course_key("course-v1:edX+DemoX+Demo_Course") == "edX+DemoX+Demo_Course"
    assert outline.course_key("edX/DemoX/Demo_Course") == "edX+DemoX+Demo_Course"
    assert outline.course_key("ccx-v1:edX+DemoX+Demo_Course+ccx@3") != "edX+DemoX+Demo_Course"


def test_parse_source():
    assert outline.parse_source("a/b.json") == Source("a/b.json")
    assert outline.parse_source("course-v1:O+C+2T2026=x.tgz") == Source(
        "x.tgz", "course-v1:O+C+2T2026"
    )
    assert outline.parse_source("O/C/R=x") == Source("x", "O/C/R")
    with pytest.raises(OutlineError, match="not a course id"):
        outline.parse_source("nonsense=x.tgz")


def test_course_id_override_and_duplicates():
    src = Source(str(CURRENT), "course-v1:OpenedX+DemoX+2T2026")
    (o,), _ = outline.read_sources([src])
    assert o.course_id == "course-v1:OpenedX+DemoX+2T2026" and len(o.videos) == 11
    with pytest.raises(OutlineError, match="two structures"):
        outline.read_sources([Source(str(LEGACY)), Source(str(DEMOX_2016))])
    with pytest.raises(OutlineError, match="exactly one"):
        outline.read_sources([Source(str(PIPELINE_JSONL), "O/C/R")])


def test_directory_of_structures(tmp_path):
    make_tar(CURRENT, tmp_path / "current.tar.gz")
    (tmp_path / "test101.properties").write_bytes(TEST101.read_bytes())
    (tmp_path / "README.md").write_text("notes")
    outlines, warnings = outline.read_sources([Source(str(tmp_path))])
    assert [o.course_id for o in outlines] == [
        "course-v1:OpenedX+DemoX+DemoCourse",
        "course-v1:edX+Test101+course",
    ]
    assert len(warnings) == 1 and "README.md" in warnings[0]


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "name,content,message",
    [
        ("notes.txt", b"hello world\n", "not JSON"),
        ("empty.json", b"", "empty"),
        ("list.json", b"[1, 2]", "not a Course Blocks response"),
        ("noroot.json", b'{"blocks": {}}', "not a Course Blocks response"),
        ("lost.json", b'{"root": "x", "blocks": {}}', "not among its blocks"),
        ("anon.json", b'{"root": "x", "blocks": {"x": {"type": "course"}}}', "no course id"),
        ("m.properties", b"other_key=1\n", "no get_course_structure"),
        ("bin.dat", b"\xff\xfe\x00\x01garbage", "neither"),
        ("mixed.jsonl", b'{"root": "x", "blocks": {}}\nnot json\n', "line 2 is not JSON"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(OutlineError, match=message) as e:
        outline.read_sources([Source(str(p))])
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_bad_directories(tmp_path):
    with pytest.raises(OutlineError, match="no such file"):
        outline.read_sources([Source(str(tmp_path / "missing"))])
    with pytest.raises(OutlineError, match="no course structure"):
        outline.read_sources([Source(str(tmp_path))])
    broken = tmp_path / "broken"
    (broken / "chapter").mkdir(parents=True)
    (broken / "course.xml").write_text('<course url_name="R" org="O" course="C"/>')
    with pytest.raises(OutlineError, match="course/R.xml"):
        outline.read_sources([Source(str(broken))])
    (broken / "course").mkdir()
    (broken / "course" / "R.xml").write_text('<course><chapter url_name="x"/></course>')
    (broken / "chapter" / "x.xml").write_text("<chapter><oops></chapter>")
    with pytest.raises(OutlineError, match="chapter/x.xml: not well-formed"):
        outline.read_sources([Source(str(broken))])
    (broken / "course.xml").write_text("<course/>")
    with pytest.raises(OutlineError, match="does not name a course"):
        outline.read_sources([Source(str(broken))])


# ------------------------------------------------------------------ the join
def _logged(rows):
    """A videos frame as the logs give it: (course_id, video_id, duration, code) rows."""
    from dask_pipeline import schema

    df = pd.DataFrame(rows, columns=list(schema.LOGGED_VIDEOS))
    return schema.conform(df, schema.LOGGED_VIDEOS)


def test_label_videos_matches_every_id_form_and_adds_unseen():
    [legacy] = outline.read_path(LEGACY)
    h = [v.url_name for v in legacy.videos]
    logged = _logged(
        [
            ("edX/DemoX/Demo_Course", f"i4x-edX-DemoX-video-{h[0]}", 60.0, "html5"),
            ("edX/DemoX/Demo_Course", f"i4x://edX/DemoX/video/{h[1]}", None, "html5"),
            ("course-v1:edX+DemoX+Demo_Course", f" {h[2]}", None, "mobile"),
            (
                "course-v1:edX+DemoX+Demo_Course",
                f"block-v1:edX+DemoX+Demo_Course+type@video+block@{h[3]}",
                None,
                None,
            ),
            ("edX/DemoX/Demo_Course", "not-in-outline", None, None),
            ("Other/Course/Run", h[0], None, None),
        ]
    )
    got = outline.label_videos(logged, [legacy])
    v = got.videos
    from dask_pipeline import schema

    assert list(v.columns) == list(schema.VIDEOS)
    # each log course id gets the outline: 4 logged + 1 + 5 unseen rows in the two forms
    old = v.loc[v["course_id"] == "edX/DemoX/Demo_Course"].set_index("video_id")
    new = v.loc[v["course_id"] == "course-v1:edX+DemoX+Demo_Course"].set_index("video_id")
    assert old.loc[f"i4x-edX-DemoX-video-{h[0]}", "title"] == "Welcome!"
    assert old.loc[f"i4x-edX-DemoX-video-{h[0]}", "position"] == 1
    assert old.loc[f"i4x://edX/DemoX/video/{h[1]}", "position"] == 2
    assert set(old.loc[~old["seen_in_logs"]].index) == {h[2], h[3], h[4]}
    assert pd.isna(old.loc["not-in-outline", "position"])
    assert set(new.loc[~new["seen_in_logs"]].index) == {h[0], h[1], h[4]}
    assert new.loc[f" {h[2]}", "unit"] == "Videos on edX"
    other = v.loc[v["course_id"] == "Other/Course/Run"]
    assert len(other) == 1 and other["title"].isna().all()
    assert got.counts == {
        "outline_courses": 1,
        "outline_videos": 5,
        "outline_matched_videos": 4,
        "outline_log_videos_absent": 1,
        "outline_videos_unseen": 6,
        "outline_unmatched": 0,
    }
    assert got.courses[0]["matched_courses"] == [
        "course-v1:edX+DemoX+Demo_Course",
        "edX/DemoX/Demo_Course",
    ]
    assert (
        v.loc[v["video_id"] == f"i4x-edX-DemoX-video-{h[0]}", "duration_source"].item() == "events"
    )
    assert v["duration_source"].isna().sum() == len(v) - 1


def test_labels_carry_over_runs_and_unseen_rows_give_way():
    [legacy] = outline.read_path(LEGACY)
    h = [v.url_name for v in legacy.videos]
    course = "edX/DemoX/Demo_Course"
    first = outline.label_videos(_logged([(course, h[0], None, None)]), [legacy]).videos
    assert len(first) == 5
    # a run without the structure keeps the labels and the unseen rows
    core = _logged([(course, h[0], 30.0, "html5"), (course, "new", None, None)])
    kept = outline.label_videos(core, [], previous=first)
    assert kept.counts["outline_courses"] == 0
    k = kept.videos.set_index("video_id")
    assert len(k) == 6 and k.loc[h[0], "title"] == "Welcome!" and pd.isna(k.loc["new", "title"])
    assert k.loc[h[1], "position"] == 2 and not k.loc[h[1], "seen_in_logs"]
    # a later run that logs an unseen video in another form: one row for it, not two
    prev_logged = outline.logged_videos(kept.videos)
    assert set(prev_logged["video_id"]) == {h[0], "new"}
    core = pd.concat(
        [prev_logged, _logged([(course, f"i4x-edX-DemoX-video-{h[1]}", None, None)])],
        ignore_index=True,
    )
    for outlines in ([legacy], []):  # with the structure again, and without
        again = outline.label_videos(core, outlines, previous=kept.videos).videos
        names = [outline.url_name(x) for x in again["video_id"]]
        assert sorted(names) == sorted([*h, "new"])
        row = again.loc[again["video_id"] == f"i4x-edX-DemoX-video-{h[1]}"]
        assert row["seen_in_logs"].all() and (row["position"] == 2).all()


def test_logged_videos_forgets_outline_durations():
    [legacy] = outline.read_path(LEGACY)
    o = legacy.videos[0]
    legacy = outline.Outline(
        legacy.course_id, legacy.source, legacy.title, (o._replace(duration=99.0),)
    )
    v = outline.label_videos(_logged([("edX/DemoX/Demo_Course", o.url_name, None, None)]), [legacy])
    assert v.videos["duration"].tolist() == [99.0]
    assert outline.logged_videos(v.videos)["duration"].isna().all()


# ------------------------------------------------------------------ the whole job
CUR = "course-v1:OpenedX+DemoX+DemoCourse"
OLD = "edX/DemoX/Demo_Course"
T101 = "course-v1:edX+Test101+course"
RERUN = "course-v1:OpenedX+DemoX+2T2026"
#: a video of the legacy course's logs that this export does not have (PROVENANCE.md)
NOT_IN_EXPORT = "i4x-edX-DemoX-video-8c0028eb2a724f48a074bc184cd8635f"


def _ids():
    cur = {r["url_name"]: r for r in expected_olx(CURRENT)}
    old = {r["url_name"]: r for r in expected_olx(LEGACY)}
    t101 = {r["url_name"]: r for r in expected_blocks(properties_doc(TEST101))}
    return cur, old, t101


def _watch(lines, user, course, vid, t, start, end, duration=None, mobile=False):
    """A play then a pause of ``vid`` from ``start`` to ``end`` seconds."""
    from .conftest import video_line

    p = {"id": vid, "code": "mobile" if mobile else "html5", "currentTime": start}
    if duration is not None:
        p["duration"] = duration
    q = dict(p, currentTime=end)
    if mobile:
        lines.append(
            video_line(
                user, course, "play_video", t(0), p, as_string=False, name="edx.video.played"
            )
        )
        lines.append(
            video_line(
                user, course, "pause_video", t(1), q, as_string=False, name="edx.video.paused"
            )
        )
    else:
        lines.append(video_line(user, course, "play_video", t(0), p))
        lines.append(video_line(user, course, "pause_video", t(1), q))


def make_log(path: Path) -> dict[tuple[str, str], str]:
    """Events for videos of both exports and of the mobile capture, in the id form each era
    logs; returns {(course_id, video_id as logged): url_name}."""
    n = iter(range(10_000))

    def clock():
        k = next(n)
        return lambda s: f"2026-01-05T10:{k // 60:02d}:{k % 60:02d}.{s}00000+00:00"

    watched = {
        (
            CUR,
            "block-v1:OpenedX+DemoX+DemoCourse+type@video+block@d5a54ce52f464acfa7a83ae155712cc3",
        ): 120.0,
        (
            CUR,
            "block-v1:OpenedX+DemoX+DemoCourse+type@video+block@8888e30dade84caca66637064bbd2756",
        ): None,
        (OLD, "i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd"): 195.0,
        (OLD, "i4x://edX/DemoX/video/636541acbae448d98ab484b028c9a7f6"): None,
        (OLD, NOT_IN_EXPORT): None,
        (T101, "9434985845ea475793f9ac564bfb04fd"): None,
        (
            RERUN,
            "block-v1:OpenedX+DemoX+2T2026+type@video+block@0d9ca68c609b4251bb3eacccd28dea19",
        ): None,
    }
    lines: list[str] = []
    for (course, vid), dur in watched.items():
        for user in ("ann", "bob"):
            _watch(lines, user, course, vid, clock(), 0.0, 30.0, dur, mobile=course == T101)
    path.write_text("\n".join(lines) + "\n")
    return {k: outline.url_name(k[1]) for k in watched}


@pytest.fixture(scope="module")
def labelled_run(dask_client, tmp_path_factory):
    from .conftest import run_job

    tmp = tmp_path_factory.mktemp("outline-run")
    log = tmp / "tracking.log"
    logged = make_log(log)
    args = (str(CURRENT), str(LEGACY), str(TEST101), f"{RERUN}={CURRENT}", str(PIPELINE_JSONL))
    outlines, warns = outline.read_sources(outline.parse_source(a) for a in args)
    res = run_job(dask_client, [log], tmp / "out", course_structures=args, outlines=outlines)
    return res, logged, tmp


def _table(res, name):
    return pd.read_parquet(res.out / name)


def test_run_labels_every_outline_video(labelled_run):
    res, logged, _ = labelled_run
    videos = _table(res, "videos")
    stats = _table(res, "video_stats")
    cur, old, t101 = _ids()
    expect = {CUR: cur, OLD: old, T101: t101, RERUN: cur}
    for course, by_name in expect.items():
        got = videos.loc[videos["course_id"] == course]
        got = got.assign(url_name=[outline.url_name(v) for v in got["video_id"]])
        in_outline = got.loc[got["position"].notna()].set_index("url_name")
        assert set(in_outline.index) == set(by_name), course
        for name, want in by_name.items():
            row = in_outline.loc[name]
            for f in FIELDS[1:]:
                w = want[f]
                assert (pd.isna(row[f]) and w is None) or row[f] == w, (course, name, f)
            assert row["seen_in_logs"] == ((course, row["video_id"]) in logged)
        # unwatched outline videos: in video_stats with zero viewers
        s = stats.loc[stats["course_id"] == course].set_index("video_id")
        for vid, row in in_outline.set_index("video_id").iterrows():
            assert s.loc[vid, "viewers"] == (2 if row["seen_in_logs"] else 0), (course, vid)
            assert s.loc[vid, "title"] == row["title"] or pd.isna(row["title"])
    # the ids as logged are kept
    assert NOT_IN_EXPORT in set(videos["video_id"])
    assert videos.loc[videos["video_id"] == NOT_IN_EXPORT, "position"].isna().all()


def test_run_json_counts_and_warning(labelled_run):
    res, _, _ = labelled_run
    counts = res.summary["counts"]
    n_outline = 11 + 5 + 3 + 11  # CUR, OLD, T101, RERUN (the current export again)
    assert counts["outline_videos"] == n_outline
    assert counts["outline_matched_videos"] == 6  # every logged video but NOT_IN_EXPORT
    assert counts["outline_log_videos_absent"] == 1
    assert counts["outline_videos_unseen"] == n_outline - 6
    assert counts["outline_unmatched"] == 4  # the four OpenCraft courses
    assert sum("OpenCraft" in w and "in no log" in w for w in res.warnings) == 4
    assert [c["matched_courses"] for c in res.summary["outlines"][:4]] == [
        [CUR],
        [OLD],
        [T101],
        [RERUN],
    ]


def test_duration_from_outline_when_logs_have_none(dask_client, tmp_path):
    """A structure's duration fills in where no event gave one, and says so."""
    from .conftest import run_job

    root = tmp_path / "c"
    for d in ("course", "chapter"):
        (root / d).mkdir(parents=True)
    (root / "course.xml").write_text('<course url_name="R" org="O" course="C"/>')
    (root / "course" / "R.xml").write_text('<course><chapter url_name="ch"/></course>')
    (root / "chapter" / "ch.xml").write_text(
        '<chapter display_name="S"><sequential display_name="Sub"><vertical display_name="U">'
        '<video url_name="a" display_name="A"><video_asset duration="300"/></video>'
        '<video url_name="b" display_name="B"><video_asset duration="300"/></video>'
        '<video url_name="c" display_name="C"><video_asset duration="90"/></video>'
        "</vertical></sequential></chapter>"
    )
    lines: list[str] = []
    clock = iter(range(100))
    for vid, dur in (("a", None), ("b", 250.0)):
        k = next(clock)
        _watch(
            lines,
            "ann",
            "O/C/R",
            vid,
            lambda s, k=k: f"2026-01-05T11:00:{k:02d}.{s}00000Z",
            0.0,
            30.0,
            dur,
        )
    log = tmp_path / "t.log"
    log.write_text("\n".join(lines) + "\n")
    outlines, _ = outline.read_sources([Source(str(root))])
    res = run_job(
        dask_client, [log], tmp_path / "out", course_structures=(str(root),), outlines=outlines
    )
    v = _table(res, "videos").set_index("video_id")
    assert (v.loc["a", "duration"], v.loc["a", "duration_source"]) == (300.0, "outline")
    assert (v.loc["b", "duration"], v.loc["b", "duration_source"]) == (250.0, "events")
    assert (v.loc["c", "duration"], v.loc["c", "duration_source"]) == (90.0, "outline")
    s = _table(res, "video_stats").set_index("video_id")
    assert s.loc["a", "duration"] == 300.0 and not s.loc["a", "duration_inferred"]
    assert s.loc["c", "viewers"] == 0 and s.loc["c", "title"] == "C"


# ------------------------------------------------------------------ the command line
def _bad_inputs(tmp: Path) -> dict[str, tuple[str, str]]:
    (tmp / "notes.txt").write_text("these are not the droids\n")
    (tmp / "config.json").write_text('{"debug": true}')
    (tmp / "x.properties").write_text("get_course_structure={oops\n")
    dotdot = make_tar(CURRENT, tmp / "dotdot.tar.gz", extra=[_member("course/../../x.xml")])
    return {
        "not JSON": (str(tmp / "notes.txt"), "not JSON"),
        "not a course": (str(tmp / "config.json"), "not a Course Blocks response"),
        "bad properties": (str(tmp / "x.properties"), "line 1 is not JSON"),
        "dotdot tar": (str(dotdot), "refusing tar member 'course/../../x.xml'"),
        "missing": (str(tmp / "nope"), "no such file"),
        "bad course id": (f"rerun={CURRENT}", "not a course id"),
    }


@pytest.mark.parametrize(
    "case", ["not JSON", "not a course", "bad properties", "dotdot tar", "missing", "bad course id"]
)
def test_cli_bad_structure_is_one_line_exit_2_nothing_written(tmp_path, capsys, case):
    from dask_pipeline import cli

    arg, needle = _bad_inputs(tmp_path)[case]
    log = tmp_path / "t.log"
    log.write_text("")
    out = tmp_path / "out"
    code = cli.main(["run", str(log), "--out", str(out), "--course-structure", arg])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert "--course-structure" in err and needle in err
    assert not out.exists()


def test_cli_help_names_the_option():
    from dask_pipeline import cli

    text = cli.build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "--course-structure [COURSE_ID=]PATH" in text


def test_same_rows_from_directory_tarball_and_blocks_capture(labelled_run, dask_client):
    """Acceptance 2: the OLX directory and its .tar.gz give the same videos rows; for the
    legacy demo course the mobile Course Blocks capture gives the same rows where both
    carry the video (its one renamed video aside)."""
    from .conftest import run_job

    res, _, tmp = labelled_run
    log = tmp / "tracking.log"
    cur_tgz = make_tar(CURRENT, tmp / "current.tar.gz")
    old_tgz = make_tar(LEGACY, tmp / "legacy.tar.gz", top="Demo_Course")
    runs = {}
    for name, args in {
        "tar": (str(cur_tgz), str(old_tgz), str(TEST101), f"{RERUN}={cur_tgz}"),
        "blocks": (str(CURRENT), str(DEMOX_2016), str(TEST101), f"{RERUN}={CURRENT}"),
    }.items():
        outlines, _ = outline.read_sources(outline.parse_source(a) for a in args)
        r = run_job(dask_client, [log], tmp / name, course_structures=args, outlines=outlines)
        runs[name] = _table(r, "videos").sort_values(["course_id", "video_id"])
    olx = _table(res, "videos").sort_values(["course_id", "video_id"])
    pd.testing.assert_frame_equal(olx.reset_index(drop=True), runs["tar"].reset_index(drop=True))
    a = olx.loc[olx["course_id"] == OLD].set_index("video_id")
    b = runs["blocks"].loc[runs["blocks"]["course_id"] == OLD].set_index("video_id")
    both = a.index.intersection(b.index)
    assert len(both) == 5  # 4 videos of the capture + the logged one neither outline has
    assert set(a.index.difference(b.index)) == {"af7fe1335eb841cd81ce31c7ee8eb069"}
    cols = [c for c in a.columns if c != "title"]
    pd.testing.assert_frame_equal(a.loc[both, cols], b.loc[both, cols])
    renamed = "7e9b434e6de3435ab99bd3fb25bde807"
    same = both.drop(renamed)
    pd.testing.assert_series_equal(a.loc[same, "title"], b.loc[same, "title"])
    assert b.loc[renamed, "title"] == "Science and Cooking Chef Profile: JOSÉ ANDRÉS"
    other = olx["course_id"] != OLD
    pd.testing.assert_frame_equal(
        olx.loc[other].reset_index(drop=True),
        runs["blocks"].loc[runs["blocks"]["course_id"] != OLD].reset_index(drop=True),
    )
