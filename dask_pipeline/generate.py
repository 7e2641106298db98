"""Deterministic synthetic Open edX tracking logs, shaped like the real ones (SPEC §2).

``generate(out_dir, ...)`` writes one gzip file per day, ``tracking.log-YYYYMMDD.gz``, plus
``staff.txt``. The same arguments always give the same bytes. Lines follow the field names and
quirks of the fixtures in ``shared/fixtures/openedx-events``: browser video events with a
JSON-string ``event``, mobile ``edx.video.*`` events with an object ``event`` that may arrive
late, server page views, problem checks, course-team (instructor/Studio) traffic, anonymous
rows, padded usernames and video ids, missing/0/null durations, non-UTC offsets and times
without microseconds. About a third of the lines are video events. Every line is valid JSON.

Imports neither Dask nor ``distributed``: it is also used to make benchmark inputs.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

try:
    # ISA-L deflate is several times faster than zlib at level 1, and igzip_threaded runs it on
    # a second thread (it releases the GIL) while this one builds lines. Its header has mtime 0
    # and no file name, and its blocks depend only on the bytes written: deterministic output.
    from isal import igzip_threaded

    def _gzip_open(path: Path) -> BinaryIO:
        return igzip_threaded.open(path, "wb", compresslevel=1, threads=1)

except ImportError:  # pragma: no cover - isal is a declared dependency
    import gzip

    def _gzip_open(path: Path) -> BinaryIO:
        # Fixed mtime; the header's file name is the (fixed) temporary name.
        return gzip.GzipFile(path, "wb", compresslevel=1, mtime=0)


__all__ = ["GenerateResult", "generate"]

_ARRIVAL = itemgetter(0)
_EPOCH = dt.date(1970, 1, 1)

SEC = 1_000_000
MINUTE = 60 * SEC
HOUR = 3600 * SEC
DAY = 24 * HOUR

LMS = "courses.learn.openuniversity.example"
STUDIO = "studio.learn.openuniversity.example"
MFE = "apps.learn.openuniversity.example"

#: Lines per learner per day when ``lines`` is not given (plus a per-course share).
_BASE_LINES_PER_USER_DAY = 25
_LINES_PER_USER_DAY_PER_COURSE = 10

#: Relative activity per UTC hour: learners are spread over time zones, with a daytime peak.
_HOURLY = (2.0, 1.6, 1.3, 1.1, 1.0, 1.2, 1.6, 2.2, 3.0, 3.6, 4.0, 4.2,
           4.4, 4.6, 4.8, 5.0, 5.0, 4.8, 4.6, 4.4, 4.0, 3.6, 3.0, 2.4)  # fmt: skip

_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/129.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
)
_MOBILE_APPS = (
    # (agent, application name, version, device type, os name, os version)
    (
        "edX/org.edx.mobile (5.1.2; OS Version 14 (Build UP1A.231005.007))",
        "edx.mobileapp.android",
        "5.1.2",
        "android",
        "Android",
        "14",
    ),
    (
        "edX/org.edx.mobile (5.0.1; OS Version 17.6.1 (Build 21G93))",
        "edx.mobileapp.iOS",
        "5.0.1",
        "ios",
        "iOS",
        "17.6.1",
    ),
    (
        "Dalvik/2.1.0 (Linux; U; Android 12; SM-A515F Build/SP1A.210812.016)",
        "edx.mobileapp.android",
        "4.0.0",
        "android",
        "Android",
        "12",
    ),
)
_LANGS = ("en-US,en;q=0.9", "en-GB,en;q=0.8", "de-DE,de;q=0.9,en;q=0.6", "es-ES,es;q=0.9",
          "fr-FR,fr;q=0.8,en-US;q=0.5", "en-us", "pt-BR,pt;q=0.9,en;q=0.7", "")  # fmt: skip
_FIRST = ("alice", "bob", "carla", "deniz", "emeka", "fatima", "gustav", "hana", "ivan", "jin",
          "kofi", "lena", "mateo", "nadia", "omar", "priya", "quentin", "rosa", "sven", "tariq",
          "ursula", "viktor", "wen", "ximena", "yusuf", "zoe")  # fmt: skip
_LAST = ("smith", "garcia", "mueller", "okafor", "tanaka", "novak", "rossi", "silva", "kim",
         "haddad", "jensen", "dubois", "ivanova", "chen", "mensah", "lopez", "nguyen",
         "shah")  # fmt: skip
_ORGS = ("OpenUX", "NorthU", "AcmeX", "LakesideX", "CivicU")
_NUMS = ("CS101", "STAT110", "BIO150", "HIST201", "PHYS120", "ECON102", "MATH221", "CHEM105")
_RUNS = ("2026_T1", "1T2026", "2025_Fall", "2026_Spring")
_DUR0 = ', "duration": 0'
_SPEEDS = ("0.75", "1.0", "1.25", "1.50", "2.0")
_SPEED_VALUES = (0.75, 1.0, 1.25, 1.5, 2.0)
#: A few sessions write their times with a non-UTC offset (same instant, other wall clock).
_OFFSETS = ((2 * HOUR, "+02:00"), (-5 * HOUR, "-05:00"), (5 * HOUR + 30 * 60 * SEC, "+05:30"))
#: ``name`` that newer browser events carry while ``event_type`` keeps the legacy name.
_NEW_NAMES = {
    "play_video": "edx.video.played",
    "pause_video": "edx.video.paused",
    "stop_video": "edx.video.stopped",
    "seek_video": "edx.video.position.changed",
    "load_video": "edx.video.loaded",
    "show_transcript": "edx.video.transcript.shown",
    "hide_transcript": "edx.video.transcript.hidden",
}


@dataclass(frozen=True)
class GenerateResult:
    """What ``generate`` wrote.

    ``files``: the daily gzip logs in name (= date) order. ``lines``: total lines in them.
    ``staff_file``: ``staff.txt``. ``team_users``: every course-team username (instructors and
    Studio authors, who have ``instructor``/``studio`` events, plus the staff list), sorted.
    ``staff_users``: the usernames in ``staff.txt``; they also watch videos as learners.
    """

    files: list[Path]
    lines: int
    staff_file: Path
    team_users: list[str]
    staff_users: list[str]


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _esc(plain_json: str) -> str:
    """``plain_json`` as the body of a JSON string (how browser events embed their payload)."""
    if "\\" in plain_json:
        plain_json = plain_json.replace("\\", "\\\\")
    return plain_json.replace('"', '\\"')


class _Video:
    __slots__ = ("hex", "id", "ids", "code", "duration", "dur", "reports", "save", "transcript",
                 "key")  # fmt: skip

    def __init__(self, rng: random.Random, course: _Course, key: int) -> None:
        self.hex = hx = _hex(rng)
        # Old courses (and courses migrated from them) keep i4x ids in their video events.
        if course.legacy or rng.random() < 0.2:
            self.id = f"i4x-{course.org}-{course.num}-video-{hx}"
        else:
            self.id = hx
        # Stray whitespace around the id, as some clients send it (already JSON-escaped).
        self.ids = (f" {self.id}", f"{self.id} ", f" {self.id} ", f"{self.id}\\n")
        r = rng.random()
        if r < 0.2:
            self.code = "html5"
        elif r < 0.25:
            self.code = "hls"
        else:
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            self.code = "".join(alphabet[rng.getrandbits(6)] for _ in range(11))
        # Log-uniform 60..1800 s: many short clips, a few long lectures.
        d = math.exp(rng.uniform(math.log(60), math.log(1800)))
        self.duration = float(round(d)) if rng.random() < 0.5 else round(d, 3)
        # Older players never send a duration; newer ones do, with an occasional 0 or null.
        self.reports = rng.random() < 0.75
        self.dur = f', "duration": {self.duration}'
        xblock = f"/courses/{course.id}/xblock/{course.usage_path('video', hx)}/handler"
        self.save = f"{xblock}/xmodule_handler/save_user_state"
        self.transcript = (
            f"{xblock}/transcript/translation/en",
            f'{{"POST": {{}}, "GET": {{"videoId": ["{self.code}"]}}}}',
        )
        self.key = key


class _Unit:
    __slots__ = ("i", "path", "get", "page", "mfe", "videos", "problem", "xblock", "seq_goto",
                 "goto")  # fmt: skip

    def __init__(
        self, course: _Course, i: int, chapter: str, seq: str, vertical: str, pos: int
    ) -> None:
        self.i = i
        block = course.usage_key("vertical", vertical)
        seq_key = course.usage_key("sequential", seq)
        self.seq_goto = (
            f'{{"target_tab": {pos}, "old": {max(1, pos - 1)}, "current_tab": {max(1, pos - 1)}, '
            f'"tab_count": 3, "new": {pos}, "widget_placement": "top", "id": "{seq_key}"}}'
        )
        self.goto = (
            f"/courses/{course.id}/xblock/{course.usage_path('sequential', seq)}/handler/"
            "xmodule_handler/goto_position",
            f'{{"POST": {{"position": ["{pos}"]}}, "GET": {{}}}}',
        )
        self.xblock = (
            f"/xblock/{block}",
            '{"POST": {}, "GET": {"show_title": ["0"], "show_bookmark_button": ["0"], '
            '"recheck_access": ["1"], "view": ["student_view"]}}',
        )
        self.path = f"/courses/{course.id}/courseware/{chapter}/{seq}/{pos}"
        self.get = f'"activate_block_id": ["{block}"]'
        self.page = f"https://{LMS}{self.path}?activate_block_id={quote(block, safe='')}"
        # Newer platforms show units in the learning micro-frontend.
        self.mfe = f"https://{MFE}/learning/course/{course.id}/{seq_key}/{block}"
        self.videos: list[_Video] = []
        self.problem: str | None = None


class _Course:
    __slots__ = ("i", "id", "org", "num", "run", "legacy", "units", "videos", "video_units",
                 "intro", "team", "home")  # fmt: skip

    def __init__(self, rng: random.Random, i: int, n_videos: int, video_key: int) -> None:
        self.i = i
        self.org = _ORGS[i % len(_ORGS)]
        self.num = _NUMS[i % len(_NUMS)] + (str(i // len(_NUMS)) if i >= len(_NUMS) else "")
        self.run = _RUNS[i % len(_RUNS)]
        # One course keeps the pre-2015 slash-separated id (SPEC §2).
        self.legacy = i == 1
        if self.legacy:
            self.id = f"{self.org}/{self.num}/{self.run}"
        else:
            self.id = f"course-v1:{self.org}+{self.num}+{self.run}"
        self.home = f"https://{LMS}/courses/{self.id}/course/"
        self.videos = [_Video(rng, self, video_key + k) for k in range(n_videos)]
        self.intro = _Video(rng, self, -1 - i)  # the about-page video anonymous visitors play
        # Units: about 40% more than videos; some hold two videos, the rest a problem.
        n_units = max(1, math.ceil(n_videos * 1.4))
        self.units: list[_Unit] = []
        chapter = seq = ""
        pos = 0
        for u in range(n_units):
            if u % 6 == 0:
                chapter = _hex(rng)
            if u % 3 == 0:
                seq, pos = _hex(rng), 0
            pos += 1
            self.units.append(_Unit(self, u, chapter, seq, _hex(rng), pos))
        k = 0
        for v in self.videos:
            unit = self.units[k % n_units]
            unit.videos.append(v)
            # Now and then two videos share a page (watched interleaved).
            if rng.random() < 0.75 or len(unit.videos) == 2:
                k += 1
        for unit in self.units:
            if not unit.videos or rng.random() < 0.5:
                unit.problem = _hex(rng)
        self.video_units = [unit for unit in self.units if unit.videos]
        self.team: list[_User] = []

    def usage_key(self, kind: str, hx: str) -> str:
        if self.legacy:
            return f"i4x://{self.org}/{self.num}/{kind}/{hx}"
        return f"block-v1:{self.org}+{self.num}+{self.run}+type@{kind}+block@{hx}"

    def usage_path(self, kind: str, hx: str) -> str:
        """The usage key as it appears in an xblock handler URL."""
        if self.legacy:
            return f"i4x:;_;_{self.org};_{self.num};_{kind};_{hx}"
        return self.usage_key(kind, hx)


class _User:
    __slots__ = ("name", "json", "pad", "uid", "agent", "ip", "lang", "courses", "mobile_p",
                 "speed", "busy", "progress", "positions", "app")  # fmt: skip

    def __init__(self, rng: random.Random, name: str, uid: int, courses: list[_Course]) -> None:
        self.name = name
        self.json = f'"{name}"'
        self.pad = f'" {name} "' if rng.random() < 0.5 else f'"{name} "'
        self.uid = uid
        self.agent = _AGENTS[int(rng.random() * len(_AGENTS))]
        self.ip = _ip(rng)
        self.lang = _LANGS[int(rng.random() * len(_LANGS))]
        self.courses = courses
        # A quarter of learners use the app for half their sessions: ~15% of viewings.
        self.mobile_p = 0.5 if rng.random() < 0.25 else 0.0
        self.speed = 1 if rng.random() < 0.8 else int(rng.random() * len(_SPEEDS))
        self.busy = 0
        self.progress: dict[int, int] = {}
        self.positions: dict[int, float] = {}
        self.app = _MOBILE_APPS[int(rng.random() * len(_MOBILE_APPS))]


class _Session:
    """Per-session constants: who, where, how times are written, the current page."""

    __slots__ = ("u", "c", "un", "pad", "uid", "agent", "ip", "lang", "sid", "off", "suffix",
                 "micro", "new", "obj", "page", "ref", "tail", "late", "mctx", "cid")  # fmt: skip


class _Writer:
    """Holds lines until nothing can arrive before them any more, then writes them in arrival
    order to the file of their arrival day."""

    def __init__(self, out: Path, day0: int, days: int, dates: list[str]) -> None:
        self.day0 = day0
        self.days = days
        self.paths = [out / f"tracking.log-{dates[k].replace('-', '')}.gz" for k in range(days)]
        # (arrival µs, line) not yet written; appended in generation order.
        self.pending: list[tuple[int, str]] = []
        self.push = self.pending.append
        self.written = 0
        self.current = -1
        self.gz: BinaryIO | None = None

    @property
    def count(self) -> int:
        """Lines generated so far, written or not."""
        return self.written + len(self.pending)

    def _open(self, day: int) -> None:
        while self.current < day:
            self._close()
            self.current += 1
            # Written aside and renamed when complete: no half-written log under the real name.
            self.gz = _gzip_open(self.paths[self.current].with_suffix(".gz.tmp"))

    def _close(self) -> None:
        if self.gz is not None:
            self.gz.close()
            self.gz = None
            path = self.paths[self.current]
            os.replace(path.with_suffix(".gz.tmp"), path)

    def abort(self) -> None:
        """After a failure: stop the compressor thread and remove the partial file."""
        if self.gz is not None:
            try:
                self.gz.close()
            finally:
                self.gz = None
                self.paths[self.current].with_suffix(".gz.tmp").unlink(missing_ok=True)

    def flush(self, before: int | None) -> None:
        """Write, in arrival order, every line that arrived before ``before`` (µs; all when
        None). Nothing generated later may arrive before ``before``."""
        pending = self.pending
        # Stable sort: equal arrival times keep generation order (a user's ties stay put).
        pending.sort(key=_ARRIVAL)
        n = len(pending) if before is None else bisect.bisect_left(pending, before, key=_ARRIVAL)
        i = 0
        while i < n:
            day = min(max(pending[i][0] // DAY - self.day0, 0), self.days - 1)
            # Lines after the last day's end stay in the last file, as in a late rotation.
            end = (self.day0 + day + 1) * DAY if day < self.days - 1 else before
            j = n if end is None else bisect.bisect_left(pending, end, i, n, key=_ARRIVAL)
            j = min(j, n)
            self._open(day)
            self.gz.write(("\n".join([x[1] for x in pending[i:j]]) + "\n").encode())
            i = j
        del pending[:n]  # in place: ``push`` is bound to this list
        self.written += n

    def finish(self) -> None:
        self.flush(None)
        self._open(self.days - 1)  # empty days still get their (empty) file
        self._close()


class _Generator:
    def __init__(self, out: Path, users: int, courses: int, days: int, seed: int, start: str,
                 videos: int, lines: int | None) -> None:  # fmt: skip
        self.rng = rng = random.Random(seed)
        self.rnd = rng.random
        self.days = days
        self.day0 = (dt.date.fromisoformat(start) - _EPOCH).days
        dates = [(_EPOCH + dt.timedelta(days=self.day0 + k)).isoformat() for k in range(days)]
        self.w = _Writer(out, self.day0, days, dates)
        self.push = self.w.push  # list.append: the hottest call of all
        self.minutes: dict[int, str] = {}
        self.courses = [_Course(rng, i, videos, i * videos) for i in range(courses)]
        self.learners: list[_User] = []
        for i in range(users):
            first = _FIRST[int(self.rnd() * len(_FIRST))]
            last = _LAST[int(self.rnd() * len(_LAST))]
            style = i % 3
            if style == 0:
                name = f"{first}.{last}{i}"
            elif style == 1:
                name = f"{first}_{last[0]}{i}"
            else:
                name = f"{first}{last}{i}"
            n = 1 + int(self.rnd() * min(courses, 3))
            mine = sorted(rng.sample(self.courses, n), key=lambda c: c.i)
            self.learners.append(_User(rng, name, 1000 + i, mine))
        # Heavy-tailed activity: a few learners produce much of the traffic.
        weights = [min(rng.paretovariate(1.2), 20.0) for _ in self.learners]
        self.cum = []
        total = 0.0
        for x in weights:
            total += x
            self.cum.append(total)
        self.team: list[_User] = []
        for c in self.courses:
            for k in range(2 + c.i % 2):
                last = _LAST[(c.i * 3 + k) % len(_LAST)]
                u = _User(rng, f"{'prof' if k == 0 else 'ta'}_{last}_{c.i}{k}", 100 + 10 * c.i + k,
                          [c])  # fmt: skip
                u.mobile_p = 0.0
                c.team.append(u)
                self.team.append(u)
        n_staff = min(2, max(0, users - 2))
        self.staff = self.learners[:n_staff]
        for u in self.staff:
            u.mobile_p = 0.0  # their forced first session is a browser one anyway
        self.enrolled: set[tuple[int, int]] = set()
        per_user = _BASE_LINES_PER_USER_DAY + _LINES_PER_USER_DAY_PER_COURSE * min(courses, 5)
        per_day = users * per_user
        self.target = lines if lines is not None else per_day * days
        hour_total = sum(_HOURLY)
        self.hour_cum = [sum(_HOURLY[:h]) / hour_total for h in range(24)]

    # ---- time -------------------------------------------------------------------------------

    def minute(self, m: int) -> str:
        """ "YYYY-MM-DDTHH:MM:" of minute ``m`` since the epoch (cached: formatting is hot)."""
        p = self.minutes.get(m)
        if p is None:
            d, rest = divmod(m, 1440)
            day = (_EPOCH + dt.timedelta(days=d)).isoformat()
            p = self.minutes[m] = f"{day}T{rest // 60:02d}:{rest % 60:02d}:"
        return p

    def ts(self, t: int, s: _Session) -> str:
        """``t`` (µs since the epoch) as the session writes it: offset, with or without µs."""
        m, rem = divmod(t + s.off, MINUTE)
        p = self.minutes.get(m) or self.minute(m)
        # "1SSffffff": slicing a str() is much faster than two formatted fields.
        d = str(100_000_000 + rem)
        if s.micro:
            return f"{p}{d[1:3]}.{d[3:]}{s.suffix}"
        return f"{p}{d[1:3]}{s.suffix}"

    def utc(self, t: int) -> str:
        m, rem = divmod(t, MINUTE)
        p = self.minutes.get(m) or self.minute(m)
        d = str(100_000_000 + rem)
        return f"{p}{d[1:3]}.{d[3:]}+00:00"

    def time_of_day(self, f: float) -> int:
        h = bisect.bisect_right(self.hour_cum, f) - 1
        lo = self.hour_cum[h]
        hi = self.hour_cum[h + 1] if h < 23 else 1.0
        return int((h + (f - lo) / (hi - lo)) * HOUR)

    # ---- sessions ---------------------------------------------------------------------------

    def session(self, u: _User | None, c: _Course, mobile: bool = False) -> _Session:
        rnd = self.rnd
        s = _Session()
        s.u, s.c = u, c
        if u is None:  # anonymous visitor
            s.un = s.pad = '""'
            s.uid = '""'
            s.agent = _AGENTS[int(rnd() * len(_AGENTS))]
            s.ip = _ip(self.rng)
            s.lang = _LANGS[int(rnd() * len(_LANGS))]
        else:
            s.un, s.pad = u.json, u.pad
            # Some pipelines (and the mobile app) send the user id as a string.
            s.uid = f'"{u.uid}"' if mobile and rnd() < 0.5 else str(u.uid)
            s.agent = u.app[0] if mobile else u.agent
            s.ip = u.ip
            s.lang = u.lang
        s.sid = "" if mobile else _hex(self.rng)
        r = rnd()
        if r < 0.05:
            s.off, s.suffix = _OFFSETS[int(rnd() * len(_OFFSETS))]
        else:
            s.off, s.suffix = 0, "+00:00"
        # Mobile clients mostly send whole seconds; a few browser pipelines drop µs too.
        s.micro = rnd() < (0.1 if mobile else 0.96)
        s.new = rnd() < 0.45  # newer platform: ``name`` = edx.video.*, durations in payloads
        s.cid = f"{int(rnd() * 2e9)}.{1767000000 + int(rnd() * 1e6)}"
        s.obj = rnd() < 0.5  # server ``event``: object, or (as older LMSs log it) a string
        s.late = 0
        s.page = s.ref = c.home
        s.mctx = ""
        self.set_tail(s)
        return s

    def set_page(self, s: _Session, page: str) -> None:
        s.ref, s.page = s.page, page
        self.set_tail(s)

    def set_tail(self, s: _Session) -> None:
        c = s.c
        if s.new:
            # Newer platforms add label/nonInteraction and enterprise/analytics ids.
            label = f'"label": "{c.id}", '
            more = f'"enterprise_uuid": "", "client_id": "{s.cid}", '
            end = ', "nonInteraction": 1'
        else:
            label = more = end = ""
        s.tail = (
            f'"agent": "{s.agent}", {label}"host": "{LMS}", "session": "{s.sid}", '
            f'"referer": "{s.ref}", "context": {{"user_id": {s.uid}, "org_id": "{c.org}", '
            f'"course_id": "{c.id}", {more}"path": "/event"}}, "ip": "{s.ip}", '
            f'"page": "{s.page}"{end}'
        )

    # ---- line builders ----------------------------------------------------------------------

    def browser(self, s: _Session, t: int, et: str, payload: str, name: str | None = None) -> None:
        """A browser event; ``payload`` is plain JSON (or text) that becomes the string
        ``event``."""
        if not s.micro:
            t -= t % SEC
        nm = f'"name": "{name}", ' if name else ""
        # About 1% of a user's lines carry the username with stray whitespace.
        un = s.pad if self.rnd() < 0.01 else s.un
        line = (
            f'{{"username": {un}, "event_source": "browser", {nm}"accept_language": '
            f'"{s.lang}", "time": "{self.ts(t, s)}", "event": "{_esc(payload)}", {s.tail}, '
            f'"event_type": "{et}"}}'
        )
        self.push((t, line))

    def server(self, s: _Session, t: int, et: str, event: str, *, path: str | None = None,
               host: str = LMS, course: bool = True, name: str | None = None,
               extra: str = "", page: str = "null") -> None:  # fmt: skip
        """A server event; ``event`` is plain JSON, logged as an object or as a JSON string."""
        if not s.micro:
            t -= t % SEC
        c = s.c
        cid, org = (c.id, c.org) if course else ("", "")
        ev = event if s.obj or not event.startswith('{"POST"') else f'"{_esc(event)}"'
        nm = f'"name": "{name}", ' if name else ""
        un = s.pad if self.rnd() < 0.01 else s.un
        line = (
            f'{{"username": {un}, {nm}"event_type": "{et}", "ip": "{s.ip}", '
            f'"agent": "{s.agent}", "host": "{host}", "referer": "{s.ref}", '
            f'"accept_language": "{s.lang}", "event": {ev}, "event_source": "server", '
            f'"context": {{"course_user_tags": {{}}, "user_id": {s.uid}, "org_id": "{org}", '
            f'"course_id": "{cid}", {extra}"path": "{path or et}"}}, "time": "{self.ts(t, s)}", '
            f'"page": {page}}}'
        )
        self.push((t, line))

    def mobile(self, s: _Session, t: int, et: str, payload: str) -> None:
        """A mobile app event: ``edx.video.*`` name, object ``event``, maybe delivered late."""
        if not s.micro:
            t -= t % SEC
        arrival = t + s.late
        un = s.pad if self.rnd() < 0.01 else s.un
        c = s.c
        line = (
            f'{{"username": {un}, "event_source": "mobile", "name": "{et}", '
            f'"time": "{self.ts(t, s)}", "agent": "{s.agent}", "page": "{s.page}", '
            f'"host": "{LMS}", "session": "", "context": {{"component": "videoplayer", '
            f'"received_at": "{self.utc(arrival)}", "course_id": "{c.id}", '
            f'"path": "/segment/event", "user_id": {s.uid}, "org_id": "{c.org}", {s.mctx}}}, '
            f'"ip": "{s.ip}", "event": {payload}, "event_type": "{et}"}}'
        )
        self.push((arrival, line))

    # ---- browser video ----------------------------------------------------------------------

    def vid(self, v: _Video) -> str:
        r = self.rnd()
        return v.ids[int(r * 800)] if r < 0.005 else v.id

    def dur(self, v: _Video, s: _Session) -> str:
        if not (v.reports and s.new):
            return ""
        r = self.rnd()
        if r < 0.02:
            return ', "duration": null'
        if r < 0.035:
            return ', "duration": 0'
        return v.dur

    def vid_dur(self, v: _Video, s: _Session) -> tuple[str, str]:
        """``vid`` and ``dur`` from one draw (the hot path: play and pause)."""
        r = self.rnd()
        if r < 0.005:
            return v.ids[int(r * 800)], v.dur if v.reports and s.new else ""
        if not (v.reports and s.new) or r >= 0.04:
            return v.id, v.dur if v.reports and s.new else ""
        return v.id, ', "duration": null' if r < 0.025 else ', "duration": 0'

    def bvideo(self, s: _Session, t: int, et: str, v: _Video, x: float) -> None:
        """play/pause/stop/transcript browser event at offset ``x``."""
        key = "current_time" if s.new and et.endswith("transcript") else "currentTime"
        vid, dur = self.vid_dur(v, s)
        self.browser(
            s,
            t,
            et,
            f'{{"id": "{vid}", "{key}": {x:.7g}, "code": "{v.code}"{dur}}}',
            _NEW_NAMES.get(et) if s.new else None,
        )

    def load(self, s: _Session, t: int, v: _Video) -> None:
        # The player sends duration 0 on load: it is not known yet.
        self.browser(
            s, t, "load_video",
            f'{{"id": "{self.vid(v)}", "code": "{v.code}"{_DUR0 if s.new else ""}}}',
            "edx.video.loaded" if s.new else None,
        )  # fmt: skip

    def save_state(self, s: _Session, t: int, v: _Video, body: str) -> None:
        """The player's save_user_state POST that follows pauses, seeks and speed changes."""
        self.server(
            s,
            t,
            v.save,
            f'{{"POST": {{{body}}}, "GET": {{}}}}',
        )

    def watch(self, s: _Session, unit: _Unit, t: int) -> int:
        """Browser viewing on one unit page: its videos, interleaved when there are two."""
        rnd = self.rnd
        u = s.u
        videos = unit.videos
        positions = u.positions if u is not None else {}
        pos = []
        for v in videos:
            p = positions.get(v.key, 0.0)
            # Resume where they left off, unless they finished it (then restart).
            pos.append(p if p < v.duration - 5 and rnd() < 0.7 else 0.0)
        speed = u.speed if u is not None else 1
        i = 0
        for _ in range(3 if len(videos) > 1 else 1):
            v = videos[i]
            t, pos[i], status, speed = self.play_one(s, v, t, pos[i], speed, len(videos) > 1)
            positions[v.key] = pos[i]
            if status != "switch":
                break
            i = (i + 1) % len(videos)
            t += int((1 + rnd() * 8) * SEC)
        if u is not None:
            u.speed = speed
        return t

    def play_one(
        self, s: _Session, v: _Video, t: int, pos: float, speed: int, can_switch: bool
    ) -> tuple[int, float, str, int]:
        """One video from ``pos`` until the viewer ends, abandons or switches video."""
        rnd = self.rnd
        dur = v.duration
        self.bvideo(s, t, "play_video", v, pos)
        for _ in range(40):
            watch = 3 + rnd() * 150
            rate = _SPEED_VALUES[speed]
            if pos + watch >= dur:  # played to the end
                t = self.play_to_end(s, v, t + int((dur - pos) / rate * SEC))
                return t, dur, "end", speed
            t += int(watch / rate * SEC)
            pos += watch
            r = rnd()
            if r < 0.34:
                self.bvideo(s, t, "pause_video", v, pos)
                if rnd() < 0.6:
                    self.save_state(s, t + 150_000, v, f'"saved_video_position": ["{_hms(pos)}"]')
                r2 = rnd()
                if r2 < 0.2:
                    # Pause and play again in the same instant: identical time strings.
                    self.bvideo(s, t, "play_video", v, pos)
                elif r2 < 0.62:
                    t += int((2 + rnd() * 120) * SEC)
                    self.bvideo(s, t, "play_video", v, pos)
                elif r2 < 0.8 and can_switch:
                    return t, pos, "switch", speed
                else:
                    return t, pos, "paused", speed
            elif r < 0.47:
                new = max(0.0, min(dur - 1, pos + 10 + rnd() * 200))
                self.seek(s, t, v, pos, new)
                pos = new
                t, pos = self.after_seek(s, t, v, pos)
            elif r < 0.56:
                new = max(0.0, pos - 5 - rnd() * 120)
                self.seek(s, t, v, pos, new)
                pos = new
                t, pos = self.after_seek(s, t, v, pos)
            elif r < 0.61:
                new_speed = int(rnd() * len(_SPEEDS))
                if new_speed != speed:
                    self.browser(
                        s, t, "speed_change_video",
                        f'{{"id": "{self.vid(v)}", "current_time": {_num(pos)}, '
                        f'"old_speed": "{_SPEEDS[speed]}", "new_speed": "{_SPEEDS[new_speed]}", '
                        f'"code": "{v.code}"{self.dur(v, s)}}}',
                        "speed_change_video" if s.new else None,
                    )  # fmt: skip
                    self.save_state(s, t + 120_000, v, f'"speed": ["{_SPEEDS[new_speed]}"]')
                    speed = new_speed
            elif r < 0.66:
                et = ("show_transcript", "hide_transcript")[rnd() < 0.5]
                self.bvideo(s, t, et, v, pos)
            elif r < 0.69:
                et = ("video_show_cc_menu", "video_hide_cc_menu")[rnd() < 0.5]
                self.browser(
                    s, t, et,
                    f'{{"id": "{self.vid(v)}", "code": "{v.code}"{self.dur(v, s)}, '
                    f'"current_time": {_num(pos)}}}',
                    et if s.new else None,
                )  # fmt: skip
            elif r < 0.72:
                # Tab closed or laptop shut while playing: a play that is never closed.
                return t, pos, "abandoned", speed
            # else: kept watching; nothing is logged until the next action.
        self.bvideo(s, t, "pause_video", v, pos)
        return t, pos, "paused", speed

    def play_to_end(self, s: _Session, v: _Video, t: int) -> int:
        """The events of a video played to its end at ``t``; returns the time of the last."""
        rnd = self.rnd
        dur = v.duration
        self.bvideo(s, t, "pause_video", v, dur)
        # stop_video comes with (or a few ms after) the final pause.
        t += 0 if rnd() < 0.5 else int(rnd() * 30_000)
        self.bvideo(s, t, "stop_video", v, dur)
        if s.new:
            self.browser(
                s, t, "complete_video",
                f'{{"id": "{self.vid(v)}", "code": "{v.code}"{self.dur(v, s)}}}',
                "complete_video",
            )  # fmt: skip
        self.save_state(s, t + 200_000, v, f'"saved_video_position": ["{_hms(0)}"]')
        return t

    def seek(self, s: _Session, t: int, v: _Video, old: float, new: float) -> None:
        slide = self.rnd() < 0.7
        self.browser(
            s, t, "seek_video",
            f'{{"id": "{self.vid(v)}", "old_time": {_num(old)}, '
            f'"new_time": {int(new) if slide else _num(new)}, '
            f'"type": "{"onSlideSeek" if slide else "onSkipSeek"}", "code": "{v.code}"'
            f"{self.dur(v, s)}}}",
            _NEW_NAMES["seek_video"] if s.new else None,
        )  # fmt: skip

    def after_seek(self, s: _Session, t: int, v: _Video, pos: float) -> tuple[int, float]:
        """The player usually logs a play right after a seek; sometimes it just keeps going."""
        if self.rnd() < 0.3:
            self.save_state(s, t + 90_000, v, f'"saved_video_position": ["{_hms(pos)}"]')
        if self.rnd() < 0.7:
            t += int((0.2 + self.rnd()) * SEC)
            self.bvideo(s, t, "play_video", v, pos)
        return t, pos

    # ---- mobile video -----------------------------------------------------------------------

    def mnum(self, x: float) -> str:
        # The app sometimes sends numbers as numeric strings.
        return f'"{_num(x)}"' if self.rnd() < 0.1 else _num(x)

    def mcur(self, x: float) -> str:
        return f'"currentTime": {self.mnum(x)}'

    def mpay(self, v: _Video, body: str) -> str:
        dur = v.dur if v.reports and self.rnd() < 0.8 else ""
        return f'{{"code": "mobile", "id": "{self.vid(v)}", {body}{dur}}}'

    def watch_mobile(self, s: _Session, v: _Video, t: int) -> int:
        rnd = self.rnd
        u = s.u
        dur = v.duration
        pos = u.positions.get(v.key, 0.0)
        if pos >= dur - 5 or rnd() < 0.3:
            pos = 0.0
        self.mobile(s, t, "edx.video.loaded", self.mpay(v, f'"currentTime": {self.mnum(0.0)}'))
        t += int((1 + rnd() * 5) * SEC)
        self.mobile(s, t, "edx.video.played", self.mpay(v, f'"currentTime": {self.mnum(pos)}'))
        for _ in range(30):
            watch = 5 + rnd() * 180
            if pos + watch >= dur:
                t += int((dur - pos) * SEC)
                pos = dur
                self.mobile(s, t, "edx.video.stopped", self.mpay(v, f'"currentTime": {_num(dur)}'))
                break
            t += int(watch * SEC)
            pos += watch
            r = rnd()
            if r < 0.45:
                self.mobile(s, t, "edx.video.paused", self.mpay(v, self.mcur(pos)))
                if rnd() < 0.35:
                    break
                t += int((2 + rnd() * 90) * SEC)
                self.mobile(s, t, "edx.video.played", self.mpay(v, self.mcur(pos)))
            elif r < 0.7:
                skip = rnd() < 0.6
                new = max(0.0, pos - 30) if skip else min(dur - 1, pos + rnd() * 300)
                # The app's skip-back event may leave out old_time.
                old = f'"old_time": {self.mnum(pos)}, ' if not skip or rnd() < 0.5 else ""
                extra = ', "requested_skip_interval": -30' if skip else ""
                self.mobile(
                    s, t, "edx.video.position.changed",
                    self.mpay(v, f'{old}"new_time": {self.mnum(new)}, '
                                 f'"type": "{"onSkipSeek" if skip else "onSlideSeek"}"{extra}'),
                )  # fmt: skip
                pos = new
            elif r < 0.78:
                self.mobile(
                    s, t, "edx.video.transcript.shown",
                    self.mpay(v, f'"current_time": {self.mnum(pos)}, "language": "en"'),
                )  # fmt: skip
            elif r < 0.82:
                break  # app backgrounded while playing: never closed
        u.positions[v.key] = pos
        return t

    # ---- non-video traffic ------------------------------------------------------------------

    def page_view(self, s: _Session, t: int, path: str, get: str = "") -> None:
        self.server(s, t, path, f'{{"POST": {{}}, "GET": {{{get}}}}}')

    def problem(self, s: _Session, unit: _Unit, t: int) -> int:
        rnd = self.rnd
        c = s.c
        hx = unit.problem
        usage = c.usage_key("problem", hx)
        choice = int(rnd() * 4)
        correct = choice == 2
        self.browser(s, t, "problem_check", f"input_{hx}_2_1=choice_{choice}",
                     "problem_check" if s.new else None)  # fmt: skip
        t += int((0.2 + rnd()) * SEC)
        cm = "correct" if correct else "incorrect"
        event = (
            f'{{"submission": {{"{hx}_2_1": {{"input_type": "choicegroup", "question": '
            f'"Which of the following statements is true?", "response_type": '
            f'"multiplechoiceresponse", "answer": "Option {choice + 1}", "variant": "", '
            f'"correct": {"true" if correct else "false"}}}}}, "success": "{cm}", '
            f'"grade": {int(correct)}, "correct_map": {{"{hx}_2_1": {{"hint": "", "hintmode": '
            f'null, "correctness": "{cm}", "npoints": null, "answervariable": null, "msg": "", '
            f'"queuestate": null}}}}, "state": {{"student_answers": {{}}, "seed": 1, "done": '
            f'null, "correct_map": {{}}, "input_state": {{"{hx}_2_1": {{}}}}}}, "answers": '
            f'{{"{hx}_2_1": "choice_{choice}"}}, "attempts": {1 + int(rnd() * 3)}, '
            f'"max_grade": 1, "problem_id": "{usage}"}}'
        )
        self.server(
            s, t, "problem_check", event,
            path=f"/courses/{c.id}/xblock/{c.usage_path('problem', hx)}/handler/"
            "xmodule_handler/problem_check",
            extra=f'"asides": {{}}, "module": {{"usage_key": "{usage}", "display_name": '
            f'"Multiple Choice"}}, ',
            page='"x_module"',
        )  # fmt: skip
        if rnd() < 0.15:
            # problem_graded carries a JSON list: [answers, rendered HTML].
            t += int(0.5 * SEC)
            html = (
                f'<div class=\\"problem\\"><p>Which of the following statements is true?</p>'
                f'<span class=\\"status {cm}\\">{cm}</span></div>'
            )
            tg = t if s.micro else t - t % SEC
            line = (
                f'{{"username": {s.un}, "event_source": "browser", "name": "problem_graded", '
                f'"accept_language": "{s.lang}", "time": "{self.ts(tg, s)}", '
                f'{s.tail}, "event": ["input_{hx}_2_1=choice_{choice}", "{html}"], '
                f'"event_type": "problem_graded"}}'
            )
            self.push((tg, line))
        return t

    def unit_visit(self, s: _Session, unit: _Unit, t: int, video: bool) -> int:
        rnd = self.rnd
        c = s.c
        # The learning MFE does not serve old-style (Org/Num/Run) courses.
        self.set_page(s, unit.mfe if s.new and not c.legacy else unit.page)
        self.page_view(s, t, unit.path, unit.get)
        # The unit's content is fetched as its own request (the learning MFE's iframe).
        self.server(s, t + int((0.1 + rnd()) * SEC), *unit.xblock)
        t += int((0.5 + rnd() * 3) * SEC)
        if rnd() < 0.7:
            self.browser(s, t, "seq_goto", unit.seq_goto, "edx.ui.lms.sequence.tab_selected")
            t += int((0.1 + rnd()) * SEC)
            self.server(s, t, *unit.goto)
        if unit.videos:
            t += int((0.5 + rnd() * 2) * SEC)
            # The page loads all its players at once: same-time load_video lines.
            for v in unit.videos:
                self.load(s, t, v)
            if rnd() < 0.5:
                self.server(s, t + 300_000, *unit.videos[0].transcript)
            if video:
                t = self.watch(s, unit, t + int((2 + rnd() * 20) * SEC))
        if unit.problem and rnd() < 0.8:
            # One to three attempts.
            for _ in range(1 + int(rnd() * rnd() * 3)):
                t += int((20 + rnd() * 200) * SEC)
                t = self.problem(s, unit, t)
        if rnd() < 0.3:
            t += int((1 + rnd() * 30) * SEC)
            nxt = c.units[(unit.i + 1) % len(c.units)]
            self.browser(
                s, t, "edx.ui.lms.link_clicked",
                f'{{"target_url": "{nxt.page}", "current_url": "{unit.page}"}}',
                "edx.ui.lms.link_clicked",
            )  # fmt: skip
        return t + int((5 + rnd() * 60) * SEC)

    # ---- session kinds ----------------------------------------------------------------------

    def learner(self, u: _User, c: _Course, t: int, force_video: bool = False) -> int:
        rnd = self.rnd
        s = self.session(u, c)
        if rnd() < 0.6:
            s.page = f"https://{LMS}/dashboard"
            self.server(s, t, "/dashboard", '{"POST": {}, "GET": {}}', course=False)
            t += int((1 + rnd() * 10) * SEC)
        if (u.uid, c.i) not in self.enrolled:
            self.enrolled.add((u.uid, c.i))
            self.server(
                s, t, "edx.course.enrollment.activated",
                f'{{"course_id": "{c.id}", "user_id": {u.uid}, "mode": "audit"}}',
                path="/change_enrollment", name="edx.course.enrollment.activated",
            )  # fmt: skip
            t += int((1 + rnd() * 5) * SEC)
        self.set_page(s, c.home)
        self.page_view(s, t, f"/courses/{c.id}/course/")
        if s.new:
            self.page_view(s, t + int((0.2 + rnd()) * SEC), f"/api/course_home/outline/{c.id}")
        t += int((2 + rnd() * 20) * SEC)
        if rnd() < 0.4:
            unit = c.units[u.progress.get(c.i, 0) % len(c.units)]
            self.browser(
                s, t, "edx.ui.lms.outline.selected",
                f'{{"target_name": "Unit {unit.i + 1}", "target_url": "{unit.page}", '
                f'"widget_placement": "accordion", "current_url": "{c.home}"}}',
                "edx.ui.lms.outline.selected",
            )  # fmt: skip
            t += int((0.5 + rnd() * 2) * SEC)
        # A quarter of the sessions only browse: progress, dates, the forum.
        browse = not force_video and rnd() < 0.25
        n_units = 0 if browse else 1 + min(int(rnd() * rnd() * 9), 7)
        at = u.progress.get(c.i, 0)
        if force_video:
            at = c.video_units[int(rnd() * len(c.video_units))].i
        for k in range(n_units):
            if k and rnd() < 0.15:
                at = int(rnd() * len(c.units))  # jumps around the outline
            unit = c.units[at % len(c.units)]
            t = self.unit_visit(s, unit, t, video=(force_video and k == 0) or rnd() < 0.8)
            at += 1
        u.progress[c.i] = at
        if rnd() < (0.6 if browse else 0.2):
            self.set_page(s, f"https://{LMS}/courses/{c.id}/progress")
            self.page_view(s, t, f"/courses/{c.id}/progress")
            t += int((5 + rnd() * 40) * SEC)
        if browse and rnd() < 0.3:
            self.set_page(s, f"https://{LMS}/courses/{c.id}/dates")
            self.page_view(s, t, f"/courses/{c.id}/dates")
            t += int((5 + rnd() * 40) * SEC)
        if rnd() < (0.7 if browse else 0.15):
            t = self.forum(s, t)
        self.browser(s, t, "page_close", "{}", "page_close" if s.new else None)
        return t

    def forum(self, s: _Session, t: int) -> int:
        """Discussion forum: the topic list, a few threads, now and then a reply."""
        rnd = self.rnd
        c = s.c
        self.set_page(s, f"https://{LMS}/courses/{c.id}/discussion/forum/")
        self.page_view(s, t, f"/courses/{c.id}/discussion/forum/")
        for _ in range(1 + int(rnd() * 3)):
            t += int((3 + rnd() * 20) * SEC)
            thread = f"{self.rng.getrandbits(96):024x}"
            url = f"/courses/{c.id}/discussion/forum/course/threads/{thread}"
            self.set_page(s, f"https://{LMS}{url}")
            self.server(
                s, t, "edx.forum.thread.viewed",
                f'{{"id": "{thread}", "commentable_id": "course", "title": "Question about '
                f'week {1 + int(rnd() * 6)}", "title_truncated": false, "url": '
                f'"https://{LMS}{url}", "user_forums_roles": ["Student"], '
                f'"user_course_roles": []}}',
                path=url, name="edx.forum.thread.viewed",
            )  # fmt: skip
            t += int((10 + rnd() * 120) * SEC)
            if rnd() < 0.15:
                self.server(
                    s, t, "edx.forum.response.created",
                    f'{{"commentable_id": "course", "discussion": {{"id": "{thread}"}}, '
                    f'"body": "Thanks, that helped with the exercise.", "truncated": false, '
                    f'"options": {{"followed": false}}, "url": "https://{LMS}{url}", '
                    f'"user_forums_roles": ["Student"], "user_course_roles": []}}',
                    path=f"/courses/{c.id}/discussion/threads/{thread}/reply",
                    name="edx.forum.response.created",
                )  # fmt: skip
                t += int((5 + rnd() * 30) * SEC)
        return t

    def learner_mobile(self, u: _User, c: _Course, t: int) -> int:
        rnd = self.rnd
        s = self.session(u, c, mobile=True)
        app = u.app
        s.mctx = (
            f'"application": {{"name": "{app[1]}", "version": "{app[2]}"}}, "client": '
            f'{{"network": {{"wifi": {"true" if rnd() < 0.6 else "false"}, "carrier": "", '
            f'"cellular": false, "bluetooth": false}}, "locale": "en-US", "device": {{"type": '
            f'"{app[3]}", "model": "generic", "manufacturer": "unknown"}}, "os": {{"name": '
            f'"{app[4]}", "version": "{app[5]}"}}, "library": {{"name": "analytics-{app[3]}", '
            f'"version": "4.10.0"}}}}'
        )
        r = rnd()
        if r < 0.35:
            # Watched offline or synced later: logged when it arrives, minutes to 2 days late.
            if r < 0.2:
                s.late = int((2 + rnd() * 120) * 60 * SEC)
            elif r < 0.31:
                s.late = int((2 + rnd() * 20) * HOUR)
            else:
                s.late = int((1 + rnd()) * DAY)
        self.server(s, t, f"/api/mobile/v0.5/users/{u.name}/course_enrollments/",
                    '{"POST": {}, "GET": {}}', course=False)  # fmt: skip
        t += int((1 + rnd() * 4) * SEC)
        self.server(
            s, t, "/api/courses/v1/blocks/",
            f'{{"POST": {{}}, "GET": {{"course_id": ["{c.id}"], "depth": ["all"], '
            f'"student_view_data": ["video,discussion"]}}}}',
        )  # fmt: skip
        for _ in range(1 + int(rnd() * rnd() * 4)):
            unit = c.video_units[int(rnd() * len(c.video_units))]
            s.page = f"https://{LMS}{unit.path}"
            t = self.watch_mobile(s, unit.videos[0], t + int((3 + rnd() * 20) * SEC))
            t += int((5 + rnd() * 60) * SEC)
        return t

    def team_session(self, u: _User, t: int, watch: bool = False) -> int:
        rnd = self.rnd
        c = u.courses[0]
        s = self.session(u, c)
        # Always starts with a course-scoped instructor event, so any window with their
        # videos also shows them as course team.
        self.set_page(s, f"https://{LMS}/courses/{c.id}/instructor")
        self.page_view(s, t, f"/courses/{c.id}/instructor")
        t += int((2 + rnd() * 20) * SEC)
        api = ("list_forum_members", "get_students_features", "list_report_downloads")
        name = api[int(rnd() * len(api))]
        get = '"rolename": ["Community TA"]' if name == "list_forum_members" else ""
        self.page_view(s, t, f"/courses/{c.id}/instructor/api/{name}", get)
        t += int((2 + rnd() * 20) * SEC)
        if rnd() < 0.5:
            self.browser(
                s, t, "edx.instructor.report.downloaded",
                f'{{"report_url": "https://{LMS}/grades/{c.id}/report_{int(rnd() * 1e6)}.csv"}}',
                "edx.instructor.report.downloaded",
            )  # fmt: skip
            t += int((2 + rnd() * 20) * SEC)
        if rnd() < 0.6:
            # Studio requests carry no course id (SPEC §2).
            v = c.videos[int(rnd() * len(c.videos))]
            block = c.usage_key("video", v.hex)
            s.ref = f"https://{STUDIO}/container/{c.usage_key('vertical', _hex(self.rng))}"
            self.server(s, t, f"/xblock/{block}/studio_view",
                        f'{{"POST": {{}}, "GET": {{"_": ["{t // 1000}"]}}}}',
                        host=STUDIO, course=False)  # fmt: skip
            t += int((10 + rnd() * 120) * SEC)
            self.server(
                s, t, f"/xblock/{block}/handler/submit_studio_edits",
                f'{{"POST": {{"display_name": ["Lecture {1 + int(rnd() * 9)}"], '
                f'"youtube_id_1_0": ["{v.code}"]}}, "GET": {{}}}}',
                host=STUDIO, course=False,
            )  # fmt: skip
            t += int((5 + rnd() * 30) * SEC)
        if watch or rnd() < 0.7:
            unit = c.video_units[int(rnd() * len(c.video_units))]
            t = self.unit_visit(s, unit, t, video=True)
        return t

    def anonymous(self, c: _Course, t: int) -> int:
        rnd = self.rnd
        s = self.session(None, c)
        if rnd() < 0.5:
            s.page = f"https://{LMS}/courses"
            self.page_view(s, t, "/courses")
            t += int((3 + rnd() * 30) * SEC)
        self.set_page(s, f"https://{LMS}/courses/{c.id}/about")
        self.page_view(s, t, f"/courses/{c.id}/about")
        t += int((2 + rnd() * 10) * SEC)
        v = c.intro
        self.load(s, t, v)
        if rnd() < 0.7:
            t += int((1 + rnd() * 10) * SEC)
            t, _, _, _ = self.play_one(s, v, t, 0.0, 1, False)
        t += int((2 + rnd() * 30) * SEC)
        self.browser(s, t, "page_close", "{}")
        return t

    # ---- main loop --------------------------------------------------------------------------

    def pick_learner(self, start: int) -> _User:
        rnd = self.rnd
        total = self.cum[-1]
        u = self.learners[bisect.bisect_left(self.cum, rnd() * total)]
        # Avoid overlapping sessions of one user (their stream stays in time order); when
        # everyone is busy (tiny user counts, huge targets) overlap is allowed.
        for _ in range(3):
            if u.busy <= start:
                break
            u = self.learners[bisect.bisect_left(self.cum, rnd() * total)]
        return u

    def run_session(self, kind: str, start: int, who: _User | None = None) -> None:
        rnd = self.rnd
        if kind == "anon":
            c = self.courses[int(rnd() * len(self.courses))]
            self.anonymous(c, start)
        elif kind == "team":
            u = who
            for _ in range(3):
                if u is not None and u.busy <= start:
                    break
                u = self.team[int(rnd() * len(self.team))]
            u.busy = self.team_session(u, start, watch=who is not None)
        elif kind == "mobile":
            u = who or self.pick_learner(start)
            c = u.courses[int(rnd() * len(u.courses))]
            u.busy = self.learner_mobile(u, c, start)
        else:
            u = who or self.pick_learner(start)
            c = u.courses[int(rnd() * len(u.courses))]
            if who is None and rnd() < u.mobile_p:
                u.busy = self.learner_mobile(u, c, start)
            else:
                u.busy = self.learner(u, c, start, force_video=who is not None)

    def run(self, progress: Callable[[int, int], None] | None) -> None:
        rnd = self.rnd
        w = self.w
        days = self.days
        # So that tiny runs still show every feature: staff and course team watch videos,
        # an anonymous visitor plays the intro, and one app user watches on day 0.
        forced: list[tuple[str, _User | None]] = [("learner", u) for u in self.staff]
        forced += [("team", u) for u in self.team]
        forced.append(("anon", None))
        app_users = [u for u in self.learners if u.mobile_p > 0] or self.learners[-1:]
        if app_users:
            forced.append(("mobile", app_users[0]))
        forced.reverse()
        last = self.day0 * DAY
        flushed = -1
        for d in range(days):
            lo = self.target * d // days
            hi = self.target * (d + 1) // days
            span = max(1, hi - lo)
            day_start = (self.day0 + d) * DAY
            while w.count < hi or (d == 0 and forced):
                f = min(max((w.count - lo) / span, 0.0), 0.9999)
                start = max(last, day_start + self.time_of_day(f) + int(rnd() * 60 * SEC))
                last = start
                if start // HOUR != flushed:
                    flushed = start // HOUR
                    w.flush(flushed * HOUR)
                    if progress is not None:
                        progress(w.written, max(self.target, w.count))
                if d == 0 and forced:
                    kind, who = forced.pop()
                    self.run_session(kind, start, who)
                    continue
                r = rnd()
                if r < 0.035:
                    self.run_session("anon", start)
                elif r < 0.06:
                    self.run_session("team", start)
                else:
                    self.run_session("learner", start)
        w.finish()
        if progress is not None:
            progress(w.written, w.written)


def _num(x: float) -> str:
    """An offset as a JSON number like the players write it: 12.5, 630.4373, 0 (never a
    trailing ".0"; ``g`` formatting is also much faster than ``repr(round(x, n))``)."""
    return f"{x:.7g}"


def _ip(rng: random.Random) -> str:
    a, b, c, d = rng.randint(11, 223), rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254)
    return f"{a}.{b}.{c}.{d}"


def _hms(x: float) -> str:
    s = int(x)
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def generate(
    out_dir: str | Path,
    users: int = 200,
    courses: int = 3,
    days: int = 7,
    seed: int = 0,
    start: str = "2026-01-05",
    videos_per_course: int = 10,
    lines: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> GenerateResult:
    """Write ``days`` daily logs ``tracking.log-YYYYMMDD.gz`` (from ``start``) and ``staff.txt``
    into ``out_dir``; same arguments, same bytes.

    ``users`` learners (plus 2-3 course-team members per course) in ``courses`` courses of
    ``videos_per_course`` videos each. Without ``lines``, volume follows users, courses and
    days (about ``users * days * (25 + 10 * min(courses, 5))`` lines); with it, the total
    lands within one session (~100 lines) of ``lines``, spread evenly over the days, but never
    below the day-0 sessions that show every feature (a few hundred lines). Lines are in
    arrival order: late mobile events sit in the file of the day they arrived.
    ``progress(lines_written, lines_expected)`` is called as data is written. Files of the same
    names are replaced; nothing else in ``out_dir`` is touched.
    """
    if users < 1 or courses < 1 or days < 1 or videos_per_course < 1:
        raise ValueError("users, courses, days and videos_per_course must be >= 1")
    if lines is not None and lines < 1:
        raise ValueError("lines must be >= 1")
    try:
        dt.date.fromisoformat(start)
    except (TypeError, ValueError):
        raise ValueError(f"start: expected a date YYYY-MM-DD, got {start!r}") from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    g = _Generator(out, users, courses, days, seed, start, videos_per_course, lines)
    try:
        g.run(progress)
    except BaseException:
        g.w.abort()
        raise
    staff_file = out / "staff.txt"
    staff = [u.name for u in g.staff]
    staff_file.write_text("".join(f"{n}\n" for n in staff))
    return GenerateResult(
        files=list(g.w.paths),
        lines=g.w.written,
        staff_file=staff_file,
        team_users=sorted({u.name for u in g.team} | set(staff)),
        staff_users=staff,
    )
