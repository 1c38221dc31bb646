"""``blechrs_plots/index.html``: one static page (no script, no font or file from elsewhere: it
opens from the file system) to decide from: the units with their quality flags (ISI, drift,
similarity), a thumbnail per electrode with links to its solution pictures, each unit's picture
and the quality-check files. It shows only what it is given; what is given is current (the
caller leaves out pictures and QA results that describe another unit than the store's)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Sequence

from blechrs.io.paths import AUTOSORT_REJECTED_NAME

STYLE = """
body{font-family:sans-serif;margin:1em 1.5em;color:#222}
h2{margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:right;white-space:nowrap}
td.w{white-space:normal;max-width:22em}
td.l,th.l{text-align:left}
tr.flagged{background:#fff4d6}
.flag{display:inline-block;padding:0 4px;margin:0 2px;border-radius:3px;background:#d9534f;color:#fff;font-size:12px}
.muted{color:#888}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0;border:1px solid #ddd;padding:4px;font-size:13px;max-width:410px}
figure img{width:410px}
.unit{margin:1em 0}
.unit img{max-width:100%}
nav a{margin-right:1em}
"""


@dataclass
class UnitRow:
    """One unit of the store as the page shows it."""

    name: str
    electrode: int
    n_spikes: int
    rate_hz: float
    snr: float
    isi_1ms: float
    isi_2ms: float
    kind: str
    """e.g. "single RS"."""
    source: str
    """e.g. "autosort: solution 1, 0"."""
    solution_picture: str | None = None
    """The solution picture it was chosen from (relative to the page), if current."""
    picture: str | None = None
    """Its picture, if it shows this unit."""
    qa_picture: str | None = None
    """Its waveform + raster picture from unit QA, if the QA describes this unit."""
    isi_flag: bool = False
    qa_current: bool = False
    """Whether unit QA's results are for this unit (same name, electrode and spike count)."""
    drift_flag: bool = False
    drift_p: tuple[float | None, float | None] = (None, None)
    """F-test p of the baseline and the response window."""
    similar: list[str] = field(default_factory=list)
    """Units sharing more than the cutoff of their spikes with this one ("unit004 82%/20%")."""
    closest: str = ""
    """The unit sharing most spikes and the two percentages, when not flagged."""


@dataclass
class ElectrodeEntry:
    electrode: int
    units: list[str]
    thumbnail: str | None = None
    """Its thumbnail (relative to the page), if it shows the store's current units."""
    solutions: list[tuple[int, str]] | None = None
    """(solution, picture) for each solution picture; None: the electrode has no clusters."""
    solutions_current: bool = True
    """False: the pictures are of an earlier clustering (redraw with ``blechrs plot``)."""
    no_solutions_why: str = ""
    """Why no solution was drawn, when none was."""


@dataclass
class IndexContents:
    """What the page shows and links to (paths relative to the page's folder)."""

    recording: str
    units: Sequence[UnitRow]
    electrodes: Sequence[ElectrodeEntry]
    qa_note: str = ""
    """What the unit QA results are (or that they are missing or describe other units)."""
    qa_dir: str = ""
    qa_files: list[str] = field(default_factory=list)
    """The quality-check files in ``qa_dir``."""
    isi_limits: tuple[float, float] = (0.5, 2.0)


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def index_html(c: IndexContents) -> str:
    n_single = sum(1 for u in c.units if u.kind.startswith("single"))
    flagged = sum(1 for u in c.units if u.isi_flag or u.drift_flag or u.similar)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(c.recording)}: blechrs</title>",
             f"<style>{STYLE}</style></head><body><h1>{_e(c.recording)}</h1>",
             f"<p>{len(c.units)} units ({n_single} single, {len(c.units) - n_single} multi) on "
             f"{sum(1 for e in c.electrodes if e.units)} of {len(c.electrodes)} electrodes; "
             f"{flagged} flagged. {_e(c.qa_note)}</p>",
             "<nav><a href='#units'>units</a><a href='#electrodes'>electrodes</a>"
             "<a href='#pictures'>unit pictures</a><a href='#qa'>quality-check files</a></nav>"]
    parts += _unit_table(c)
    parts += _electrodes(c)
    parts += _unit_pictures(c)
    parts += _qa_files(c)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _unit_table(c: IndexContents) -> list[str]:
    lim1, lim2 = c.isi_limits
    parts = ["<h2 id='units'>Units</h2>",
             f"<p>Flags: <span class='flag'>ISI</span> more than {lim1:g}% of ISIs under 1 ms or {lim2:g}% under "
             "2 ms; <span class='flag'>drift</span> firing changes across the session beyond taste "
             "(unit QA's F test); <span class='flag'>similar</span> shares many spikes with another unit "
             "(within the similarity window: a duplicate, or one unit split in two).</p>",
             "<table><tr><th class='l'>unit</th><th>electrode</th><th>spikes</th><th>rate Hz</th><th>SNR</th>"
             "<th>ISI &lt;1 ms %</th><th>ISI &lt;2 ms %</th><th class='l'>type</th><th class='l'>from</th>"
             "<th>drift p (baseline, response)</th><th class='l'>most similar</th><th class='l'>flags</th></tr>"]
    parts += [_unit_row(u) for u in c.units]
    parts.append("</table>")
    return parts


def _p(v: float | None) -> str:
    return "-" if v is None else f"{v:.2g}"


def _unit_row(u: UnitRow) -> str:
    flags = (["ISI"] if u.isi_flag else []) + (["drift"] if u.drift_flag else []) + (["similar"] if u.similar else [])
    source = _e(u.source)
    if u.solution_picture:
        source = f"<a href='{_e(u.solution_picture)}'>{source}</a>"
    if u.qa_current:
        drift = f"{_p(u.drift_p[0])}, {_p(u.drift_p[1])}"
        similar = _e("; ".join(u.similar) if u.similar else u.closest or "-")
    else:
        drift = similar = "<span class='muted'>no current QA</span>"
    return (f"<tr id='row-{_e(u.name)}' class='{'flagged' if flags else ''}'>"
            f"<td class='l'><a href='#{_e(u.name)}'>{_e(u.name)}</a></td>"
            f"<td><a href='#electrode{u.electrode:02d}'>{u.electrode}</a></td><td>{u.n_spikes}</td>"
            f"<td>{u.rate_hz:.2f}</td><td>{u.snr:.1f}</td><td>{u.isi_1ms:.2f}</td><td>{u.isi_2ms:.2f}</td>"
            f"<td class='l'>{_e(u.kind)}</td><td class='l'>{source}</td><td>{drift}</td><td class='l w'>{similar}</td>"
            f"<td class='l'>{''.join(f'<span class=flag>{f}</span>' for f in flags)}</td></tr>")


def _electrodes(c: IndexContents) -> list[str]:
    rejected = AUTOSORT_REJECTED_NAME
    why = (f" The clusters it judged and did not keep, and why: <a href='{_e(c.qa_dir + '/' + rejected)}'>{rejected}</a>."
           if rejected in c.qa_files else "")
    parts = ["<h2 id='electrodes'>Electrodes</h2>",
             "<p>Each thumbnail: the electrode's units' mean waveforms and its events (grey) with the units' "
             "(colour) in feature space; click for full size. The solution pictures show every clustering "
             f"solution, with the clusters auto-sort made into units marked ▶.{why}</p><div class='thumbs'>"]
    for e in c.electrodes:
        img = (f"<a href='{_e(e.thumbnail)}'><img loading='lazy' src='{_e(e.thumbnail)}' "
               f"alt='electrode {e.electrode:02d}'></a>" if e.thumbnail else "")
        units = " ".join(f"<a href='#{_e(n)}'>{_e(n)}</a>" for n in e.units) or "no units"
        if e.solutions is None:
            sols = "no clusters"
        else:
            sols = "solutions: " + (" ".join(f"<a href='{_e(p)}'>{k}</a>" for k, p in e.solutions)
                                    or "none drawn" + (f" ({_e(e.no_solutions_why)})" if e.no_solutions_why else ""))
            if not e.solutions_current:
                sols += " <span class='flag'>of an earlier clustering: run blechrs plot</span>"
        parts.append(f"<figure id='electrode{e.electrode:02d}'>{img}<figcaption><b>electrode {e.electrode:02d}</b>: "
                     f"{units}<br>{sols}</figcaption></figure>")
    parts.append("</div>")
    return parts


def _unit_pictures(c: IndexContents) -> list[str]:
    parts = ["<h2 id='pictures'>Unit pictures</h2>"]
    for u in c.units:
        qa = (f" · <a href='{_e(u.qa_picture)}'>waveforms and trial raster (unit QA)</a>" if u.qa_picture else "")
        back = f" · <a href='#row-{_e(u.name)}'>table</a> · <a href='#electrode{u.electrode:02d}'>electrode</a>"
        body = (f"<a href='{_e(u.picture)}'><img loading='lazy' src='{_e(u.picture)}' alt='{_e(u.name)}'></a>"
                if u.picture else "<p class='muted'>no current picture: run blechrs plot</p>")
        parts.append(f"<div class='unit' id='{_e(u.name)}'><b>{_e(u.name)}</b>{qa}{back}<br>{body}</div>")
    return parts


def _qa_files(c: IndexContents) -> list[str]:
    if not c.qa_files:
        return []
    parts = ["<h2 id='qa'>Quality-check files</h2><ul>"]
    parts += [f"<li><a href='{_e(c.qa_dir)}/{_e(n)}'>{_e(n)}</a></li>" for n in c.qa_files]
    parts.append("</ul>")
    return parts
