"""Open an Intan RHD2000 recording in any of its three layouts.

``open_recording(path)`` takes a directory (or its info.rhd, or one .rhd file) and returns a
:class:`Recording`: sampling rate, channel names, ports, native orders, header metadata, the
amplifier channels as a lazy (channels x samples) int16 view that is never loaded whole, and the
digital inputs as onset/offset sample indices. The files are parsed and read in Rust
(``blechrs._native``); nothing is copied.

Layouts (Intan's names):

* ``one file per channel``: info.rhd, time.dat, amp-<port>-<nnn>.dat, board-DIN-<nn>.dat (older
  Intan software) or board-DIGITAL-IN-<nn>.dat (RHX);
* ``one file per signal type``: info.rhd, time.dat, amplifier.dat (interleaved), digitalin.dat
  (one uint16 word per sample, bit k = the input whose native order is k);
* ``traditional``: one or several consecutive .rhd files (header + data blocks), read as one.

Amplifier values are int16 counts of 0.195 uV in every layout (.rhd stores uint16 offset by
32768; blechrs converts, it never scales twice); ``Recording.gain`` says so. Problems that do not stop reading (time-stamp
jumps, a partial last .rhd block) are issued as :class:`RecordingWarning` and kept in
``Recording.warnings``; problems that do are a :class:`RecordingError` naming the file.

A folder with no Intan recording but another system's (Open Ephys, Neuralynx, a raw binary file
described by ``blechrs_binary.json``) opens through :mod:`blechrs.io.foreign_recording` as the
same :class:`Recording`, with that system's gain and no digital inputs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from blechrs import _native
from blechrs.errors import RecordingError
from blechrs.io.foreign_recording import ForeignData, detect_format, open_foreign

#: Intan RHD2000 amplifier resolution, the same for every file format.
MICROVOLTS_PER_BIT = _native.MICROVOLTS_PER_BIT

PER_CHANNEL = "one file per channel"
PER_SIGNAL = "one file per signal type"
TRADITIONAL = "traditional"
FILE_TYPES = (PER_CHANNEL, PER_SIGNAL, TRADITIONAL)

_AMPLIFIER, _DIG_IN = 0, 4
_DIN_FILE = re.compile(r"^board-(DIN|DIGITAL-IN)-(\d+)\.dat$")


class RecordingWarning(UserWarning):
    """Something odd in a recording that does not stop reading it (dropped samples ...)."""


def _native_call(fn, *args):
    """Native errors already name the file; give them the one blechrs.io exception type."""
    try:
        return fn(*args)
    except (ValueError, OSError) as e:
        raise RecordingError(str(e)) from None


def din_name(native_name: str) -> str:
    """blechrs name of a digital input: ``dig_in_NN`` with NN the number in Intan's name
    (DIN-03 -> dig_in_03, DIGITAL-IN-01 -> dig_in_01), as blech_clust numbers them."""
    m = re.search(r"(\d+)$", native_name)
    if not m:
        return "dig_in_" + re.sub(r"\W+", "_", native_name)
    return f"dig_in_{int(m.group(1)):02d}"


class AmplifierView:
    """Lazy (channels x samples) int16 view of the amplifier channels.

    Index it like a numpy array (``view[3]``, ``view[[0, 2], 1000:2000]``, ``view[:, ::10]``);
    only the samples asked for are read. ``source`` is what ``kernels.extract_electrodes`` takes.
    """

    dtype = np.dtype(np.int16)
    ndim = 2

    def __init__(self, source, path: str):
        self.source = source
        self._path = path

    @property
    def shape(self) -> tuple[int, int]:
        return (self.source.n_channels, self.source.n_samples)

    def __len__(self) -> int:
        return self.source.n_channels

    def __repr__(self) -> str:
        return f"AmplifierView({self.shape[0]} channels x {self.shape[1]} samples, int16, {self._path})"

    def read(self, channels, start: int = 0, stop: int | None = None) -> np.ndarray:
        """int16 array (len(channels) x (stop - start))."""
        stop = self.shape[1] if stop is None else stop
        return _native_call(_native.read_source, self.source, [int(c) for c in channels], int(start), int(stop))

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) > 2:
            raise IndexError("AmplifierView is 2-D (channels x samples)")
        ck = key[0]
        tk = key[1] if len(key) == 2 else slice(None)
        nch, n = self.shape
        chans = np.arange(nch)[ck]
        scalar_ch = np.ndim(chans) == 0
        chans = np.atleast_1d(chans)
        if isinstance(tk, slice):
            a, b, step = tk.indices(n)
            if step > 0:
                x = self.read(chans, a, max(a, b))[:, ::step]
            else:
                idx = np.arange(n)[tk]
                x = self.read(chans, idx.min(), idx.max() + 1)[:, idx - idx.min()] if len(idx) else np.zeros((len(chans), 0), np.int16)
            out = x
        else:
            idx = np.arange(n)[tk]
            scalar_t = np.ndim(idx) == 0
            flat = np.atleast_1d(idx)
            if len(flat):
                lo, hi = int(flat.min()), int(flat.max()) + 1
                x = self.read(chans, lo, hi)[:, flat - lo]
            else:
                x = np.zeros((len(chans), 0), np.int16)
            out = x[:, 0] if scalar_t else x
        return out[0] if scalar_ch else out

    def __array__(self, dtype=None, copy=None):
        x = self.read(range(self.shape[0]))
        return x if dtype is None else x.astype(dtype)


class Recording:
    """An opened recording (see the module docstring). Use :func:`open_recording`."""

    path: Path
    file_type: str
    sampling_rate: float
    n_samples: int
    channel_names: list[str]
    ports: list[str]
    native_orders: list[int]
    header: dict[str, Any]
    amplifier: AmplifierView
    warnings: list[str]
    gain: float
    """Microvolts per int16 count of the amplifier channels (Intan: ``MICROVOLTS_PER_BIT``)."""
    segment_starts: list[int]
    """First sample of each continuous segment (other systems' recordings with gaps; else [0])."""

    def __init__(self, path: Path, file_type: str, header: dict, source, files: list[Path], din_reader, warns,
                 foreign: ForeignData | None = None):
        self.path = path
        self._foreign = foreign
        self.gain = foreign.gain if foreign is not None else MICROVOLTS_PER_BIT
        self.segment_starts = list(foreign.segment_starts) if foreign is not None else [0]
        self.file_type = file_type
        self._full_header = header
        amp = [c for c in header["channels"] if c["signal_type"] == _AMPLIFIER]
        self.sampling_rate = float(header["sample_rate"])
        self.channel_names = [c["native_channel_name"] for c in amp]
        self.custom_channel_names = [c["custom_channel_name"] for c in amp]
        self.ports = [c["port_prefix"] for c in amp]
        self.native_orders = [int(c["native_order"]) for c in amp]
        self.amplifier = AmplifierView(source, str(path))
        self.n_samples = int(source.n_samples)
        self.files = files
        self._din_reader = din_reader
        self.warnings = list(warns)
        self.header = {
            "version": "%d.%d" % tuple(header["version"]) if header["version"] is not None else None,
            "sampling_rate": self.sampling_rate,
            "notch_filter_frequency": header["notch_filter_frequency"],
            "dsp_enabled": header["dsp_enabled"],
            "actual_dsp_cutoff_frequency": header["actual_dsp_cutoff_frequency"],
            "actual_lower_bandwidth": header["actual_lower_bandwidth"],
            "actual_upper_bandwidth": header["actual_upper_bandwidth"],
            "desired_dsp_cutoff_frequency": header["desired_dsp_cutoff_frequency"],
            "desired_lower_bandwidth": header["desired_lower_bandwidth"],
            "desired_upper_bandwidth": header["desired_upper_bandwidth"],
            "notes": [n for n in header["notes"]],
            "reference_channel": header["reference_channel"],
            "block_samples": header["block_samples"],
            "impedance_magnitudes": [c["electrode_impedance_magnitude"] for c in amp],
        }

    # ------------------------------------------------------------------------------------------
    @property
    def source(self):
        """The amplifier channels as a ``blechrs._native.SampleSource`` (for extract_electrodes)."""
        return self.amplifier.source

    def identity(self) -> str:
        """A short hash of which data this is: the raw files' names, sizes and modification times
        (ns), and the header's layout, rate, channels and length. Costs a stat per file; resume
        compares it, so replaced, grown or re-recorded files are never mixed with old results."""
        files = list(self.files)
        if self.file_type in (PER_CHANNEL, PER_SIGNAL):
            files.append(self.header_file)
        stats = []
        for f in map(Path, files):
            st = f.stat()
            stats.append([f.name, st.st_size, st.st_mtime_ns])
        ident: list = [self.file_type, self.sampling_rate, self.channel_names, self.n_samples, stats]
        if self._foreign is not None:  # its gain scales every waveform: a changed gain redoes extraction
            ident.append(self.gain)
        text = json.dumps(ident)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def header_file(self) -> Path:
        """The file whose header this recording's settings come from (what to name when they are
        wrong): info.rhd, or the first .rhd of a set (another system's: its first file, or the raw
        binary description)."""
        if self._foreign is not None:
            return self._foreign.header_file
        return Path(self.files[0]) if self.file_type == TRADITIONAL else Path(self.path) / "info.rhd"

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.sampling_rate

    @property
    def port_names(self) -> list[str]:
        """Ports in order of first appearance."""
        return list(dict.fromkeys(self.ports))

    @property
    def electrode_nums(self) -> list[str]:
        """Intan's number of each channel within its port ("000" of A-000); other systems' channels
        are numbered in order."""
        if self._foreign is not None:
            return [f"{i:03d}" for i in range(self.n_channels)]
        return [n.rsplit("-", 1)[-1] for n in self.channel_names]

    @property
    def filenames(self) -> list[str]:
        """Where each channel's samples live (the layout CSV's ``filename`` column)."""
        if self._foreign is not None:
            return list(self._foreign.channel_files)
        if self.file_type == PER_CHANNEL:
            return [f"amp-{n}.dat" for n in self.channel_names]
        if self.file_type == PER_SIGNAL:
            return ["amplifier.dat"] * self.n_channels
        return [Path(self.files[0]).name] * self.n_channels

    @cached_property
    def digital_inputs(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``dig_in_NN`` -> (onsets, offsets), int64 sample indices: onset = first high sample,
        offset = first low sample after it (``n_samples`` if still high at the end). Read on
        first use (the files are scanned once, in Rust)."""
        return self._din_reader()

    def read(self, channels, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Amplifier counts (int16), channels x samples."""
        return self.amplifier.read(channels, start, stop)

    def microvolts(self, channels, start: int = 0, stop: int | None = None) -> np.ndarray:
        return self.read(channels, start, stop).astype(np.float32) * np.float32(self.gain)

    def __repr__(self) -> str:
        return (f"Recording({str(self.path)!r}, {self.file_type!r}, {self.n_channels} channels, "
                f"{self.duration_s:.1f} s at {self.sampling_rate:g} Hz)")


# ----------------------------------------------------------------------------------------------
def _has_intan(directory: Path) -> bool:
    return any(p.suffix.lower() == ".rhd" or (p.name.startswith("amp-") and p.suffix == ".dat")
               or p.name == "amplifier.dat" for p in directory.iterdir())


def _detect(directory: Path) -> tuple[str, list[Path]]:
    if not directory.exists():
        raise RecordingError(f"{directory}: no such directory")
    if not directory.is_dir():
        raise RecordingError(f"{directory}: not a directory, an info.rhd or a .rhd file")
    entries = sorted(p for p in directory.iterdir() if p.is_file())
    rhd = [p for p in entries if p.suffix.lower() == ".rhd" and p.name != "info.rhd"]
    amp = [p for p in entries if p.name.startswith("amp-") and p.suffix == ".dat"]
    amplifier_dat = directory / "amplifier.dat"
    found = []
    if amp:
        found.append(PER_CHANNEL)
    if amplifier_dat.exists():
        found.append(PER_SIGNAL)
    if rhd:
        found.append(TRADITIONAL)
    if len(found) > 1:
        raise RecordingError(
            f"{directory}: two Intan layouts mixed ({' and '.join(found)}); keep one recording per directory"
        )
    if not found:
        if not any(directory.iterdir()):
            raise RecordingError(f"{directory}: empty directory, no Intan recording in it")
        raise RecordingError(
            f"{directory}: no Intan recording found (expected info.rhd with amp-*.dat or amplifier.dat, or .rhd files;"
            f" or Open Ephys .continuous, Neuralynx .ncs, or a raw binary file: blechrs init DIR --format binary ...)"
        )
    kind = found[0]
    if kind == TRADITIONAL:
        return kind, rhd
    if not (directory / "info.rhd").exists():
        raise RecordingError(
            f"{directory / 'info.rhd'}: missing; the {kind} .dat files cannot be read without their header"
        )
    return kind, amp if kind == PER_CHANNEL else [amplifier_dat]


def _edges_to_dict(names: list[str], edges) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for nm, (on, off) in zip(names, edges):
        out[nm] = (np.asarray(on, dtype=np.int64), np.asarray(off, dtype=np.int64))
    return dict(sorted(out.items()))


def _time_warnings(path: Path, n_amp: int, warns: list[str]) -> None:
    try:
        n, jumps = _native_call(_native.intan_time_dat_jumps, str(path))
    except RecordingError as e:  # time stamps are only checked; the amplifier data stay readable
        warns.append(f"{e}; dropped samples cannot be detected")
        return
    if n != n_amp:
        warns.append(f"{path}: {n} time stamps but {n_amp} amplifier samples")
    if jumps:
        warns.append(_jump_message(path, jumps))


def _jump_message(path, jumps) -> str:
    shown = ", ".join(f"sample {i} ({b} -> {a})" for i, b, a in jumps[:5])
    more = f" and {len(jumps) - 5} more" if len(jumps) > 5 else ""
    return f"{path}: time stamps jump at {shown}{more}: samples were dropped, so times after them are shifted"


def _check_din_orders(header_file: Path, din: list[dict]) -> None:
    """A digital input is bit ``native_order`` of a 16-bit word: any other order is a damaged
    header (it failed later as "negative shift count", naming no file)."""
    for c in din:
        if not 0 <= int(c["native_order"]) <= 15:
            raise RecordingError(f"{header_file}: digital input {c['native_channel_name']} has native order "
                                 f"{c['native_order']}, not 0-15 (a damaged header?)")


def _check_rhd_set(parts, block_samples: int, jumps) -> None:
    """Consecutive .rhd files continue each other's time stamps. Where a file starts, time stamps
    that jump back or ahead by a whole file or more mean the files are out of order or one is
    missing; either would be sorted across as if continuous, so both are errors. A shorter jump
    (dropped samples) stays a warning."""
    if len(parts) < 2:
        return
    starts = {int(first): path for path, first, _ in parts[1:]}
    shortest = min(int(blocks) for _, _, blocks in parts[:-1]) * block_samples
    for sample, before, after in jumps:
        path = starts.get(int(sample))
        gap = int(after) - int(before) - 1
        if path is None or abs(gap) < shortest:
            continue
        if gap < 0:
            raise RecordingError(f"{path}: its time stamps go back from {before} to {after} where it starts: the .rhd "
                                 f"files are out of order (they are read in name order)")
        raise RecordingError(f"{path}: {gap} samples are missing before it (time stamps {before} -> {after}), as many "
                             f"as a whole file holds: is a file of the set missing, or are the files out of order?")


def _open_foreign(directory: Path, kind: str) -> Recording:
    fd = open_foreign(directory, kind)
    channels = [dict(signal_type=_AMPLIFIER, native_channel_name=n, custom_channel_name=n, port_prefix="A",
                     native_order=i, electrode_impedance_magnitude=float("nan")) for i, n in enumerate(fd.channel_names)]
    header: dict[str, Any] = dict(version=None, sample_rate=fd.sampling_rate, channels=channels, notes=[],
                                  reference_channel="", block_samples=None)
    for k in ("notch_filter_frequency", "dsp_enabled", "actual_dsp_cutoff_frequency", "actual_lower_bandwidth",
              "actual_upper_bandwidth", "desired_dsp_cutoff_frequency", "desired_lower_bandwidth",
              "desired_upper_bandwidth"):
        header[k] = None
    for w in fd.warnings:
        warnings.warn(w, RecordingWarning, stacklevel=3)
    return Recording(directory, fd.kind, header, fd.source, list(fd.files), lambda: {}, fd.warnings, foreign=fd)


def open_recording(path: str | os.PathLike) -> Recording:
    """Open a recording directory: Intan (or its info.rhd, or a single .rhd file), else another
    system's recording (:mod:`blechrs.io.foreign_recording`)."""
    path = Path(path)
    if path.is_dir() and not _has_intan(path):
        kind = detect_format(path)
        if kind is not None:
            return _open_foreign(path, kind)
    if path.is_file():
        if path.name == "info.rhd":
            path = path.parent
            kind, files = _detect(path)
        elif path.suffix.lower() == ".rhd":
            kind, files = TRADITIONAL, [path]
        else:
            raise RecordingError(f"{path}: not an Intan recording (give its directory, info.rhd or a .rhd file)")
    else:
        kind, files = _detect(path)

    warns: list[str] = []
    if kind == TRADITIONAL:
        rec = _native_call(_native.RhdRecording, [str(f) for f in files])
        header = rec.header
        source = rec.source
        warns += list(rec.warnings)
        jumps = _native_call(rec.timestamp_jumps)
        _check_rhd_set(rec.parts, int(header["block_samples"]), jumps)
        if jumps:
            warns.append(_jump_message(files[0] if len(files) == 1 else path, jumps))
        din = [c for c in header["channels"] if c["signal_type"] == _DIG_IN]
        _check_din_orders(files[0], din)

        def din_reader(rec=rec, din=din):
            edges = _native_call(rec.digital_in_edges, [1 << c["native_order"] for c in din])
            return _edges_to_dict([din_name(c["native_channel_name"]) for c in din], edges)

    else:
        directory = path
        header = _native_call(_native.intan_read_header, str(directory / "info.rhd"))
        amp = [c for c in header["channels"] if c["signal_type"] == _AMPLIFIER]
        din = [c for c in header["channels"] if c["signal_type"] == _DIG_IN]
        if kind == PER_CHANNEL:
            expected = [directory / f"amp-{c['native_channel_name']}.dat" for c in amp]
            missing = [p for p in expected if not p.exists()]
            if missing:
                raise RecordingError(
                    f"{missing[0]}: missing, but {directory / 'info.rhd'} lists channel "
                    f"{missing[0].stem[4:]}" + (f" ({len(missing)} channel files missing)" if len(missing) > 1 else "")
                )
            extra = sorted(set(files) - set(expected))
            if extra:
                warns.append(f"{extra[0]}: not listed in info.rhd; ignored ({len(extra)} such files)")
            files = expected
            source = _native_call(_native.intan_per_channel_source, [str(p) for p in files])
            din_files = {}
            for p in sorted(directory.glob("board-*.dat")):
                m = _DIN_FILE.match(p.name)
                if m:
                    nm = f"dig_in_{int(m.group(2)):02d}"
                    if nm in din_files:
                        raise RecordingError(f"{p}: digital input {nm} also in {din_files[nm].name}")
                    din_files[nm] = p

            def din_reader(din_files=din_files, n=source.n_samples):
                out = {}
                for nm, p in din_files.items():
                    m, edges = _native_call(_native.intan_word_file_edges, str(p), [0xFFFF])
                    if m != n:
                        raise RecordingError(f"{p}: {m} samples but the amplifier files have {n}")
                    out[nm] = edges[0]
                return _edges_to_dict(list(out), list(out.values()))
        else:
            _check_din_orders(directory / "info.rhd", din)
            source = _native_call(_native.intan_per_signal_source, str(files[0]), len(amp))
            dpath = directory / "digitalin.dat"

            def din_reader(dpath=dpath, din=din, n=source.n_samples):
                if not dpath.exists():
                    return {}
                if din:
                    names = [din_name(c["native_channel_name"]) for c in din]
                    masks = [1 << c["native_order"] for c in din]
                else:  # no header record: every bit that ever goes high is an input
                    names = [f"dig_in_{k:02d}" for k in range(16)]
                    masks = [1 << k for k in range(16)]
                m, edges = _native_call(_native.intan_word_file_edges, str(dpath), masks)
                if m != n:
                    raise RecordingError(f"{dpath}: {m} samples but amplifier.dat has {n}")
                d = _edges_to_dict(names, edges)
                return d if din else {k: v for k, v in d.items() if len(v[0])}

        if (directory / "time.dat").exists():
            _time_warnings(directory / "time.dat", source.n_samples, warns)
        else:
            warns.append(f"{directory / 'time.dat'}: missing; dropped samples cannot be detected")

    for w in warns:
        warnings.warn(w, RecordingWarning, stacklevel=2)
    return Recording(path, kind, header, source, list(files), din_reader, warns)


# ----------------------------------------------------------------------------------------------
def copy_raw(recording: Recording, h5_path: str | os.PathLike, electrodes=None, chunk_samples: int = 1 << 20,
             progress=None) -> list[str]:
    """Write ``/raw/electrodeNN`` (int32 counts, as blech_clust's init does) into an HDF5 file,
    for people who use blech_clust's downstream tools (``--copy-raw``). Existing nodes are
    replaced. Returns the node paths written."""
    import tables

    electrodes = range(recording.n_channels) if electrodes is None else [int(e) for e in electrodes]
    written = []
    with tables.open_file(str(h5_path), mode="a") as h5:
        if "/raw" not in h5:
            h5.create_group("/", "raw")
        n = recording.n_samples
        for e in electrodes:
            name = f"electrode{e:02d}"
            if f"/raw/{name}" in h5:
                h5.remove_node("/raw", name)
            arr = h5.create_earray("/raw", name, tables.Int32Atom(), shape=(0,), expectedrows=n)
            for s0 in range(0, n, chunk_samples):
                s1 = min(n, s0 + chunk_samples)
                arr.append(recording.read([e], s0, s1)[0].astype(np.int32))
            written.append(f"/raw/{name}")
            if progress is not None:
                progress(len(written), len(electrodes))
    return written
