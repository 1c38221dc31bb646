"""``blechrs_plots/index.html``: a page listing every unit (with its metrics), every electrode's
solution pictures and the quality checks, to browse the whole recording."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from blechrs.model import Unit


@dataclass
class IndexContents:
    """What the page links to (names relative to the page's folder)."""

    recording: str
    units: Sequence[Unit]
    solutions: list[tuple[int, list[str] | None]]
    """(electrode, its solution pictures' file names; None: the electrode has no folder)."""
    qa_dir: str = ""
    """The QA folder, relative to the page."""
    qa_entries: list[tuple[str, bool]] = field(default_factory=list)
    """The QA folder's entries: (name, is a file)."""
    unit_qa: list[str] = field(default_factory=list)
    """Units with a waveform + raster picture under ``qa/``."""


def index_html(c: IndexContents) -> str:
    name = html.escape(c.recording)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{name}: blechrs</title>",
             "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:900px}</style>",
             f"</head><body><h1>{name}</h1><h2>Units ({len(c.units)})</h2>",
             "<table><tr><th>unit</th><th>electrode</th><th>spikes</th><th>rate Hz</th><th>SNR</th>"
             "<th>ISI &lt;1 ms %</th><th>ISI &lt;2 ms %</th><th>type</th><th>from</th></tr>"]
    parts += [_unit_row(u) for u in c.units]
    parts.append("</table><h2>Electrodes</h2><table><tr><th>electrode</th><th>solutions</th></tr>")
    for e, pictures in c.solutions:
        links = " ".join(f"<a href='electrode{e:02d}/{p}'>{int(Path(p).stem[8:])}</a>"
                         for p in pictures) if pictures is not None else "(no clusters)"
        parts.append(f"<tr><td>{e:02d}</td><td>{links or '(quiet)'}</td></tr>")
    parts.append("</table>")
    parts.extend(_qa_parts(c))
    parts.append("<h2>Unit pictures</h2>")
    for u in c.units:
        parts.append(f"<div id='{u.name}'><a href='units/{u.name}.png'><img loading='lazy' src='units/{u.name}.png' "
                     f"alt='{u.name}'></a></div>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _unit_row(u: Unit) -> str:
    m = u.metrics
    kind = ("single" if u.single_unit else "multi") + (" RS" if u.regular_spiking else " FS" if u.fast_spiking else "")
    return (f"<tr><td><a href='#{u.name}'>{u.name}</a></td><td>{u.electrode}</td>"
            f"<td>{len(u.times)}</td><td>{m.get('firing_rate', float('nan')):.2f}</td><td>{u.snr:.1f}</td>"
            f"<td>{m.get('isi_violations_1ms', float('nan')):.2f}</td>"
            f"<td>{m.get('isi_violations_2ms', float('nan')):.2f}</td><td>{kind}</td>"
            f"<td>{html.escape(u.source)}: solution {u.solution}, {html.escape(u.label)}</td></tr>")


def _qa_parts(c: IndexContents) -> list[str]:
    """Links to the quality checks: raw-data QA pictures and files (init), unit QA (similarity,
    drift) and each unit's waveform + raster picture, when they exist."""
    if not c.qa_entries and not c.unit_qa:
        return []
    parts = ["<h2>Quality checks</h2><ul>"]
    parts += [f"<li><a href='{html.escape(c.qa_dir)}/{html.escape(n)}'>{html.escape(n)}</a></li>"
              for n, is_file in c.qa_entries if is_file]
    parts.append("</ul>")
    if c.unit_qa:
        parts.append("<p>Waveform and raster per unit: "
                     + " ".join(f"<a href='qa/{n}.png'>{n}</a>" for n in c.unit_qa) + "</p>")
    return parts
