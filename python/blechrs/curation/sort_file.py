"""The sort file: a person's unit choices as a CSV, applied without a single prompt.

The columns are blech_clust's (spec 7.2): ``Unit, Chan, Solution, Cluster, Split, single_unit,
Type, Comments``. One row selects clusters of one electrode's clustering solution:

- ``Chan``: the electrode (its ``electrode_ind``, as in blech_clust).
- ``Solution``: the solution number (2..max_clusters for the GMMs, also autosort_base_clusters
  when above max_clusters, max_autosort_clusters for the Bayesian GMM, 1 for the template
  assignment).
- ``Cluster``: one cluster ("5") or several merged into one unit ("1+5", "1,5" or "1 5").
- ``Split``: blank = no split. "7x" (or "7") re-clusters the selected events into 7 sub-clusters
  with a seeded Gaussian mixture and saves every sub-cluster as its own unit; "x" alone means 5
  (blech_clust's default). ``"7x:0,2"`` keeps only sub-clusters 0 and 2 (each a unit);
  ``"7x:0+2,5"`` keeps two units, sub-clusters 0 and 2 merged, and sub-cluster 5. Sub-clusters are
  numbered by size of their mean waveform's extremum, largest first, so a person can look at the
  "7x" result (same input and seed = same split) and then choose.
- ``single_unit``: blank, 0, n, no, false or mu = multi-unit; x, 1, y, yes, true or su = single.
- ``Type``: r / regular or f / fast spiking (recorded for multi-units too; blech_clust reads it
  only for single units).
- ``Unit``, ``Comments``: free text, copied to the applied report.

The person's CSV is never modified. Applying writes ``<name>_applied.csv`` beside it, the same rows
plus what happened to each (unit saved, spike count, ISI violations, or the reason it was
rejected). A row that cannot be parsed or names an unknown electrode, solution or cluster is
reported with its row number (the spreadsheet's: the header is row 1) and saves nothing; the
other rows are applied.
"""

from __future__ import annotations

import csv
import io
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from blechrs.errors import SortFileError
from blechrs.model import ElectrodeWork, Unit

COLUMNS = ("Unit", "Chan", "Solution", "Cluster", "Split", "single_unit", "Type", "Comments")
REQUIRED = ("Chan", "Solution", "Cluster")
DEFAULT_SPLIT = 5

_TRUE = {"x", "1", "y", "yes", "true", "t", "su", "single"}
_FALSE = {"", "0", "n", "no", "false", "mu", "multi"}
_TYPES = {"r": "regular", "regular": "regular", "rs": "regular", "regular_spiking": "regular",
          "f": "fast", "fast": "fast", "fs": "fast", "fast_spiking": "fast"}


@dataclass
class RowProblem:
    row: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


@dataclass
class SortRow:
    row: int
    """Spreadsheet row number (the header is row 1)."""
    electrode: int
    solution: int
    clusters: tuple[int, ...]
    split: int | None = None
    keep: list[tuple[int, ...]] | None = None
    """Sub-cluster groups to keep after a split (None = every sub-cluster, one unit each)."""
    single_unit: bool = False
    unit_type: str | None = None
    """'regular', 'fast' or None."""
    unit: str = ""
    comments: str = ""
    cells: dict[str, str] = field(default_factory=dict)

    @property
    def cluster_text(self) -> str:
        return "+".join(str(c) for c in self.clusters)


# ------------------------------------------------------------------------------------------------
# Parsing


def _int_cell(text: str, name: str) -> int:
    t = text.strip()
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a whole number") from None
    if not np.isfinite(value) or value != int(value):
        raise ValueError(f"{name} {text!r} is not a whole number")
    return int(value)


def parse_clusters(text: str, name: str = "Cluster") -> tuple[int, ...]:
    """"5" -> (5,); "1+5", "1,5", "1 5", "1;5" -> (1, 5). Order kept, duplicates dropped."""
    t = text.strip()
    if not t:
        raise ValueError(f"{name} is empty")
    if not re.fullmatch(r"\d+(\s*[+,;&\s]\s*\d+)*", t):
        raise ValueError(f"{name} {text!r} is not a cluster number or a list like 1+5")
    out: list[int] = []
    for part in re.findall(r"\d+", t):
        if int(part) not in out:
            out.append(int(part))
    return tuple(out)


def parse_split(text: str) -> tuple[int | None, list[tuple[int, ...]] | None]:
    """"" -> (None, None); "7x" / "7" -> (7, None); "x" -> (5, None); "7x:0,2" -> (7, [(0,), (2,)]);
    "7x:0+2,5" -> (7, [(0, 2), (5,)])."""
    t = text.strip().lower()
    if not t:
        return None, None
    m = re.fullmatch(r"(\d*)\s*x?\s*(?::\s*(.*))?", t)
    if not m or (not m.group(1) and "x" not in t):
        raise ValueError(f"Split {text!r} is not like 7x or 7x:0,2")
    n = int(m.group(1)) if m.group(1) else DEFAULT_SPLIT
    if n < 2:
        raise ValueError(f"Split {text!r} asks for {n} sub-cluster(s); at least 2 are needed")
    keep = None
    if m.group(2) is not None:
        groups_text = m.group(2).strip()
        if not re.fullmatch(r"\d+(\s*\+\s*\d+)*(\s*,\s*\d+(\s*\+\s*\d+)*)*", groups_text):
            raise ValueError(f"Split {text!r}: keep-list {groups_text!r} is not like 0,2 or 0+2,5")
        keep = []
        for group in groups_text.split(","):
            ids = tuple(dict.fromkeys(int(p) for p in group.split("+")))
            bad = [i for i in ids if i >= n]
            if bad:
                raise ValueError(f"Split {text!r}: sub-cluster {bad[0]} does not exist (0..{n - 1})")
            keep.append(ids)
    return n, keep


def parse_row(cells: dict[str, str], row: int) -> SortRow:
    """One CSV row -> SortRow; raises ValueError with the reason (without the row number)."""
    electrode = _int_cell(cells.get("Chan", ""), "Chan")
    if electrode < 0:
        raise ValueError(f"Chan {electrode} is negative")
    solution = _int_cell(cells.get("Solution", ""), "Solution")
    clusters = parse_clusters(cells.get("Cluster", ""))
    split, keep = parse_split(cells.get("Split", ""))
    su_text = cells.get("single_unit", "").strip().lower()
    if su_text in _TRUE:
        single = True
    elif su_text in _FALSE:
        single = False
    else:
        raise ValueError(f"single_unit {cells.get('single_unit')!r} is not x (single) or blank (multi)")
    type_text = cells.get("Type", "").strip().lower()
    if type_text and type_text not in _TYPES:
        raise ValueError(f"Type {cells.get('Type')!r} is not r (regular) or f (fast)")
    return SortRow(row=row, electrode=electrode, solution=solution, clusters=clusters, split=split,
                   keep=keep, single_unit=single, unit_type=_TYPES.get(type_text),
                   unit=cells.get("Unit", "").strip(), comments=cells.get("Comments", "").strip(),
                   cells=dict(cells))


class SortFile(NamedTuple):
    rows: list[SortRow]
    """The rows that parsed."""
    problems: list[RowProblem]
    """Why each other row did not."""
    cells: list[dict[str, str]]
    """Every non-blank row's cells (``__row__``: its spreadsheet row number)."""
    how_read: str
    """How the file was read when it was not plain UTF-8 with commas (e.g. "cp1252, ';'-separated"), else ""."""


def decode_sort_file(path: Path) -> tuple[str, str]:
    """The file's text and the encoding it was read with: UTF-8 (with or without the BOM Excel
    writes), else Windows-1252 (Excel on Windows saves "uV" comments and accents that way)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SortFileError(f"{path}: cannot read the sort file ({e.strerror})") from None
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        raise SortFileError(f"{path}: neither UTF-8 nor Windows-1252 text; save it as CSV UTF-8") from None


def sniff_delimiter(first_line: str) -> str:
    """',' unless the header holds the required columns only when split on ';' or a tab (Excel
    in many European locales saves CSV with ';')."""
    def columns(d: str) -> set[str]:
        return {c.strip().strip('"').lower().replace(" ", "_") for c in first_line.split(d)}

    need = {c.lower() for c in REQUIRED}
    for d in (",", ";", "\t"):
        if need <= columns(d):
            return d
    return ","


def read_sort_file(path: str | os.PathLike) -> SortFile:
    """Parse a sort file: comma, semicolon or tab separated, UTF-8 or Windows-1252."""
    path = Path(path)
    if not path.exists():
        raise SortFileError(f"{path}: sort file not found")
    text, encoding = decode_sort_file(path)
    delimiter = sniff_delimiter(text.split("\n", 1)[0])
    how = ", ".join(([encoding] if encoding != "utf-8" else [])
                    + ([f"{'tab' if delimiter == chr(9) else repr(delimiter)}-separated"] if delimiter != "," else []))
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise SortFileError(f"{path}: the sort file is empty (expected a header {','.join(COLUMNS)})") from None
    except csv.Error as e:
        raise SortFileError(f"{path}: not a CSV file ({e})") from None
    # Match column names leniently (case, spaces), keep blech_clust's spelling internally.
    canonical = {c.lower().replace(" ", "_"): c for c in COLUMNS}
    names = [canonical.get(h.strip().lower().replace(" ", "_"), h.strip()) for h in header]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise SortFileError(f"{path}: missing column(s) {', '.join(missing)} "
                            f"(expected a header {','.join(COLUMNS)})")
    rows: list[SortRow] = []
    problems: list[RowProblem] = []
    all_cells: list[dict[str, str]] = []
    try:
        for number, record in enumerate(reader, start=2):
            cells = {name: (record[i] if i < len(record) else "") for i, name in enumerate(names)}
            cells["__row__"] = str(number)
            if not any(v.strip() for k, v in cells.items() if k != "__row__"):
                continue  # blank line
            all_cells.append(cells)
            if len(record) > len(names) and any(v.strip() for v in record[len(names):]):
                problems.append(RowProblem(number, f"{len(record)} cells but the header has {len(names)}"))
                continue
            try:
                rows.append(parse_row(cells, number))
            except ValueError as e:
                problems.append(RowProblem(number, str(e)))
    except csv.Error as e:
        raise SortFileError(f"{path}: not a valid CSV file ({e})") from None
    return SortFile(rows, problems, all_cells, how)


# ------------------------------------------------------------------------------------------------
# Applying


def split_events(features: np.ndarray, waveforms: np.ndarray, n: int, params: Any) -> np.ndarray:
    """Seeded Gaussian mixture of ``n`` components on the events' features -> sub-cluster labels,
    numbered by the size of the mean waveform's extremum (largest first)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    x = np.asarray(features, dtype=np.float64)
    if len(x) < n:
        raise ValueError(f"cannot split {len(x)} events into {n} sub-clusters")
    if len(np.unique(x, axis=0)) < n:
        raise ValueError(f"cannot split into {n} sub-clusters: only {len(np.unique(x, axis=0))} distinct events")
    model = GaussianMixture(n_components=n, covariance_type="full", max_iter=int(params.cluster.num_iter),
                            tol=float(params.cluster.thresh), n_init=int(params.cluster.num_restarts), reg_covar=1e-4,
                            random_state=int(params.cluster.random_seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x)
    if not model.converged_:
        raise ValueError(f"the split into {n} sub-clusters did not converge in {params.cluster.num_iter} iterations")
    labels = model.predict(x)
    peak = min(params.extract.samples_before, waveforms.shape[1] - 1)
    size = np.array([np.abs(waveforms[labels == k, peak].mean()) if np.any(labels == k) else -1.0
                     for k in range(n)])
    order = np.lexsort((np.arange(n), -size))
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return rank[labels]


def apply_sort_rows(rows: Sequence[SortRow], load: Callable[[int], ElectrodeWork | None], params: Any
                    ) -> tuple[list[Unit], list[RowProblem], dict[int, list[Unit]]]:
    """Turn parsed rows into units (their events as ``indices``).

    ``load(electrode)`` returns the electrode's work (its solutions, and the ``features`` and
    ``waveforms`` a split needs) or None if the electrode was not sorted. Returns (units,
    problems, units per row number).
    """
    selections: list[Unit] = []
    problems: list[RowProblem] = []
    by_row: dict[int, list[Unit]] = {}
    cache: dict[int, ElectrodeWork | None] = {}
    seen: dict[tuple[int, bytes], int] = {}
    for row in rows:
        if row.electrode not in cache:
            cache[row.electrode] = load(row.electrode)
        work = cache[row.electrode]
        if work is None:
            problems.append(RowProblem(row.row, f"electrode {row.electrode} has no sorting results "
                                                 "(unknown electrode, or not clustered yet)"))
            continue
        labels = work.labels_of(row.solution)
        if labels is None:
            known = sorted(work.solutions)
            # an electrode not clustered says why (too few events for a unit, dead ...)
            why = f"none: {work.status}" if not known and work.status not in (None, "ok") else "none"
            problems.append(RowProblem(row.row, f"electrode {row.electrode} has no solution {row.solution} "
                                                 f"(solutions: {', '.join(map(str, known)) or why})"))
            continue
        present = set(np.unique(labels[labels >= 0]).tolist())
        unknown = [c for c in row.clusters if c not in present]
        if unknown:
            problems.append(RowProblem(row.row, f"electrode {row.electrode} solution {row.solution} has no "
                                                 f"cluster {unknown[0]} (clusters: "
                                                 f"{', '.join(map(str, sorted(present))) or 'none'})"))
            continue
        indices = np.flatnonzero(np.isin(labels, row.clusters))
        single = row.single_unit
        regular = row.unit_type == "regular"
        fast = row.unit_type == "fast"
        chosen: list[tuple[np.ndarray, str]] = []
        if row.split is None:
            chosen.append((indices, row.cluster_text))
        else:
            try:
                sub = split_events(work.features[indices], work.waveforms[indices], row.split, params)
            except ValueError as e:
                problems.append(RowProblem(row.row, f"electrode {row.electrode}: {e}"))
                continue
            groups = row.keep if row.keep is not None else [(k,) for k in range(row.split)]
            for group in groups:
                part = indices[np.isin(sub, group)]
                text = f"{row.cluster_text} split {row.split}: {'+'.join(map(str, group))}"
                if len(part) == 0:
                    continue
                chosen.append((part, text))
        duplicate = None
        for part, _ in chosen:
            key = (row.electrode, np.asarray(part, dtype=np.int64).tobytes())
            if key in seen:
                duplicate = seen[key]
        if duplicate is not None:
            problems.append(RowProblem(row.row, f"selects the same events as row {duplicate}"))
            continue
        made = []
        for part, text in chosen:
            seen[(row.electrode, np.asarray(part, dtype=np.int64).tobytes())] = row.row
            made.append(Unit(electrode=row.electrode, solution=row.solution, clusters=row.clusters,
                                  indices=np.asarray(part, dtype=np.int64), single_unit=single,
                                  regular_spiking=regular, fast_spiking=fast, label=text, row=row.row,
                                  source=f"sort file row {row.row}"))
        selections.extend(made)
        by_row[row.row] = made
    return selections, problems, by_row


REPORT_COLUMNS = COLUMNS + ("Row", "status", "unit_name", "spikes", "isi_1ms_pct", "isi_2ms_pct", "message")


def write_applied_report(report: Path, sort_file: str | os.PathLike, all_cells: list[dict[str, str]],
                         problems: list[RowProblem], by_row: dict[int, list[Unit]],
                         unit_info: dict[int, dict[str, Any]], saved: bool = True) -> Path:
    """Write the applied report ``report``: every row of the sort file plus its outcome.

    ``unit_info[id(unit)]`` holds ``unit_name``, ``spikes``, ``isi_1ms_pct``, ``isi_2ms_pct``.
    A row that made several units (a split) gets one line per unit. ``saved`` False: nothing was
    saved (another row was bad), so the good rows say "not saved".
    """
    from blechrs.io.atomic import write_text_atomic

    if Path(report).resolve() == Path(sort_file).resolve():
        raise SortFileError(f"{sort_file}: refusing to write the applied report over the sort file")
    problem_of = {p.row: p.message for p in problems}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(REPORT_COLUMNS)
    for cells in all_cells:
        row = int(cells["__row__"])
        base = [cells.get(c, "") for c in COLUMNS] + [row]
        if row in problem_of:
            w.writerow(base + ["rejected", "", "", "", "", problem_of[row]])
            continue
        sels = by_row.get(row, [])
        if not sels:
            w.writerow(base + ["no unit", "", "", "", "", "every selected sub-cluster was empty"])
        for sel in sels:
            if not saved:
                w.writerow(base + ["not saved", "", len(sel.indices), "", "", "other rows were rejected: nothing saved"])
                continue
            info = unit_info.get(id(sel), {})
            w.writerow(base + ["saved", info.get("unit_name", ""), info.get("spikes", len(sel.indices)),
                              _fmt(info.get("isi_1ms_pct")), _fmt(info.get("isi_2ms_pct")), sel.label])
    write_text_atomic(report, buf.getvalue())
    return report


def _fmt(x) -> str:
    return "" if x is None else f"{float(x):.3f}"


# ------------------------------------------------------------------------------------------------
# Writing (auto-sort's decisions, so a person can edit them and re-run post-process)


def format_sort_file(entries: Sequence[dict[str, Any]]) -> str:
    """CSV text of sort-file rows; each entry has the COLUMNS keys (missing ones are blank)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for e in entries:
        w.writerow(["" if e.get(c) is None else e.get(c) for c in COLUMNS])
    return buf.getvalue()


def unit_row(number: int, sel: Unit, comment: str = "") -> dict[str, Any]:
    """The sort-file row that reproduces one unit (merges as "1+5")."""
    return {
        "Unit": number, "Chan": sel.electrode, "Solution": sel.solution,
        "Cluster": "+".join(str(c) for c in sel.clusters), "Split": "",
        "single_unit": "x" if sel.single_unit else "",
        "Type": "r" if sel.regular_spiking else "f" if sel.fast_spiking else "",
        "Comments": comment,
    }
