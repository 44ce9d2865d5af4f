"""Tag <-> metadata mapping (pure Python, no GNU Radio)."""

import pytest

from diffwireless.recording import Annotation, Capture
from diffwireless.tags import (annotation_from_tag, annotation_tag_value, capture_tags, datetime_from_rx_time,
                               format_datetime, parse_datetime)


def test_datetime_keeps_nanoseconds_both_ways():
    secs, frac = parse_datetime("2022-03-27T10:00:00.123456789Z")
    assert secs == 1648375200 and frac == pytest.approx(0.123456789, abs=1e-12)
    assert format_datetime(secs, frac) == "2022-03-27T10:00:00.123456789Z"


def test_datetime_with_zone_offset_is_converted_to_utc():
    assert parse_datetime("2022-03-27T12:00:00+02:00")[0] == 1648375200


def test_capture_tags_state_only_what_the_recording_knows():
    assert capture_tags(Capture(0), None) == []
    tags = dict(capture_tags(Capture(0, 1e9, "2022-03-27T10:00:00Z"), 2e6))
    assert tags == {"rx_rate": 2e6, "rx_freq": 1e9, "rx_time": (1648375200, 0.0)}


def test_annotation_tag_value_drops_core_prefix_and_keeps_namespaces():
    ann = Annotation(5, 10, {"core:label": "burst", "diffwireless:snr_db": 3.0})
    assert annotation_tag_value(ann) == {"sample_count": 10, "label": "burst", "diffwireless:snr_db": 3.0}


def test_annotation_from_dict_tag_and_event_and_plain_value():
    assert annotation_from_tag("annotation", {"sample_count": 4, "label": "x"}) == (4, {"label": "x"})
    assert annotation_from_tag("event", {"start": 100, "end": 160, "peak": 9.0}) == (60, {"peak": 9.0,
                                                                                         "label": "event"})
    assert annotation_from_tag("snr_db", 12.5) == (1, {"label": "snr_db", "comment": "12.5"})


def test_rx_time_device_clocks_are_not_written_as_utc():
    assert datetime_from_rx_time((12, 0.5)) is None
    assert datetime_from_rx_time((1648375200, 0.5)) == "2022-03-27T10:00:00.500000000Z"
    assert datetime_from_rx_time("garbage") is None
