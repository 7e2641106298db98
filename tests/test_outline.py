"""outline.py: course structures read from the real fixtures, checked against a reading of
the same files written independently here (minidom, files found by path), and every way a
structure input can be wrong."""

from __future__ import annotations

import io
import json
import tarfile
import xml.dom.minidom as minidom
from pathlib import Path

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
