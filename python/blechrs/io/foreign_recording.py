"""Recordings of other systems: Open Ephys (legacy ``.continuous``) and Neuralynx (``.ncs``)
through neo (the ``neo`` extra), and raw binary files described by a sampling rate, a channel
count, a dtype, a header offset and a gain.

The engine reads int16 samples interleaved by channel (``_native.interleaved_file_source``), so:

* raw int16 little-endian binary is read where it is, never copied;
* any other raw dtype, and every neo format, is converted once, streamed in chunks (never loaded
  whole), into ``blechrs_work/recording_int16.dat`` beside a JSON file saying what it was made
  from (``paths.converted_recording_meta_path``). The write is atomic; a later open reuses it while
  the source files' names, sizes and modification times are unchanged and converts again when
  they change (an interrupted conversion is redone from the start).

Each recording carries its gain in microvolts per int16 count (``ForeignData.gain``): neo's
channel gain (its units converted to uV); a raw binary file's ``gain`` (uV per stored unit; when
not given, 1, with a warning: voltages are then file units). int16 data and neo's int16 data with
one gain for all channels keep their counts exactly; other data (float, int32, uint8 ..., or
channels of different gains) are scaled onto int16 with a step chosen from the data's largest
magnitude (32000 steps from 0 to it), and the gain is that step.

Segments (neo: recordings with timestamp gaps, restarts) are concatenated, as blechrs concatenates
Intan files across dropped samples, and said in ``warnings``: which sample each segment starts at
and how long the gap before it was. No digital inputs are read from these formats.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blechrs import _native
from blechrs.errors import BlechrsError, RecordingError
from blechrs.io import paths
from blechrs.io.atomic import atomic_path, write_text_atomic

BINARY = "raw binary"
OPEN_EPHYS = "Open Ephys (legacy .continuous, via neo)"
NEURALYNX = "Neuralynx (.ncs, via neo)"
#: What ``blechrs init --format`` accepts (binary needs its description; the others are found).
FORMAT_NAMES = {"binary": BINARY, "openephys": OPEN_EPHYS, "neuralynx": NEURALYNX}
#: Raw binary dtypes accepted (numpy names; "<" / ">" prefixes for byte order are accepted too).
BINARY_DTYPES = ("int16", "uint16", "int8", "uint8", "int32", "uint32", "float32", "float64")
#: Samples per chunk of a conversion (per channel).
CHUNK_SAMPLES = 1 << 18
#: Largest int16 magnitude a scaled conversion uses (headroom below 32767 for rounding).
SCALED_FULL_RANGE = 32000.0
#: A Neuralynx time-stamp gap shorter than this is jitter (neo's strict_gap_mode=False at 32 kHz:
#: 128 samples), not a gap.
NEURALYNX_GAP_TOLERANCE_MS = 4.0
_UNITS_TO_UV = {"uv": 1.0, "µv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}


class MissingExtraError(BlechrsError, ImportError):
    """An optional dependency is not installed; the message says what to pip install."""


@dataclass
class ForeignData:
    """What ``io.recording.Recording`` is built from for a recording of another format."""

    kind: str
    sampling_rate: float
    channel_names: list[str]
    gain: float
    """Microvolts per int16 count of ``source``."""
    source: Any
    files: list[Path]
    """The source files (their names, sizes and times are the recording's identity)."""
    header_file: Path
    """The file to name when the recording's settings are wrong."""
    warnings: list[str] = field(default_factory=list)
    segment_starts: list[int] = field(default_factory=list)
    """First sample of each segment in the concatenated samples ([0] for one segment)."""
    channel_files: list[str] = field(default_factory=list)
    """Each channel's file (the layout's ``filename`` column)."""


@dataclass
class BinarySpec:
    """A raw binary recording: ``file`` (name in the folder), samples interleaved by channel."""

    file: str
    sampling_rate: float
    n_channels: int
    dtype: str = "int16"
    offset: int = 0
    """Bytes before the first sample (a header to skip)."""
    gain: float | None = None
    """Microvolts per stored unit (per count for integers); None = 1 (file units shown as uV)."""
    channel_names: list[str] | None = None


# --- detection -----------------------------------------------------------------------------------
def detect_format(directory: Path) -> str | None:
    """The format of a non-Intan recording in ``directory``, or None: a raw binary description
    (``blechrs_binary.json``), Open Ephys ``.continuous`` files, Neuralynx ``.ncs`` files."""
    if paths.binary_spec_path(directory).exists():
        return BINARY
    if any(directory.glob("*.continuous")):
        return OPEN_EPHYS
    if any(directory.glob("*.ncs")):
        return NEURALYNX
    return None


def open_foreign(directory: Path, kind: str) -> ForeignData:
    if kind == BINARY:
        return _open_binary(directory, load_binary_spec(directory))
    return _open_neo(directory, kind)


# --- raw binary ----------------------------------------------------------------------------------
def _dtype(value: str, where: str) -> np.dtype:
    name = str(value).lstrip("<>=|")
    if name not in BINARY_DTYPES:
        raise RecordingError(f"{where}: dtype {value!r} is not one of {', '.join(BINARY_DTYPES)}")
    dt = np.dtype(name)
    return dt.newbyteorder(">") if str(value).startswith(">") else dt.newbyteorder("<")


def check_binary_spec(directory: Path, spec: BinarySpec, where: str) -> Path:
    """The data file of ``spec`` after checking every value (errors name ``where`` or the file)."""
    f = Path(directory) / spec.file
    if not f.is_file():
        raise RecordingError(f"{f}: no such file (named in {where})")
    if not (isinstance(spec.n_channels, int) and spec.n_channels >= 1):
        raise RecordingError(f"{where}: n_channels must be an integer >= 1, not {spec.n_channels!r}")
    if not (isinstance(spec.sampling_rate, (int, float)) and np.isfinite(spec.sampling_rate)
            and spec.sampling_rate > 0):
        raise RecordingError(f"{where}: sampling_rate must be a number > 0, not {spec.sampling_rate!r}")
    if not (isinstance(spec.offset, int) and spec.offset >= 0):
        raise RecordingError(f"{where}: offset must be a byte count >= 0, not {spec.offset!r}")
    if spec.gain is not None and not (isinstance(spec.gain, (int, float)) and np.isfinite(spec.gain)
                                      and spec.gain > 0):
        raise RecordingError(f"{where}: gain must be a number > 0 (microvolts per unit), not {spec.gain!r}")
    if spec.channel_names is not None and len(spec.channel_names) != spec.n_channels:
        raise RecordingError(f"{where}: {len(spec.channel_names)} channel_names for {spec.n_channels} channels")
    item = _dtype(spec.dtype, where).itemsize
    data = f.stat().st_size - spec.offset
    frame = spec.n_channels * item
    if data <= 0 or data % frame:
        raise RecordingError(f"{f}: {data} bytes after the {spec.offset}-byte offset are not a whole number of "
                             f"samples of {spec.n_channels} channels x {item}-byte {spec.dtype}")
    return f


def load_binary_spec(directory: Path) -> BinarySpec:
    p = paths.binary_spec_path(directory)
    try:
        d = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise RecordingError(f"{p}: cannot be read ({e})") from None
    except json.JSONDecodeError as e:
        raise RecordingError(f"{p}: not valid JSON ({e.msg} at line {e.lineno})") from None
    known = set(BinarySpec.__dataclass_fields__)
    if not isinstance(d, dict) or not {"file", "sampling_rate", "n_channels"} <= set(d):
        raise RecordingError(f"{p}: expected a JSON object with file, sampling_rate and n_channels")
    unknown = sorted(set(d) - known)
    if unknown:
        raise RecordingError(f"{p}: unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    spec = BinarySpec(**d)
    check_binary_spec(directory, spec, str(p))
    return spec


def binary_spec_text(spec: BinarySpec) -> str:
    return json.dumps({k: v for k, v in asdict(spec).items() if v is not None}, indent=2) + "\n"


def write_binary_spec(directory: Path, spec: BinarySpec) -> Path:
    """Check ``spec`` and write it as the folder's ``blechrs_binary.json`` (atomic)."""
    p = paths.binary_spec_path(directory)
    check_binary_spec(directory, spec, "the raw binary description")
    write_text_atomic(p, binary_spec_text(spec))
    return p


def _open_binary(directory: Path, spec: BinarySpec) -> ForeignData:
    f = Path(directory) / spec.file
    dt = _dtype(spec.dtype, str(paths.binary_spec_path(directory)))
    n = spec.n_channels
    names = spec.channel_names or [f"ch{i:02d}" for i in range(n)]
    warns = []
    gain = 1.0 if spec.gain is None else float(spec.gain)
    if spec.gain is None:
        warns.append(f"{paths.binary_spec_path(directory)}: no gain given; 1 uV per unit assumed, so every voltage "
                     f"blechrs shows (waveforms, thresholds, voltage_cutoff) is in the file's units")
    files = [f, paths.binary_spec_path(directory)]
    if dt == np.dtype("<i2"):
        source = _native_source(f, n, spec.offset)
    else:
        key = _files_key(BINARY, files)
        meta = _cached(directory, key, n)
        if meta is None:
            meta = _convert_binary(directory, key, f, dt, n, spec.offset)
        gain *= float(meta["step"])
        source = _native_source(paths.converted_recording_path(directory), n, 0)
    return ForeignData(kind=BINARY, sampling_rate=float(spec.sampling_rate), channel_names=list(names), gain=gain,
                       source=source, files=files, header_file=paths.binary_spec_path(directory), warnings=warns,
                       segment_starts=[0], channel_files=[f.name] * n)


def _convert_binary(directory: Path, key: str, f: Path, dt: np.dtype, n: int, offset: int) -> dict:
    total = (f.stat().st_size - offset) // (dt.itemsize * n)
    mm = np.memmap(f, dtype=dt, mode="r", offset=offset, shape=(total, n))
    chunks = [(a, min(total, a + CHUNK_SAMPLES)) for a in range(0, total, CHUNK_SAMPLES)]
    if dt.kind in "iu" and dt.itemsize == 2:  # uint16: offset binary, exact
        step, shift = 1.0, (32768.0 if dt.kind == "u" else 0.0)
    else:
        peak = max(float(np.abs(np.asarray(mm[a:b], np.float64)).max()) for a, b in chunks)
        step, shift = (peak / SCALED_FULL_RANGE if peak > 0 else 1.0), 0.0
    _write_converted(directory, ((np.asarray(mm[a:b], np.float64) - shift) / step for a, b in chunks),
                     dict(key=key, step=step, n_channels=n, n_samples=total))
    del mm
    return dict(step=step)


# --- neo -----------------------------------------------------------------------------------------
def _neo_rawio(directory: Path, kind: str):
    try:
        from neo import rawio  # type: ignore[import-untyped]
    except ImportError:
        raise MissingExtraError(f"{directory}: reading {kind} needs neo: pip install 'blechrs[neo]'") from None
    if kind == OPEN_EPHYS:
        return rawio.OpenEphysRawIO(dirname=str(directory))
    # A gap in the time stamps is a new segment (said in the warnings), not a refusal to read;
    # a shorter one (NEURALYNX_GAP_TOLERANCE_MS, what neo calls non-strict at 32 kHz) is the
    # jitter of the records' time stamps. neo >= 0.14 names the option gap_tolerance_ms.
    known = inspect.signature(rawio.NeuralynxRawIO.__init__).parameters
    if "gap_tolerance_ms" in known:
        return rawio.NeuralynxRawIO(dirname=str(directory), gap_tolerance_ms=NEURALYNX_GAP_TOLERANCE_MS)
    if "strict_gap_mode" in known:
        return rawio.NeuralynxRawIO(dirname=str(directory), strict_gap_mode=False)
    return rawio.NeuralynxRawIO(dirname=str(directory))


def _neo_files(directory: Path, kind: str) -> list[Path]:
    pattern = "*.continuous" if kind == OPEN_EPHYS else "*.ncs"
    return sorted(p for p in directory.glob(pattern) if p.is_file())


def _open_neo(directory: Path, kind: str) -> ForeignData:
    files = _neo_files(directory, kind)
    key = _files_key(kind, files)
    meta = _cached(directory, key, None)
    if meta is None:
        meta = _convert_neo(directory, kind, key)
    n = int(meta["n_channels"])
    return ForeignData(kind=kind, sampling_rate=float(meta["sampling_rate"]), channel_names=list(meta["channel_names"]),
                       gain=float(meta["gain"]), source=_native_source(paths.converted_recording_path(directory), n, 0),
                       files=files, header_file=files[0], warnings=list(meta["warnings"]),
                       segment_starts=[int(s) for s in meta["segment_starts"]],
                       channel_files=_channel_files(files, meta["channel_names"]))


def _channel_files(files: list[Path], names: list[str]) -> list[str]:
    """Each channel's file where the system keeps one per channel (Tet3a -> Tet3a.ncs, CH0 ->
    101_CH0.continuous), else the channel's name."""
    by_stem: dict[str, str] = {}
    for f in files:
        by_stem.setdefault(f.stem, f.name)
        by_stem.setdefault(f.stem.rsplit("_", 1)[-1], f.name)
    return [by_stem.get(n, n) for n in names]


def _uv_per_unit(units: str, where: str) -> float:
    u = str(units).strip().lower().replace("μ", "µ")
    if u not in _UNITS_TO_UV:
        raise RecordingError(f"{where}: signal units {units!r} are not a voltage blechrs knows (uV, mV, V)")
    return _UNITS_TO_UV[u]


def _convert_neo(directory: Path, kind: str, key: str) -> dict:
    r = _neo_rawio(directory, kind)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            r.parse_header()
        except Exception as e:  # neo's own errors (bad header, truncated file): one line naming the folder
            raise RecordingError(f"{directory}: neo cannot read it as {kind}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    warns = [f"{directory}: neo: {w.message}" for w in caught if "strict_gap_mode" not in str(w.message)]
    streams = r.header["signal_streams"]
    chans = r.header["signal_channels"]
    if len(streams) == 0:
        raise RecordingError(f"{directory}: neo finds no continuous signal in it")
    counts = [int(np.sum(chans["stream_id"] == s["id"])) for s in streams]
    si = int(np.argmax(counts))
    if len(streams) > 1:
        warns.append(f"{directory}: {len(streams)} signal streams; sorting {streams[si]['name']!r} "
                     f"({counts[si]} channels), the one with the most channels")
    mine = chans[chans["stream_id"] == streams[si]["id"]]
    unit = np.array([_uv_per_unit(c["units"], str(directory)) for c in mine])
    uv, off = mine["gain"].astype(np.float64) * unit, mine["offset"].astype(np.float64) * unit
    fs = float(r.get_signal_sampling_rate(si))
    if r.block_count() > 1:
        warns.append(f"{directory}: {r.block_count()} blocks; only the first is sorted")
    nseg = r.segment_count(0)
    sizes = [int(r.get_signal_size(0, s, si)) for s in range(nseg)]
    starts = [int(x) for x in np.concatenate([[0], np.cumsum(sizes)[:-1]])]
    t0 = [float(r.get_signal_t_start(0, s, si)) for s in range(nseg)]
    warns += _segment_warnings(directory, sizes, starts, t0, fs)
    exact = bool(np.all(mine["dtype"] == mine["dtype"][0])) and np.dtype(mine["dtype"][0]) == np.int16 \
        and bool(np.all(uv == uv[0]))
    chunks = [(s, a, min(sizes[s], a + CHUNK_SAMPLES)) for s in range(nseg) for a in range(0, sizes[s], CHUNK_SAMPLES)]

    def read(s, a, b):
        return r.get_analogsignal_chunk(block_index=0, seg_index=s, i_start=a, i_stop=b, stream_index=si)

    def scaled(s, a, b):  # microvolts (neo's own rescaling)
        return read(s, a, b) * uv + off

    if exact:  # the counts as they are; an offset common to all samples is a DC shift the filter removes
        gain = float(uv[0])
        data = (read(s, a, b) for s, a, b in chunks)
    else:  # onto one uV step (different channel gains, or a raw type other than int16)
        peak = max(float(np.abs(scaled(s, a, b)).max()) for s, a, b in chunks)
        gain = peak / SCALED_FULL_RANGE if peak > 0 else 1.0
        data = (scaled(s, a, b) / gain for s, a, b in chunks)
    meta = dict(key=key, gain=gain, sampling_rate=fs, n_channels=len(mine), n_samples=int(sum(sizes)),
                channel_names=[str(c["name"]) for c in mine], segment_starts=starts, warnings=warns)
    _write_converted(directory, data, meta)
    return meta


def _segment_warnings(directory: Path, sizes, starts, t0, fs) -> list[str]:
    """One line per join of two segments: where it is and how long the gap; blechrs sorts across
    it as one recording (as across an Intan file's dropped samples), so the reader must be told."""
    out = []
    for s in range(1, len(sizes)):
        end = t0[s - 1] + sizes[s - 1] / fs
        gap = t0[s] - end
        out.append(f"{directory}: segment {s + 1} of {len(sizes)} starts at sample {starts[s]} after a gap of "
                   f"{gap:.6g} s in the time stamps (at {t0[s]:.6g} s); the segments are sorted as one continuous "
                   f"recording, so times from sample {starts[s]} on are {gap:.6g} s earlier than the system's clock "
                   f"and the filters see a jump there")
    return out


# --- the converted file --------------------------------------------------------------------------
#: Part of every converted file's key: a change to how blechrs converts makes old conversions stale.
CONVERSION_VERSION = 2


def _files_key(kind: str, files: list[Path]) -> str:
    stats = [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    return hashlib.sha256(json.dumps([CONVERSION_VERSION, kind, stats]).encode()).hexdigest()[:16]


def _cached(directory: Path, key: str, n_channels: int | None) -> dict | None:
    """The converted file's description if it was made from these source files and is whole."""
    mp, dp = paths.converted_recording_meta_path(directory), paths.converted_recording_path(directory)
    try:
        meta = json.loads(mp.read_text())
        whole = dp.stat().st_size == 2 * int(meta["n_channels"]) * int(meta["n_samples"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if meta.get("key") != key or not whole or (n_channels is not None and meta["n_channels"] != n_channels):
        return None
    return meta


def _write_converted(directory: Path, chunks, meta: dict) -> None:
    """Write int16 chunks (samples x channels, values already in counts) and then their
    description; each atomically, the description last, so a half-written pair is never used."""
    dp = paths.converted_recording_path(directory)
    paths.converted_recording_meta_path(directory).unlink(missing_ok=True)
    with atomic_path(dp) as tmp, open(tmp, "wb") as fh:
        for x in chunks:
            x = np.asarray(x)
            if not (x.dtype.kind == "i" and x.dtype.itemsize == 2):  # scaled: round onto counts (int16 stays exact)
                x = np.clip(np.rint(x.astype(np.float64)), -32768, 32767)
            x.astype("<i2").tofile(fh)
    write_text_atomic(paths.converted_recording_meta_path(directory), json.dumps(meta, indent=1) + "\n")


def _native_source(path: Path, n_channels: int, offset: int):
    try:
        return _native.interleaved_file_source(str(path), int(n_channels), int(offset))
    except (ValueError, OSError) as e:
        raise RecordingError(str(e)) from None

