"""The NWB conversion's parts on their own: the .info fields NWB/DANDI needs (what is missing or
in the wrong form is named, with the file), and the raw-data iterator, which reads one buffer at
a time and yields exactly the .dat files' samples (numpy)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from blechrs.errors import NwbError
from blechrs.interop.nwb import amplifier_chunks, nwb_metadata
from blechrs.io import open_recording
from support.sorting_reference import simulated_folder

GOOD = {
    "date": "240301", "timestamp": "140500",
    "subject": {"subject_id": "rat7", "species": "Rattus norvegicus", "sex": "M", "age": "", "date_of_birth": "2023-12-01"},
    "session": {"description": "taste responses", "start_time": "", "experimenter": "Doe, Jane", "keywords": []},
}


def _with(section, **fields):
    return {**GOOD, section: {**GOOD[section], **fields}}


def test_good_fields_and_their_defaults():
    m = nwb_metadata(GOOD, "x.info")
    assert m.session_start_time.replace(tzinfo=None) == dt.datetime(2024, 3, 1, 14, 5, 0)
    assert m.session_start_time.tzinfo is not None  # a naive time is taken as local time
    assert m.subject["date_of_birth"].date() == dt.date(2023, 12, 1) and "age" not in m.subject
    assert m.session == {"experimenter": ["Doe, Jane"]}
    assert m.device["manufacturer"] == "Intan Technologies"
    explicit = nwb_metadata(_with("session", start_time="2024-03-02T09:00:00+01:00"), "x.info")
    assert explicit.session_start_time == dt.datetime(2024, 3, 2, 8, 0, tzinfo=dt.timezone.utc)
    utc = nwb_metadata(_with("session", start_time="2024-03-02T08:00:00Z"), "x.info")
    assert utc.session_start_time == explicit.session_start_time


@pytest.mark.parametrize("section, fields, message", [
    ("subject", {"species": "rat"}, "subject.species 'rat' is not a Latin name"),
    ("subject", {"sex": "female"}, "subject.sex 'female' is not one of M, F"),
    ("subject", {"age": "90 days"}, "subject.age '90 days' is not an ISO 8601 duration"),
    ("subject", {"date_of_birth": "1st of May"}, "subject.date_of_birth '1st of May' is not an ISO 8601 date"),
    ("subject", {"weight": "350"}, "subject.weight '350' is not a number and a unit"),
    ("session", {"start_time": "yesterday"}, "session.start_time 'yesterday' is not an ISO 8601"),
    ("session", {"start_time": "2999-01-01T10:00:00"}, "session start time 2999-01-01T10:00:00"),
    ("subject", {"subject_id": "", "date_of_birth": ""}, "missing subject.subject_id, subject.age (or subject.date_of_birth)"),
])
def test_a_wrong_or_missing_field_is_named_with_the_file(section, fields, message):
    with pytest.raises(NwbError) as e:
        nwb_metadata(_with(section, **fields), "/data/rat7.info")
    assert str(e.value).startswith("/data/rat7.info: ") and message in str(e.value) and "\n" not in str(e.value)


def test_age_ranges_and_no_start_time():
    assert nwb_metadata(_with("subject", age="P90D/P120D", date_of_birth=""), "x").subject["age"] == "P90D/P120D"
    with pytest.raises(NwbError, match="session.start_time"):
        nwb_metadata({**GOOD, "date": ""}, "x")


def test_raw_chunks_are_the_samples_one_buffer_at_a_time(tmp_path):
    simulated_folder(tmp_path, seed=1, n_channels=4, duration_s=0.5)
    rec = open_recording(tmp_path)
    spans = []
    read = rec.read

    def spy(channels, start=0, stop=None):
        spans.append(stop - start)
        return read(channels, start, stop)

    rec.read = spy
    seen = []
    it = amplifier_chunks(rec, [0, 2, 3], progress=lambda stage, done, total: seen.append((done, total)),
                          chunk_bytes=600, chunks_per_buffer=4)
    assert it.chunk_shape == (100, 3) and it.buffer_shape == (400, 3)
    out = np.zeros((rec.n_samples, 3), np.int16)
    for chunk in it:
        out[chunk.selection] = chunk.data
    for k, c in enumerate([0, 2, 3]):
        assert np.array_equal(out[:, k], np.fromfile(tmp_path / f"amp-A-00{c}.dat", dtype=np.int16))
    assert max(spans) == 400 and len(spans) == -(-rec.n_samples // 400)
    assert seen[-1] == (rec.n_samples, rec.n_samples)
