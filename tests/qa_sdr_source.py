"""QA: sdr_source without hardware fails at once with one actionable message (CI has no SDR attached)."""

import pytest

from gnuradio import diffwireless


@pytest.mark.parametrize("device", ["driver=hackrf", "driver=uhd", "driver=rtlsdr,serial=00000001"])
def test_no_sdr_attached_names_the_device_and_how_to_list_devices(device):
    if _attached(device):
        pytest.skip(f"an SDR matching {device} is attached to this machine")
    with pytest.raises(diffwireless.SDRNotFoundError) as info:
        diffwireless.sdr_source(device, frequency=433.92e6, sample_rate=2e6)
    message = str(info.value)
    assert f"'{device}'" in message and "SoapySDRUtil --find" in message
    assert "\n" not in message  # one line, readable in GRC's console


def _attached(device):
    from gnuradio.diffwireless.sdr_source import find_devices

    return bool(find_devices(device))
