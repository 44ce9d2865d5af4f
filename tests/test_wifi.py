"""The 802.11 legacy-preamble receiver (diffwireless.wifi) and dw-wifi: synthetic frames with known content, and the
developers' real captures when ../shared is there."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffwireless import wifi
from diffwireless.engine import DenoiseEngine
from diffwireless.fading import TDL, OFDMGrid
from diffwireless.recording import open_recording
from conftest import SHARED_CAPTURES

ALL_BINS = OFDMGrid(n_fft=64, carriers=tuple(range(-32, 32)), n_symbols=1)


@pytest.fixture(scope="module")
def engine():
    e = DenoiseEngine("cpu").start()
    yield e
    e.stop()


def test_pilot_polarity_is_the_scrambler_sequence():
    p = wifi.pilot_polarity()
    assert p.shape == (127,)
    # The standard's sequence opens 1,1,1,1,-1,-1,-1,1,-1,-1,-1,-1,1,1,-1,1; a maximal-length sequence of 127
    # bits has 64 ones, which map to -1.
    assert list(p[:16]) == [1, 1, 1, 1, -1, -1, -1, 1, -1, -1, -1, -1, 1, 1, -1, 1]
    assert int(np.sum(p == -1)) == 64


@pytest.mark.parametrize("rate,length", [(6, 1), (12, 100), (24, 1500), (54, 4095)])
def test_signal_field_round_trip_and_three_flipped_coded_bits(rate, length):
    bits = wifi.signal_bits(rate, length)
    coded = wifi.conv_encode(bits)
    soft = np.empty(48)
    soft[wifi.signal_interleave_index()] = 2.0 * coded - 1.0
    soft[[3, 20, 41]] *= -1  # free distance 10: three errors are corrected
    sig = wifi.decode_signal(soft)
    assert sig.valid and sig.rate_mbps == rate and sig.length_bytes == length


def test_signal_field_with_bad_parity_is_flagged():
    bits = wifi.signal_bits(6, 100)
    bits[17] ^= 1
    soft = np.empty(48)
    soft[wifi.signal_interleave_index()] = 2.0 * wifi.conv_encode(bits) - 1.0
    sig = wifi.decode_signal(soft)
    assert not sig.parity_ok and not sig.valid and sig.n_data_symbols() == 0


def test_flat_channel_frames_decode_and_meet_the_evm_of_ls_estimation():
    """At 25 dB per carrier, with LS from two training symbols (noise variance halved) the EVM is 1.5 / SNR."""
    rng = np.random.default_rng(4)
    errors = power = 0.0
    for _ in range(20):
        iq, sent = wifi.synthesize_frame(24, 8, np.ones(64), 25.0, 30e3, rng)
        found = wifi.detect(iq)
        assert len(found) == 1
        frame = wifi.cut_frame(iq, *found[0])
        assert abs(frame.cfo_hz - 30e3) < 1000  # the estimate's std: about 300 Hz at 25 dB
        taps, _ = wifi.ls_estimate(frame.ltf)
        rep = wifi.evaluate_frame(frame, taps)
        assert rep.signal.valid and rep.signal.length_bytes == sent.length_bytes and rep.n_symbols == 1 + 8
        errors += rep.symbol_errors.sum()
        power += rep.symbol_power.sum()
    assert abs(10 * np.log10(errors / power) - 10 * np.log10(1.5 * 10 ** -2.5)) < 0.7


def test_noise_alone_is_not_a_frame():
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(20000) + 1j * rng.standard_normal(20000)).astype(np.complex64)
    assert wifi.detect(noise) == []


def test_diffusion_estimate_beats_ls_on_tdl_frames(engine):
    """Against the true channel as the FFT window sees it (its timing: a phase ramp), 10 dB per carrier."""
    rng = np.random.default_rng(5)
    diffusion = wifi.DiffusionTaps()
    k = np.asarray(wifi.CARRIERS)
    b = k + 32
    err = {"ls": 0.0, "diffusion": 0.0}
    energy, used = 0.0, 0
    for _ in range(30):
        h = TDL("B", 50e-9, 0.0).sample(ALL_BINS, 1, rng)[0, :, 0]
        iq, _ = wifi.synthesize_frame(6, 2, h, 10.0, 0.0, rng)
        found = wifi.detect(iq)
        if not found:  # a deeply faded frame can go unseen at 10 dB
            continue
        used += 1
        frame = wifi.cut_frame(iq, *found[0])
        # The training symbol starts at lead 400 + STF 160 + GI2 32; the window opens 3 samples before the found one.
        truth = h[b] * np.exp(2j * np.pi * k * (frame.start - 3 - 592) / 64)
        ls, noise_var = wifi.ls_estimate(frame.ltf)
        est = {"ls": ls[b], "diffusion": diffusion(ls, noise_var, engine)[b]}
        for name, e in est.items():
            # Less the common phase: the residual frequency offset turns the frame, which the pilots track.
            e = e * np.exp(1j * np.angle(np.vdot(e, truth)))
            err[name] += float(np.sum(np.abs(e - truth) ** 2))
        energy += float(np.sum(np.abs(truth) ** 2))
    assert used >= 20
    ls_db, diff_db = (10 * np.log10(err[m] / energy) for m in ("ls", "diffusion"))
    # LS of two averaged symbols at 10.9 dB per bin (52/64 of the 10 dB noise): -13.9 dB, less where the frames
    # that faded out of detection are missing.
    assert -16.5 < ls_db < -12.5, ls_db
    print(f"LS {ls_db:.2f} dB, diffusion {diff_db:.2f} dB")
    assert diff_db < ls_db - 2.0


WIFI = SHARED_CAPTURES / "wifi-ofdm"
CONDUCTED_24 = sorted(WIFI.glob("conducted_dot11a_24mbps*.sigmf-meta")) if WIFI.is_dir() else []


@pytest.mark.skipif(not CONDUCTED_24, reason="../shared/captures/wifi-ofdm is absent (a user's clone)")
def test_real_conducted_capture_every_frame_decodes_with_each_estimate(engine):
    rec = open_recording(CONDUCTED_24[0])
    iq = rec.read(0, rec.num_samples)
    found = wifi.detect(iq)
    assert len(found) >= 15
    diffusion = wifi.DiffusionTaps()
    evm = {"ls": [], "diffusion": []}
    for start, cfo in found:
        frame = wifi.cut_frame(iq, start, cfo)
        ls, noise_var = wifi.ls_estimate(frame.ltf)
        for name, taps in (("ls", ls), ("diffusion", diffusion(ls, noise_var, engine))):
            rep = wifi.evaluate_frame(frame, taps)
            assert rep.signal.valid and rep.signal.rate_mbps == 24 and not rep.ht
            evm[name].append(rep.evm_db)
    assert np.mean(evm["diffusion"]) <= np.mean(evm["ls"]) + 0.1


def test_dw_wifi_synthetic_writes_rows_for_each_estimator(tmp_path):
    from gnuradio.diffwireless.apps.wifi import ESTIMATORS, main

    out = tmp_path / "wifi.json"
    assert main(["--add-snr-db", "20", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    (res,) = doc["results"]
    assert [r["estimator"] for r in res["rows"]] == list(ESTIMATORS)
    assert res["frames_detected"] >= 35
    for r in res["rows"]:
        assert r["ci_low"] <= r["evm_db"] <= r["ci_high"] and r["signal_valid"] >= 35


def test_dw_wifi_bad_recording_is_one_clear_error(tmp_path, capsys):
    from gnuradio.diffwireless.apps.wifi import main

    bad = tmp_path / "x.sigmf-meta"
    bad.write_text("{not json")
    assert main([str(bad)]) == 1
    assert "x.sigmf-meta" in capsys.readouterr().err


def test_dw_wifi_says_where_diffusion_earns_its_place_against_the_robust_lmmse():
    from gnuradio.diffwireless.apps.wifi import verdict

    def result(gain):
        return {"recording": "rec", "added_noise_snr_db": 10.0, "rows": [{"gain_over_lmmse_robust_db": gain}]}

    better, level, worse = verdict([result((0.5, 0.2, 0.8)), result((0.1, -0.2, 0.4)), result((-0.6, -0.9, -0.3))])
    assert better == "rec (10 dB): diffusion earns its place, 0.50 dB better EVM than the robust LMMSE"
    assert "level with the robust LMMSE" in level and "[-0.20, 0.40]" in level
    assert "does NOT earn its place, 0.60 dB worse" in worse and "use the robust LMMSE" in worse
