"""QA of diffusion_ofdm_equalizer (vector source -> block -> vector sink)."""

from __future__ import annotations

import numpy as np
import pmt
import pytest
from gnuradio import blocks, digital, gr

from diffwireless.errors import ModelError
from diffwireless.fading import TDL, OFDMGrid
from diffwireless.ofdm_equalizer import OFDMLayout

from gnuradio.diffwireless import diffusion_ofdm_equalizer
from gnuradio.diffwireless import ofdm_defaults as defaults

LAYOUT = OFDMLayout.make(64, defaults.OCCUPIED_CARRIERS, defaults.PILOT_CARRIERS, defaults.PILOT_SYMBOLS)
BINS = LAYOUT.index(LAYOUT.active_carriers)


def frames(n_frames: int, n_sym: int, snr_db: float, seed: int = 0, channel=TDL("A", 30e-9)):
    """Frames of BPSK data and pilots through ``channel`` (TDL-A 30 ns), with LS preamble taps: (vectors, tags,
    sent, taps)."""
    rng = np.random.default_rng(seed)
    h = channel.sample(OFDMGrid(n_symbols=1), n_frames, rng)[:, :, 0]
    nv = 10 ** (-snr_db / 10)
    vecs, tags, sent_all, taps_all = [], [], [], []
    for f in range(n_frames):
        taps = np.zeros(64, dtype=np.complex128)
        taps[BINS] = h[f]
        sent = np.zeros((n_sym, 64), dtype=np.complex128)
        for i in range(n_sym):
            occ, pil, val = LAYOUT.symbol_sets(i)
            sent[i, LAYOUT.index(occ)] = rng.choice([-1.0, 1.0], len(occ))
            sent[i, LAYOUT.index(pil)] = val
        noise = np.sqrt(nv / 2) * (rng.standard_normal((n_sym + 1, 64)) + 1j * rng.standard_normal((n_sym + 1, 64)))
        ls = taps + noise[0] * (taps != 0)  # the preamble's LS taps on the active carriers
        offset = len(vecs)
        vecs.extend(sent * taps + noise[1:])
        tags.append(gr.tag_utils.python_to_tag((offset, pmt.intern("frame_length"), pmt.from_long(n_sym))))
        tags.append(gr.tag_utils.python_to_tag((offset, pmt.intern("ofdm_sync_chan_taps"),
                                                pmt.init_c32vector(64, ls.astype(np.complex64)))))
        sent_all.append(sent)
        taps_all.append(taps)
    return np.asarray(vecs), tags, sent_all, taps_all


def run_eq(vecs, tags, **kwargs):
    tb = gr.top_block()
    src = blocks.vector_source_c(vecs.astype(np.complex64).ravel().tolist(), False, 64, tags)
    eq = diffusion_ofdm_equalizer(64, 16, defaults.OCCUPIED_CARRIERS, defaults.PILOT_CARRIERS,
                                  defaults.PILOT_SYMBOLS, 0, "frame_length", True, engine="cpu", **kwargs)
    snk = blocks.vector_sink_c(64)
    tb.connect(src, eq, snk)
    tb.run()
    return eq, np.asarray(snk.data()).reshape(-1, 64), snk.tags()


def test_frames_in_equal_frames_out_with_their_tags():
    vecs, tags, sent, _ = frames(12, 5, 15.0)
    eq, out, out_tags = run_eq(vecs, tags)
    assert out.shape == vecs.shape and eq.frames == 12 and eq.missing_taps == 0
    keys = [pmt.symbol_to_string(t.key) for t in out_tags]
    for key in ("frame_length", "dw_chan_est", "dw_snr_db", "ofdm_sync_chan_taps"):
        assert keys.count(key) == 12, key
    starts = sorted(t.offset for t in out_tags if pmt.symbol_to_string(t.key) == "frame_length")
    assert starts == list(range(0, 60, 5))


def test_diffusion_estimate_beats_the_preamble_ls_and_decides_nearly_as_with_the_true_channel():
    n_frames, n_sym = 60, 4
    vecs, tags, sent, taps = frames(n_frames, n_sym, 5.0, seed=1)
    _, out, out_tags = run_eq(vecs, tags, constellation=digital.constellation_bpsk().base())
    est = {t.offset: np.asarray(pmt.c32vector_elements(t.value)) for t in out_tags
           if pmt.symbol_to_string(t.key) == "dw_chan_est"}
    ls = {t.offset: np.asarray(pmt.c32vector_elements(t.value)) for t in tags
          if pmt.symbol_to_string(t.key) == "ofdm_sync_chan_taps"}
    err_d = sum(np.sum(np.abs(est[o][BINS] - taps[f][BINS]) ** 2) for f, o in enumerate(sorted(est)))
    err_ls = sum(np.sum(np.abs(ls[o][BINS] - taps[f][BINS]) ** 2) for f, o in enumerate(sorted(ls)))
    # One frame's 52 taps have far fewer degrees of freedom (a short delay profile): the prior removes most noise.
    assert 10 * np.log10(err_ls / err_d) > 3.0, (err_ls, err_d)
    data = LAYOUT.index(LAYOUT.occupied_carriers[0])
    truth = np.concatenate([s[:, data].real.ravel() for s in sent])
    decided = np.sign(out[:, data].real).ravel()
    genie = np.sign(np.concatenate([vecs[f * n_sym:(f + 1) * n_sym, data] / taps[f][data]
                                    for f in range(n_frames)]).real).ravel()
    ber, ber_genie = np.mean(decided != truth), np.mean(genie != truth)
    # BPSK over Rayleigh carriers at 5 dB: ~6% even with the true channel; the estimate costs a little more.
    assert ber < 1.35 * ber_genie + 0.002, (ber, ber_genie)


def test_frames_beyond_the_prior_fall_back_and_are_tagged_and_frames_within_it_do_not():
    def estimates(out_tags) -> tuple[dict, dict]:
        est = {t.offset: np.asarray(pmt.c32vector_elements(t.value)) for t in out_tags
               if pmt.symbol_to_string(t.key) == "dw_chan_est"}
        used = {t.offset: pmt.symbol_to_string(t.value) for t in out_tags
                if pmt.symbol_to_string(t.key) == "dw_fallback"}
        return est, used

    vecs, tags, _, taps = frames(16, 4, 15.0, seed=3)
    eq, _, out_tags = run_eq(vecs, tags)
    _, used = estimates(out_tags)
    assert eq.fallbacks == len(used) <= 1  # the prior's own family: the diffusion estimate stands
    # Delays to 2.6 us (TDL-C at 300 ns) at 35 dB: paths far beyond the cyclic prefix; the prior smooths them away.
    vecs, tags, _, taps = frames(16, 4, 35.0, seed=4, channel=TDL("C", 300e-9))
    eq, _, out_tags = run_eq(vecs, tags)
    est, used = estimates(out_tags)
    _, _, plain_tags = run_eq(vecs, tags, fallback=False)
    plain, none = estimates(plain_tags)
    assert eq.fallbacks == len(used) >= 12 and not none and set(used.values()) <= {"ls", "lmmse_robust"}
    err = np.mean([np.mean(np.abs(est[o][BINS] - t[BINS]) ** 2) for o, t in zip(sorted(est), taps)])
    err_plain = np.mean([np.mean(np.abs(plain[o][BINS] - t[BINS]) ** 2) for o, t in zip(sorted(plain), taps)])
    assert err < 0.3 * err_plain


def test_missing_model_and_foreign_layout_are_clear_errors():
    with pytest.raises(ModelError, match="not found"):
        diffusion_ofdm_equalizer(model="/nonexistent/chanest_x", engine="cpu")
    with pytest.raises(ModelError, match="retrain"):
        diffusion_ofdm_equalizer(occupied_carriers=(tuple(range(-20, 0)) + tuple(range(1, 21)),),
                                 pilot_carriers=((-21, 21),), pilot_symbols=((1, -1),), engine="cpu")
