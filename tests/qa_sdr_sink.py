"""QA: sdr_sink without hardware fails at once with one actionable message (CI has no SDR attached)."""

import pytest

from gnuradio import diffwireless


@pytest.mark.parametrize("device", ["driver=hackrf", "driver=uhd", "driver=lime,serial=1"])
def test_no_sdr_attached_names_the_device_and_how_to_list_devices(device):
    from gnuradio.diffwireless.sdr_source import find_devices

    if find_devices(device):
        pytest.skip(f"an SDR matching {device} is attached to this machine")
    with pytest.raises(diffwireless.SDRNotFoundError) as info:
        diffwireless.sdr_sink(device, frequency=915e6, sample_rate=2e6)
    message = str(info.value)
    assert f"'{device}'" in message and "SoapySDRUtil --find" in message and "\n" not in message


def test_bad_parameters_fail_before_the_device_is_looked_for():
    for kw, name in (({"sample_rate": 0}, "sample_rate"), ({"frequency": float("nan")}, "frequency"),
                     ({"gain": float("inf")}, "gain")):
        with pytest.raises(ValueError, match=f"sdr_sink: {name}"):
            diffwireless.sdr_sink("driver=hackrf", **kw)
