"""The page's one script: every control runs it (one copy of the code in the page).

The page state is the video select's value (a row of the ``videos`` source): every other
control just sets it. Its arguments are the models of :mod:`.document` and what the Python
side computed (``bin_seconds``, the coverage bins, the texts of the empty plots); it
retypes no formula of the tables: each video's end bin comes as data (``end_bin``).
"""

SCRIPT = r"""
const NB = coverage_bins
function cols(src) {
  const d = src.data
  return d instanceof Map ? Object.fromEntries(d) : d
}
const VD = cols(videos)
const V = (name, k) => VD[name][k]
function take(src, lo, hi) {
  const out = {}
  for (const [name, a] of Object.entries(cols(src))) {
    const s = new Array(hi - lo)
    for (let i = lo; i < hi; i++) s[i - lo] = a[i]
    out[name] = s
  }
  return out
}
const ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ESC[c])
const int = (x) => Number(x).toLocaleString("en-US")
const pct = (x) => (Number.isFinite(x) ? (100 * x).toFixed(1) + "%" : "n/a")
function clock(s) {
  if (!Number.isFinite(s)) return "\u2014"
  s = Math.round(s)
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = s % 60
  const p2 = (x) => String(x).padStart(2, "0")
  return h ? `${h}:${p2(m)}:${p2(ss)}` : `${m}:${p2(ss)}`
}
const note = (text, key) => `<div class="note"${key ? ` data-k="${key}"` : ""}>${text}</div>`

function heading_html(k) {
  const place = V("place", k)
  let html = `<div class="heading" data-k="label">${esc(V("label", k))}</div>`
  if (place) html += `<div class="place" data-k="place">${esc(place)}</div>`
  return html
}

function summary_html(k) {
  const eb = V("end_bin", k)
  const at_end = "Users at end" + (eb >= 0 ? ` (${clock(eb * bin_seconds)})` : "")
  const completed = `${int(V("completed_viewers", k))} (${pct(V("completion", k))})`
  const rows = [
    ["Duration", esc(V("duration_text", k)), "duration"],
    ["Viewers", int(V("viewers", k)), "viewers"],
    ["Segments", int(V("segments", k)), "segments"],
    ["Hours watched", V("watched_hours", k).toFixed(2), "watched_hours"],
    ["Mean coverage", pct(V("mean_coverage", k)), "mean_coverage"],
    ["Completed", completed, "completed_viewers"],
    ["Users at start", int(V("users_at_start", k)), "users_at_start"],
    [at_end, int(V("users_at_end", k)), "users_at_end"],
  ]
  const course = esc(V("course_id", k))
  let html = `<div class="vid">Course: <span data-k="course_id">${course}</span></div>`
  html += `<div class="vid">Video id: <span data-k="video_id">${esc(V("video_id", k))}</span></div>`
  html += '<table class="sum">'
  for (const [h, v, key] of rows) html += `<tr><th>${h}</th><td data-k="${key}">${v}</td></tr>`
  html += "</table>"
  if (V("viewers", k) === 0) html += note("Nobody watched this video in the run's window.")
  const unknown = V("coverage_unknown", k)
  if (unknown > 0) {
    const text = `${int(unknown)} viewer(s) are not in the coverage chart: duration unknown.`
    html += note(text, "coverage_unknown")
  }
  if (V("duration_inferred", k)) {
    html += note("The player never reported this video's duration: it is inferred from where "
      + "viewing stops.")
  }
  return html
}

// what an empty plot says instead (retention, daily, coverage); "" when it has data
function empty_notes(viewers, bins, days, known) {
  const none = notes.none
  return [
    bins ? "" : (viewers ? notes.no_bins : none),
    days ? "" : none,
    known ? "" : (viewers ? notes.no_coverage : none),
  ]
}

// Shows video k; the page's first video comes with its data (see page.first_video), so that
// the first render needs no script: then only the texts are filled in.
function show(k, data = true) {
  heading.text = heading_html(k)
  summary.text = summary_html(k)
  const sel = videos.selected.indices
  if (sel.length !== 1 || sel[0] !== k) videos.selected.indices = [k]
  if (!data) return
  const t = take(timeline_all, V("tl_lo", k), V("tl_hi", k))
  t.center = t.start_seconds.map((s, i) => (s + t.end_seconds[i]) / 2)
  timeline.data = t
  daily.data = take(daily_all, V("dy_lo", k), V("dy_hi", k))
  const c = take(coverage_all, k * NB, (k + 1) * NB)
  coverage.data = {lo: coverage_lo, hi: coverage_hi, count: c.count}

  // the users-at-start and users-at-end marks, at the centre of their bins; the end label
  // goes left of its mark so that it stays inside the plot
  const m = {x: [], y: [], text: [], align: [], dx: []}
  const add = (x, y, text, align, dx) => {
    m.x.push(x); m.y.push(y); m.text.push(text); m.align.push(align); m.dx.push(dx)
  }
  const eb = V("end_bin", k)
  if (t.start_seconds.length > 0) {
    add(t.center[0], V("users_at_start", k), `start: ${int(V("users_at_start", k))}`, "left", 6)
    if (eb >= 0) {
      add((eb + 0.5) * bin_seconds, V("users_at_end", k), `end: ${int(V("users_at_end", k))}`,
        "right", -6)
    }
  }
  marks.data = m
  const d = V("duration", k)
  end_span.location = Number.isFinite(d) ? d : null
  end_span.visible = Number.isFinite(d)
  const empty = empty_notes(V("viewers", k), t.start_seconds.length, V("dy_hi", k) - V("dy_lo", k),
    c.count.reduce((a, b) => a + b, 0))
  for (const [i, label] of empty_labels.entries()) {
    label.text = empty[i]
    label.visible = empty[i] !== ""
  }
  for (const p of plots) {
    try { p.reset.emit() } catch (e) { /* no reset signal: keep the zoom */ }
  }
}

const in_outline = (k) => Number.isFinite(VD.position[k])
// a course's videos for the select, in page order; grouped by section when it has an outline
function options_of(c) {
  const flat = [], groups = new Map()
  VD.course_id.forEach((ck, k) => {
    if (ck !== c) return
    const opt = [String(k), VD.option_label[k]]
    flat.push(opt)
    const g = in_outline(k) ? (VD.section[k] || no_section) : not_in_outline
    if (!groups.has(g)) groups.set(g, [])
    groups.get(g).push(opt)
  })
  const outlined = VD.course_id.some((ck, k) => ck === c && in_outline(k))
  return outlined ? groups : flat
}

function set_course(c) {
  if (course_select.value !== c) {
    course_select.value = c  // fires the "course" callback, which comes back here
    return
  }
  const opts = options_of(c)
  const outlined = opts instanceof Map
  video_select.options = opts
  video_select.title = outlined ? select_titles.outline : select_titles.viewers
  course_filter.group = c
  if (through_note) through_note.visible = !outlined
  if (V("course_id", Number(video_select.value)) !== c) {
    const first = outlined ? [...opts.values()][0][0] : opts[0]
    video_select.value = first[0]
  }
}

// which control fired; the page's document_ready event (anything else) shows the first video
const what = cb_obj === course_select ? "course"
  : cb_obj === video_select ? "video"
  : cb_obj === videos.selected ? "row"
  : cb_obj === overview.selected ? "course_row"
  : cb_obj === search ? "search" : "ready"
if (what === "ready") {
  show(Number(video_select.value), false)
} else if (what === "video") {
  show(Number(video_select.value))
} else if (what === "course") {
  set_course(course_select.value)
} else if (what === "row") {
  const sel = videos.selected.indices
  if (sel.length === 1 && String(sel[0]) !== video_select.value) {
    set_course(V("course_id", sel[0]))
    video_select.value = String(sel[0])
  }
} else if (what === "course_row") {
  const sel = overview.selected.indices
  if (sel.length === 1) set_course(cols(overview).course_id[sel[0]])
} else if (what === "search") {
  const k = VD.search_label.indexOf(search.value)
  if (k >= 0) {
    set_course(V("course_id", k))
    video_select.value = String(k)
  }
}
"""

# Typing in the search box: say when no video matches (the box's own list just stays empty).
SEARCH_FEEDBACK = r"""
const q = String(search.value_input || "").trim().toLowerCase()
const labels = search.completions
const hit = q.length < search.min_characters || labels.some((s) => s.toLowerCase().includes(q))
const ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ESC[c])
search_note.text = hit ? "" : `<div class="search-note" data-k="search_note">No video matches `
  + `\u201c${esc(q)}\u201d in any course.</div>`
"""
