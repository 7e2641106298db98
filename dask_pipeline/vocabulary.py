"""Event names (SPEC §4): legacy video names, their other names, the course-team pattern."""

from __future__ import annotations

PLAY = "play_video"
PAUSE = "pause_video"
STOP = "stop_video"
SEEK = "seek_video"
LOAD = "load_video"
SPEED = "speed_change_video"

#: Other names of a video event -> its legacy name.
ALIASES: dict[str, str] = {
    "edx.video.played": PLAY,
    "edx.video.paused": PAUSE,
    "edx.video.stopped": STOP,
    "edx.video.position.changed": SEEK,
    "edx.video.loaded": LOAD,
    "edx.bi.video.speed.changed": SPEED,
    "edx.video.transcript.shown": "show_transcript",
    "edx.video.transcript.hidden": "hide_transcript",
    "edx.video.completed": "complete_video",
}

CAPTIONS = frozenset(
    {
        "video_show_cc_menu",
        "video_hide_cc_menu",
        "edx.video.closed_captions.shown",
        "edx.video.closed_captions.hidden",
    }
)

#: Every video event name after mapping through ALIASES.
VIDEO_EVENTS = frozenset(
    {PLAY, PAUSE, STOP, SEEK, LOAD, SPEED, "show_transcript", "hide_transcript", "complete_video"}
    | CAPTIONS
)

#: The offset fields a video event must carry to be usable (SPEC §2). Events not listed need
#: none (load, transcripts, captions, complete).
REQUIRED_NUMBERS: dict[str, tuple[str, ...]] = {
    PLAY: ("current_time",),
    PAUSE: ("current_time",),
    STOP: ("current_time",),
    SEEK: ("old_time", "new_time"),
    SPEED: ("current_time", "old_speed", "new_speed"),
}

#: Substrings of event_type that mark a course-team user (SPEC §4).
TEAM_MARKERS = ("studio", "instructor")


def legacy_name(event_type: object, name: object) -> str | None:
    """SPEC §4 event type: event_type mapped to its legacy name; when event_type is not a
    string (the eventtracking layout has none), the top-level ``name`` mapped the same way."""
    if type(event_type) is str:
        return ALIASES.get(event_type, event_type)
    if type(name) is str:
        return ALIASES.get(name, name)
    return None


def is_team_event(event_type: str) -> bool:
    """True when an event of this type marks its user as course team."""
    return "studio" in event_type or "instructor" in event_type
