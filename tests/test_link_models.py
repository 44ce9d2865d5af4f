"""The core's constellations and link impairments against GNU Radio's own blocks (gnuradio.digital, gr-channels)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gnuradio import analog, blocks, channels, digital, gr

from diffwireless.bench.results import wilson_interval
from diffwireless.channel import DEFAULT_PROFILE, Impairments, add_noise, simulate
from diffwireless.constellations import CONSTELLATIONS, exact_awgn_ber, noise_var

GR_OBJECTS = {
    "bpsk": digital.constellation_bpsk,
    "qpsk": digital.constellation_qpsk,
    "8psk": digital.constellation_8psk,
    "16qam": lambda: digital.qam_constellation(16, differential=False, mod_code=digital.mod_codes.GRAY_CODE),
    "64qam": lambda: digital.qam_constellation(64, differential=False, mod_code=digital.mod_codes.GRAY_CODE),
}


def run_chain(x: np.ndarray, *chain, out_type=gr.sizeof_gr_complex, vec_type=blocks.vector_source_c) -> np.ndarray:
    tb = gr.top_block()
    src = vec_type(list(x) if vec_type is not blocks.vector_source_c else x.astype(np.complex64).tolist())
    snk = blocks.vector_sink_c() if out_type == gr.sizeof_gr_complex else blocks.vector_sink_b()
    tb.connect(src, *chain, snk)
    tb.run()
    return np.asarray(snk.data())


@pytest.mark.parametrize("name", list(CONSTELLATIONS))
def test_points_order_and_bits_match_gnuradio(name):
    c, g = CONSTELLATIONS[name], GR_OBJECTS[name]()
    assert c.gr_constructor.startswith("digital.")
    np.testing.assert_allclose(c.points * c.gr_scale, np.array(g.points()), atol=1e-6)
    assert np.isclose(np.mean(np.abs(c.points) ** 2), 1.0)
    # Encoder: index k -> points()[k]; decoder: noisy symbols -> the same index as our nearest-point rule.
    rng = np.random.default_rng(1)
    idx = rng.integers(0, c.order, 4000)
    sent = run_chain(idx.astype(np.uint8), digital.constellation_encoder_bc(g), vec_type=blocks.vector_source_b)
    np.testing.assert_allclose(sent, c.modulate(idx) * c.gr_scale, atol=1e-6)
    y = c.modulate(idx) + add_noise(len(idx), 8.0, rng)
    tb = gr.top_block()
    src, dec, snk = blocks.vector_source_c((y * c.gr_scale).astype(np.complex64).tolist()), \
        digital.constellation_decoder_cb(g), blocks.vector_sink_b()
    tb.connect(src, dec, snk)
    tb.run()
    np.testing.assert_array_equal(np.asarray(snk.data()), c.nearest(y))
    # Bits: index k's bits MSB first, as unpack_k_bits_bb gives them.
    unpacked = run_chain(idx.astype(np.uint8), blocks.unpack_k_bits_bb(c.bits_per_symbol), out_type=1,
                         vec_type=blocks.vector_source_b)
    np.testing.assert_array_equal(unpacked, c.indices_to_bits(idx))


@pytest.mark.parametrize("name", ["qpsk", "16qam"])
def test_llr_sign_matches_gnuradio_soft_decisions(name):
    c, g = CONSTELLATIONS[name], GR_OBJECTS[name]()
    rng = np.random.default_rng(2)
    y = c.modulate(rng.integers(0, c.order, 200)) + add_noise(200, 12.0, rng)
    ours = c.max_log_llr(y, float(noise_var(12.0)))
    theirs = np.array([g.calc_soft_dec(complex(v * c.gr_scale), 0.1) for v in y])
    assert np.mean(np.sign(ours) == np.sign(theirs)) > 0.99
    np.testing.assert_array_equal((ours > 0).astype(np.uint8),
                                  c.indices_to_bits(c.nearest(y)).reshape(-1, c.bits_per_symbol))


@pytest.mark.parametrize("name", list(CONSTELLATIONS))
def test_exact_awgn_ber_matches_monte_carlo(name):
    c = CONSTELLATIONS[name]
    rng = np.random.default_rng(3)
    n, snr = 200_000, 6.0
    run = simulate(c.points, n, snr, rng=rng)
    errors = int(np.count_nonzero(c.indices_to_bits(c.nearest(run.received)) != c.indices_to_bits(run.indices)))
    lo, hi = wilson_interval(errors, n * c.bits_per_symbol, z=3.29)  # 99.9%: five draws must all pass
    assert lo <= exact_awgn_ber(c, snr) <= hi


def test_exact_awgn_ber_closed_forms():
    q = lambda x: 0.5 * math.erfc(x / math.sqrt(2))  # noqa: E731
    for snr in (0.0, 7.0, 12.0):
        g = 10 ** (snr / 10)
        assert exact_awgn_ber(CONSTELLATIONS["bpsk"], snr) == pytest.approx(q(math.sqrt(2 * g)), rel=1e-9)
        assert exact_awgn_ber(CONSTELLATIONS["qpsk"], snr) == pytest.approx(q(math.sqrt(g)), rel=1e-9)


def _qam_samples(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = CONSTELLATIONS["16qam"]
    return c.modulate(rng.integers(0, 16, n)) + add_noise(n, 15.0, rng)


@pytest.mark.parametrize("mag_db,phase_deg", [(1.0, 5.0), (-2.0, 12.0)])
def test_iq_imbalance_is_gnuradio_iqbal_gen_tx(mag_db, phase_deg):
    x = _qam_samples(5000, 4)
    gr_out = run_chain(x, channels.iqbal_gen(mag_db, phase_deg, 0))
    ours = Impairments(iq_magnitude_db=mag_db, iq_phase_deg=phase_deg).distort(x)
    np.testing.assert_allclose(gr_out, ours, atol=2e-6)


def test_distortions_are_gnuradio_distortion_gens():
    x = _qam_samples(5000, 5)
    np.testing.assert_allclose(run_chain(x, channels.distortion_2_gen(0.03)),
                               Impairments(distortion2_beta=0.03).distort(x), atol=2e-6)
    # distortion_3_gen drops the stream's last samples that do not fill the host's SIMD alignment (5000 -> 4992
    # on an AVX-512 machine; dw-detect --record pads for it), so it gets 64 more and the first 5000 are compared.
    gr_out = run_chain(np.concatenate([x, x[:64]]), channels.distortion_3_gen(-0.05))
    assert len(gr_out) >= len(x)
    np.testing.assert_allclose(gr_out[:len(x)], Impairments(distortion3_beta=-0.05).distort(x), atol=2e-6)


def connect_adc(tb: gr.top_block, upstream, bits: int, sink) -> None:
    """``channels.quantizer`` on I and on Q between ``upstream`` and ``sink``."""
    c2f, f2c = blocks.complex_to_float(), blocks.float_to_complex()
    tb.connect(upstream, c2f)
    tb.connect((c2f, 0), channels.quantizer(bits), (f2c, 0))
    tb.connect((c2f, 1), channels.quantizer(bits), (f2c, 1))
    tb.connect(f2c, sink)


@pytest.mark.parametrize("bits", [4, 6])
def test_quantizer_is_gnuradio_quantizer_on_i_and_q(bits):
    x = _qam_samples(5000, 6)
    tb = gr.top_block()
    snk = blocks.vector_sink_c()
    connect_adc(tb, blocks.vector_source_c(x.astype(np.complex64).tolist()), bits, snk)
    tb.run()
    gr_out = np.asarray(snk.data())
    ours = Impairments(adc_bits=bits).quantize(x.astype(np.complex64).astype(np.complex128))
    # Exact but for float32 rounding exactly at a step midpoint.
    assert np.mean(np.isclose(gr_out, ours, atol=1e-6)) > 0.999


def test_phase_noise_statistics_match_gnuradio_phase_noise_gen():
    n, mag, alpha = 200_000, 0.2, 0.1
    gr_phase = np.angle(run_chain(np.ones(n), channels.phase_noise_gen(mag, alpha)))
    imp = Impairments(phase_noise_mag=mag, phase_noise_alpha=alpha)
    ours = imp.phase_noise(n, np.random.default_rng(7))

    def lag(v, k):
        v = v - v.mean()
        return float(np.dot(v[:-k], v[k:]) / np.dot(v, v))

    for v in (gr_phase[1000:], ours[1000:]):  # past the filter's start-up
        assert np.std(v) == pytest.approx(imp.phase_noise_std, rel=0.05)
        assert lag(v, 1) == pytest.approx(1 - alpha, abs=0.02)
        assert lag(v, 10) == pytest.approx((1 - alpha) ** 10, abs=0.05)


def test_impaired_link_agrees_with_the_gnuradio_chain():
    """The whole link (every impairment, AWGN, ADC) through GNU Radio blocks and through the simulator: the
    Euclidean symbol error rate and the received clusters agree within their sampling error."""
    c, imp, snr = CONSTELLATIONS["16qam"], DEFAULT_PROFILE.nominal, 14.0
    n = 100_000
    rng = np.random.default_rng(8)
    idx = rng.integers(0, 16, n)
    tb = gr.top_block()
    src = blocks.vector_source_c(c.modulate(idx).astype(np.complex64).tolist())
    noise = analog.noise_source_c(analog.GR_GAUSSIAN, math.sqrt(float(noise_var(snr))), 11)
    add, head, snk = blocks.add_cc(), blocks.head(gr.sizeof_gr_complex, n), blocks.vector_sink_c()
    tb.connect(src, channels.iqbal_gen(imp.iq_magnitude_db, imp.iq_phase_deg, 0),
               channels.distortion_2_gen(imp.distortion2_beta), channels.distortion_3_gen(imp.distortion3_beta),
               channels.phase_noise_gen(imp.phase_noise_mag, imp.phase_noise_alpha), (add, 0))
    tb.connect(noise, head, (add, 1))
    connect_adc(tb, add, imp.adc_bits, snk)
    tb.run()
    y_gr = np.asarray(snk.data())
    sim = simulate(c.points, n, snr, imp, np.random.default_rng(9))
    ser = []
    for sent, y in ((idx, y_gr), (sim.indices, sim.received)):
        ser.append(wilson_interval(int(np.count_nonzero(c.nearest(y) != sent)), n, z=3.29))
    assert ser[0][0] <= ser[1][1] and ser[1][0] <= ser[0][1], ser
    # Mean of each received cluster: the deterministic impairments, the same in both.
    for k in range(16):
        m_gr, m_sim = y_gr[idx == k].mean(), sim.received[sim.indices == k].mean()
        assert abs(m_gr - m_sim) < 0.01
