"""SigMF and raw recordings in the core: round trips, captures, annotations, and one clear error per bad input."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from diffwireless import RecordingError, SigMFRecording, SigMFWriter, open_recording
from conftest import ROOT, random_iq


@pytest.mark.parametrize("datatype", ["cf32_le", "cf32_be", "cf64_le", "ci16_le", "ci16_be", "ci8", "cu8",
                                      "cu16_le", "cu16_be"])
def test_write_then_read_gives_the_samples_back(make_recording, datatype):
    x = random_iq(5000, seed=3, scale=0.3)
    meta = make_recording("rt", x, datatype)
    rec = SigMFRecording(meta)
    assert rec.num_samples == 5000 and rec.datatype.name == datatype
    y = rec.read(0, rec.num_samples)
    bits = rec.datatype.bits if rec.datatype.kind != "f" else 24
    assert np.max(np.abs(y - x)) <= 1.01 / 2 ** (bits - 1)
    # Reads at any offset agree with the whole read.
    np.testing.assert_array_equal(rec.read(1234, 100), y[1234:1334])
    assert rec.read(4990, 100).size == 10


def test_metadata_is_valid_sigmf_with_sample_rate_captures_and_annotations(make_recording):
    meta = make_recording("m", random_iq(100), sample_rate=2.4e6,
                          captures=[{"sample_start": 0, "frequency_hz": 433.92e6},
                                    {"sample_start": 60, "frequency_hz": 868e6,
                                     "datetime": "2026-11-23T12:00:00.000000001Z"}],
                          annotations=[{"sample_start": 10, "sample_count": 5, "label": "burst", "snr_db": 7.5}])
    doc = json.loads(meta.read_text())
    assert doc["global"]["core:sample_rate"] == 2.4e6
    assert "core:sha512" in doc["global"]
    assert doc["annotations"][0]["diffwireless:snr_db"] == 7.5
    assert doc["global"]["core:extensions"][0]["name"] == "diffwireless"
    from sigmf import validate

    validate.validate(doc)  # the sigmf package's own schema check
    rec = SigMFRecording(meta)
    assert [c.frequency_hz for c in rec.captures] == [433.92e6, 868e6]
    assert rec.captures[1].datetime == "2026-11-23T12:00:00.000000001Z"
    assert rec.annotations[0].label == "burst" and rec.annotations[0].sample_count == 5


def test_header_bytes_of_each_capture_are_skipped(tmp_path):
    # Non-conforming dataset: 8 header bytes before each of two capture segments, 3 trailing bytes.
    x = random_iq(30, seed=4)
    raw = cf32_bytes(x)
    data = b"H" * 8 + raw[: 10 * 8] + b"h" * 8 + raw[10 * 8:] + b"TTT"
    (tmp_path / "ncd.sigmf-data").write_bytes(data)
    meta = {"global": {"core:datatype": "cf32_le", "core:version": "1.2.0", "core:trailing_bytes": 3},
            "captures": [{"core:sample_start": 0, "core:header_bytes": 8},
                         {"core:sample_start": 10, "core:header_bytes": 8}],
            "annotations": []}
    (tmp_path / "ncd.sigmf-meta").write_text(json.dumps(meta))
    rec = SigMFRecording(tmp_path / "ncd.sigmf-meta")
    assert rec.num_samples == 30
    np.testing.assert_array_equal(rec.read(0, 30), x)
    np.testing.assert_array_equal(rec.read(8, 4), x[8:12])


def cf32_bytes(x):
    return x.astype("<c8").tobytes()


def test_raw_file_with_explicit_format(tmp_path):
    x = random_iq(777, seed=5)
    path = tmp_path / "capture.cfile"
    x.astype("<c8").tofile(path)
    rec = open_recording(path, datatype="cf32_le", sample_rate=1e6, frequency_hz=100e6)
    assert rec.num_samples == 777 and rec.sample_rate == 1e6 and rec.captures[0].frequency_hz == 100e6
    np.testing.assert_array_equal(rec.read(0, 777), x)


def _write_meta(tmp_path, meta_text, data=b"\0" * 16, name="bad"):
    (tmp_path / f"{name}.sigmf-meta").write_text(meta_text)
    if data is not None:
        (tmp_path / f"{name}.sigmf-data").write_bytes(data)
    return tmp_path / f"{name}.sigmf-meta"


GOOD_META = {"global": {"core:datatype": "cf32_le", "core:version": "1.2.0"}, "captures": [], "annotations": []}


def test_missing_data_file_names_the_file(tmp_path):
    meta = _write_meta(tmp_path, json.dumps(GOOD_META), data=None)
    with pytest.raises(RecordingError, match=r"SigMF data file not found: .*bad\.sigmf-data"):
        SigMFRecording(meta)


def test_missing_meta_file_names_the_file(tmp_path):
    with pytest.raises(RecordingError, match=r"metadata file not found: .*nothing\.sigmf-meta"):
        SigMFRecording(tmp_path / "nothing")


def test_meta_that_is_not_json_says_where(tmp_path):
    meta = _write_meta(tmp_path, '{"global": {"core:datatype": "cf32_le",\n  oops}')
    with pytest.raises(RecordingError, match=r"bad\.sigmf-meta: metadata is not valid JSON: .* line 2"):
        SigMFRecording(meta)


def test_unknown_datatype_is_named(tmp_path):
    doc = json.loads(json.dumps(GOOD_META))
    doc["global"]["core:datatype"] = "cf17_le"
    with pytest.raises(RecordingError, match=r"bad\.sigmf-meta: unknown datatype 'cf17_le'"):
        SigMFRecording(_write_meta(tmp_path, json.dumps(doc)))


def test_data_length_not_a_whole_number_of_samples(tmp_path):
    meta = _write_meta(tmp_path, json.dumps(GOOD_META), data=b"\0" * 21)
    with pytest.raises(RecordingError,
                       match=r"21 bytes of samples is not a multiple of the 8-byte sample size.*\(5 bytes left"):
        SigMFRecording(meta)


def test_schema_violation_is_reported_with_its_place(tmp_path):
    doc = json.loads(json.dumps(GOOD_META))
    doc["global"]["core:sample_rate"] = "fast"
    with pytest.raises(RecordingError, match=r"not valid SigMF metadata at global/core:sample_rate"):
        SigMFRecording(_write_meta(tmp_path, json.dumps(doc)))


def test_capture_past_the_end_is_rejected(tmp_path):
    doc = json.loads(json.dumps(GOOD_META))
    doc["captures"] = [{"core:sample_start": 0}, {"core:sample_start": 99}]
    with pytest.raises(RecordingError, match="capture starts at sample 99, past the end of the data \\(2 samples\\)"):
        SigMFRecording(_write_meta(tmp_path, json.dumps(doc)))


def test_raw_file_of_the_wrong_length_for_its_format(tmp_path):
    path = tmp_path / "x.raw"
    path.write_bytes(b"\0" * 7)
    with pytest.raises(RecordingError, match="7 bytes is not a multiple of the 4-byte sample size of ci16_le"):
        open_recording(path, datatype="ci16_le")


def test_writer_refuses_to_overwrite_unless_asked(tmp_path):
    SigMFWriter(tmp_path / "w").close()
    with pytest.raises(RecordingError, match="exists; remove it or allow overwriting"):
        SigMFWriter(tmp_path / "w")
    SigMFWriter(tmp_path / "w", overwrite=True).close()


def test_core_library_never_imports_gnuradio():
    core = ROOT / "python"
    modules = sorted(".".join(p.relative_to(core).with_suffix("").parts).removesuffix(".__init__")
                     for p in (core / "diffwireless").rglob("*.py"))
    assert len(modules) > 30 and "diffwireless.engine" in modules
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "    assert 'gnuradio' not in sys.modules, name + ' imported gnuradio'\n"
            "print(len(sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    # Nor does it name a module of the GNU Radio layer (that layer registers its tasks and recipes itself).
    import_string = re.compile(r"""["']gnuradio\.diffwireless[\w.]*(:\w+)?["']|import_module\(\s*["']gnuradio""")
    named = [p for p in (core / "diffwireless").rglob("*.py") if import_string.search(p.read_text())]
    assert not named, named


def test_metadata_that_opens_but_is_unusable_is_one_error_naming_the_file(tmp_path, make_recording):
    meta = make_recording("m", np.zeros(16, np.complex64), sample_rate=1e3)
    good = json.loads(meta.read_text())

    def variant(name, change):
        doc = json.loads(json.dumps(good))
        change(doc)
        path = tmp_path / f"{name}.sigmf-meta"
        path.write_text(json.dumps(doc))
        (tmp_path / f"{name}.sigmf-data").write_bytes((tmp_path / "m.sigmf-data").read_bytes())
        return path

    cases = {
        "old_datetime": lambda d: d["captures"][0].update({"core:datetime": "1955-01-01T00:00:00Z"}),
        "bad_datetime": lambda d: d["captures"][0].update({"core:datetime": "1955"}),
        "dotdot": lambda d: d["global"].update({"core:dataset": "../../etc/passwd"}),
        "huge_int": lambda d: d["annotations"].append({"core:sample_start": 0, "x:big": 2 ** 70}),
    }
    for name, change in cases.items():
        path = variant(name, change)
        try:
            SigMFRecording(path)
        except RecordingError as exc:
            assert f"{name}.sigmf-meta" in str(exc) or name == "dotdot" and "passwd" in str(exc), (name, exc)
        # a file that opens is fine too, as long as nothing but RecordingError comes out
    deep = tmp_path / "deep.sigmf-meta"
    deep.write_text('{"global": {"core:datatype": "cf32_le", "core:version": "1.2.0", "x:deep": '
                    + "[" * 200_000 + "]" * 200_000 + "}}")
    with pytest.raises(RecordingError, match="deep.sigmf-meta"):
        SigMFRecording(deep)
    with pytest.raises(RecordingError, match=r"old_datetime.sigmf-meta: capture at sample 0: .*before 1970"):
        SigMFRecording(tmp_path / "old_datetime.sigmf-meta")


def test_a_checkpointed_recording_says_it_is_in_progress_and_loses_only_a_partial_sample(tmp_path):
    writer = SigMFWriter(tmp_path / "live", "ci16_le", 48e3)
    writer.write(random_iq(1000))
    writer.set_global(skipped_values=2)
    writer.checkpoint()
    with open(writer.data_path, "ab") as fp:  # a process killed in the middle of a sample's bytes
        fp.write(b"\x01\x02\x03")
    rec = SigMFRecording(tmp_path / "live")
    assert rec.in_progress and rec.num_samples == 1000 and rec.sample_rate == 48e3
    assert rec.metadata["global"]["diffwireless:skipped_values"] == 2
    with pytest.raises(RecordingError, match="cannot be written as JSON"):
        writer.set_global(peak=float("nan"))
    writer._file.truncate(1000 * 4)
    writer.close()
    rec = SigMFRecording(tmp_path / "live")
    assert not rec.in_progress and "core:sha512" in rec.metadata["global"]
    # A closed recording with a partial sample is an error, as before: nothing says a recorder was cut short.
    with open(writer.data_path, "ab") as fp:
        fp.write(b"\x01")
    with pytest.raises(RecordingError, match="not a multiple"):
        SigMFRecording(tmp_path / "live")
