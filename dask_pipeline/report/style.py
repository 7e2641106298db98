"""The page's colours and style sheet, one source for every part."""

from __future__ import annotations

# Colours: viewers in blue, segments in orange, everywhere.
VIEWERS_COLOR = "#3b7dd8"
VIEWERS_FILL = "#a9c8f0"
SEGMENTS_COLOR = "#e8702a"
MARK_COLOR = "#1b5e20"
NOTE_COLOR = "#8a5300"

CSS = """
:host { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; }
h1 { font-size: 24px; margin: 4px 0 2px 0; }
h2 { font-size: 18px; margin: 14px 0 2px 0; }
p { margin: 2px 0; color: #555; font-size: 13px; }
.muted { color: #666; font-size: 12px; }
table.sum { border-collapse: collapse; font-size: 13px; width: 100%; }
table.sum th { text-align: left; font-weight: 600; color: #444; padding: 3px 8px 3px 0;
  vertical-align: top; white-space: nowrap; }
table.sum td { text-align: right; padding: 3px 0; font-variant-numeric: tabular-nums; }
.vid { font-size: 12px; color: #444; word-break: break-all; margin: 0 0 6px 0; }
h2.v { font-size: 16px; word-break: break-all; margin-top: 4px; }
.note { font-size: 12px; color: #8a5300; margin-top: 6px; }
table.health { border-collapse: collapse; font-size: 13px; }
table.health th { text-align: left; font-weight: 600; color: #444; padding: 2px 18px 2px 0; }
table.health td { padding: 2px 18px 2px 0; font-variant-numeric: tabular-nums; }
.heading { font-size: 17px; font-weight: 600; margin: 4px 0 0 0; word-break: break-word; }
.place { font-size: 13px; color: #555; margin: 2px 0 0 0; }
.search-note { font-size: 12px; color: #8a5300; min-height: 16px; }
"""
