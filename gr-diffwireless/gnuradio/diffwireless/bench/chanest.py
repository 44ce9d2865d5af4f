"""``dw-bench chanest``: NMSE of the diffusion OFDM channel estimator against LS and LMMSE, and its speed.

NMSE (dB) vs SNR (-5 to 30 dB, 5 dB steps) on the 802.11-like grid of the shipped models (64-FFT at 20 MHz, 52
carriers, 14 symbols), per channel profile and pilot pattern, all methods on the same frames and noise:

- ``ls``: LS at the pilots + linear interpolation (frequency, then time).
- ``lmmse_genie``: LMMSE with the profile's true covariance (the MMSE estimator for the Gaussian profiles).
- ``lmmse_mismatched``: LMMSE with the robust covariance (uniform delay profile over the cyclic prefix, or what the
  pilot spacing resolves, and Jakes at 500 Hz) that a receiver can use without knowing the channel.
- ``gmm``: the Gaussian-mixture estimator (:mod:`diffwireless.gmm_chanest`, Koller et al. 2022): a mixture of
  :data:`GMM_COMPONENTS` Kronecker-structured Gaussians fitted by EM to :data:`GMM_FIT_FRAMES` frames of the
  diffusion prior's own training family (seeded apart), the posterior-weighted mix of their LMMSE estimates: the
  strongest estimator a receiver can train without a network.
- ``mmse_family``: the MMSE estimator of the prior's training family itself, the same posterior-weighted mix over
  the family's own Gaussian components (:func:`diffwireless.recipes.channel_estimator.family_mixture`: for
  ``chanest_tdl`` TDL-A/B/C over a grid of its delay spreads and Dopplers; for ``chanest_sparse`` one component
  per set of delay bins the clusters occupy) instead of fitted ones: what any estimator trained on the family, a
  diffusion prior included, can reach without knowing the frame's profile or paths (the genie LMMSE knows the
  profile; on the sparse model it is only the best *linear* estimator).
- ``omp`` (sparse profile): orthogonal matching pursuit over a delay dictionary (:mod:`diffwireless.sparse_chanest`:
  delays over the model's span at 4 points per 50 ns; stops when the residual falls to the noise level).
- ``diffusion_denoise`` (a): one step from the SNR-matched step; the 14-symbol priors' linear part (the posterior
  mean under the family's Gaussian mixture, ``mmse_family``) computed from the pilots, the network's learned part
  from the interpolated LS grid (:class:`~diffwireless.chanest.LearnedCorrectionSampler`).
- ``diffusion_guided`` (b): DDIM from the SNR-matched step with pilot consistency after every network call.
- ``diffusion_checked``: ``diffusion_denoise`` checked per frame against the pilots
  (:func:`diffwireless.chanest.checked_estimate`, the OFDM equalizer's do-no-harm rule): where it leaves more than
  1.5 times the noise unexplained, the GMM estimate (or the robust LMMSE) takes the frame; ``extra`` has the share.

Profiles: TDL-A 30 ns / 0 Hz and TDL-C 100 ns / 300 Hz (``chanest_tdl``), an exponential profile of 50 ns (Gaussian,
outside the training family; ``chanest_tdl``) and the sparse clustered model (``chanest_sparse``). Pilot patterns:
``full`` (every resource element; Fesl et al.'s setting), ``comb`` (every 3rd carrier in every 4th symbol) and
``sparse`` (every 6th carrier in every 7th symbol). Intervals: bootstrap 95% over frames; each diffusion row's
``extra`` has its gain over LMMSE genie and LS with a paired bootstrap interval.

Sanity: ``CN(0, R)``, ``R_ij = 0.9^|i-j|``, N = 64, ``y = h + n`` (``chanest_expcorr``) against the closed-form
LMMSE at 0, 10 and 20 dB.

Loopback (GNU Radio's OFDM chain, :mod:`gnuradio.diffwireless.recipes.ofdm_loopback`): ``ofdm_tx`` (BPSK header and
payload, 96-byte packets; without FEC, and with the payload under gr-fec's rate-1/2 K=7 convolutional code,
interleaved, decoded by Viterbi) -> ``selective_fading_model`` (TDL-A, 50 ns, ``fD Ts = 1e-5``) + AWGN -> the stock
receiver (``ofdm_equalizer_simpledfe``) and ours (``diffusion_ofdm_equalizer``) on the same samples. Per SNR,
``LOOPBACK_REALIZATIONS`` fading seeds (independent channels) of ``LOOPBACK_PACKETS`` packets each: packet success
rate (CRC passed / sent; Wilson interval), BER over the packets whose header decoded, and the SNR at which each
receiver reaches 90% packet success (linear interpolation; interval from a bootstrap over the fading seeds).

Speed: estimates (frames) per second of each diffusion mode on the device, beside the LMMSE matrix product.
"""

from __future__ import annotations

import itertools
import time

import numpy as np

from diffwireless.bench.results import BenchRow, headless_pyplot, log_t_interval, wilson_interval
from diffwireless.chanest import (DiffusionChannelEstimator, Interpolator, checked_estimate, lmmse, lmmse_matrix,
                                  lmmse_nmse_db, observe, robust_covariance, robust_max_delay, snr_noise_var)
from diffwireless.engine import acquire_engine, device_name, release_engine
from diffwireless.fading import TDL, ExpCorrelated, ExponentialPDP, SparseClustered, covariance_matrix, lattice_pilots
from diffwireless.gmm_chanest import GMMChannelEstimator, KroneckerGMM, fit_kronecker_gmm
from diffwireless.recipes.channel_estimator import EXPCORR_GRID, FAMILIES, GRID, family_mixture
from diffwireless.sparse_chanest import OMPChannelEstimator, delay_doppler_dictionary
from diffwireless.progress import track

from gnuradio.diffwireless.recipes.ofdm_loopback import receive, transmit

SNRS_DB = tuple(float(s) for s in np.arange(-5.0, 30.01, 5.0))
PROFILES = {
    "TDL-A 30ns": (TDL("A", 30e-9, 0.0), "chanest_tdl"),
    "TDL-C 100ns 300Hz": (TDL("C", 100e-9, 300.0), "chanest_tdl"),
    "exp 50ns": (ExponentialPDP(50e-9, 0.0), "chanest_tdl"),
    "sparse": (SparseClustered(), "chanest_sparse"),
}
PATTERNS = {"full": (1, 1), "comb": (3, 4), "sparse": (6, 7)}
DESIGN_DOPPLER_HZ = 500.0
STEPS = {"diffusion_denoise": 1, "diffusion_guided": 10}
SWEEP_STEPS = (2, 4, 10)
BOOTSTRAP = 400
LOOPBACK_SNRS_DB = tuple(float(s) for s in np.arange(10.0, 40.01, 3.0))
LOOPBACK_REALIZATIONS = 30
LOOPBACK_PACKETS = 10
LOOPBACK_FDTS = 1e-5
TARGET_SUCCESS = 0.9
GMM_COMPONENTS = 16
GMM_FIT_FRAMES = 8192
GMM_ITERATIONS = 10
_GMMS: dict[str, KroneckerGMM] = {}
_FAMILY_MIXTURES: dict[str, KroneckerGMM] = {}


def mmse_family(model_name: str) -> KroneckerGMM:
    """:func:`family_mixture` of the family ``model_name``'s prior was trained on, made once per process."""
    if model_name not in _FAMILY_MIXTURES:
        _FAMILY_MIXTURES[model_name] = family_mixture(model_name.removeprefix("chanest_"))
    return _FAMILY_MIXTURES[model_name]


def fitted_gmm(model_name: str, quick: bool = False) -> KroneckerGMM:
    """The GMM of the family ``model_name``'s prior was trained on, fitted once per process (seed 5)."""
    key = f"{model_name}{'/quick' if quick else ''}"
    if key not in _GMMS:
        family = FAMILIES[model_name.removeprefix("chanest_")]
        rng = np.random.default_rng(5)
        frames = GMM_FIT_FRAMES // 4 if quick else GMM_FIT_FRAMES
        _GMMS[key] = fit_kronecker_gmm(family.sample(frames, rng), GMM_COMPONENTS // (2 if quick else 1),
                                       GMM_ITERATIONS // (2 if quick else 1), rng)
    return _GMMS[key]


def omp_estimator(model: SparseClustered, mask: np.ndarray, noise_var: float) -> OMPChannelEstimator:
    """OMP over the delay-Doppler dictionary that spans ``model``'s paths."""
    atoms = delay_doppler_dictionary(GRID, model.max_delay_s + model.cluster_spread_s, model.max_doppler_hz)
    return OMPChannelEstimator(atoms, mask, noise_var)


def _nmse_parts(est: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.sum(np.abs(est - h) ** 2, axis=(1, 2)), np.sum(np.abs(h) ** 2, axis=(1, 2)))


def _boot_index(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n, size=(BOOTSTRAP, n))


def nmse_row(method: str, setting: str, err: np.ndarray, energy: np.ndarray, idx: np.ndarray, nfe: float,
             device: str, extra: dict) -> BenchRow:
    value = 10 * np.log10(err.sum() / energy.sum())
    boots = 10 * np.log10(err[idx].sum(axis=1) / energy[idx].sum(axis=1))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return BenchRow(method, setting, "nmse_db", float(value), float(min(lo, value)), float(max(hi, value)), nfe,
                    device, extra)


def gain_db(err_a: np.ndarray, err_b: np.ndarray, idx: np.ndarray) -> list[float]:
    """How many dB lower the NMSE of ``a`` is than that of ``b`` (same frames), with a paired 95% interval."""
    value = 10 * np.log10(err_b.sum() / err_a.sum())
    boots = 10 * np.log10(err_b[idx].sum(axis=1) / err_a[idx].sum(axis=1))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return [round(float(value), 3), round(float(lo), 3), round(float(hi), 3)]


def nmse_point(profile: str, pattern: str, snr_db: float, frames: int, engine, rng: np.random.Generator,
               device: str, quick: bool = False) -> list[BenchRow]:
    model, model_name = PROFILES[profile]
    mask = lattice_pilots(GRID, *PATTERNS[pattern])
    nv = float(snr_noise_var(snr_db))
    h = model.sample(GRID, frames, rng)
    ls = observe(h, mask, snr_db, rng)
    cov = covariance_matrix(model, GRID)
    robust = robust_covariance(GRID, DESIGN_DOPPLER_HZ, robust_max_delay(GRID, mask))
    setting = f"{profile} pilots={pattern} snr_db={snr_db:g}"
    extra = {"profile": profile, "pilots": pattern, "snr_db": snr_db, "frames": frames, "n_pilots": int(mask.sum())}
    estimates = {"ls": (Interpolator(GRID, mask)(ls), 0),
                 "lmmse_genie": (lmmse(ls, cov, mask, nv), 0),
                 "lmmse_mismatched": (lmmse(ls, robust, mask, nv), 0),
                 "gmm": (GMMChannelEstimator(fitted_gmm(model_name, quick), mask, nv).estimate(ls), 0)}
    if FAMILIES[model_name.removeprefix("chanest_")].mixture_prior:
        estimates["mmse_family"] = (GMMChannelEstimator(mmse_family(model_name), mask, nv).estimate(ls), 0)
    if isinstance(model, SparseClustered):
        estimates["omp"] = (omp_estimator(model, mask, nv).estimate(ls), 0)
    for method, mode in (("diffusion_denoise", "denoise"), ("diffusion_guided", "guided")):
        est = DiffusionChannelEstimator(model_name, GRID, mask, num_steps=STEPS[method], mode=mode)
        estimates[method] = (est.estimate(ls, snr_db, engine), est.nfe(snr_db))
    # The diffusion estimate checked against the pilots as the OFDM equalizer checks it, falling back to the GMM
    # (or the robust LMMSE) where it leaves more than the noise unexplained.
    checked, chosen = checked_estimate({"diffusion": estimates["diffusion_denoise"][0], "gmm": estimates["gmm"][0],
                                        "lmmse_mismatched": estimates["lmmse_mismatched"][0]}, ls, mask, nv)
    estimates["diffusion_checked"] = (checked, estimates["diffusion_denoise"][1])
    idx = _boot_index(frames, rng)
    errs = {m: _nmse_parts(e, h) for m, (e, _) in estimates.items()}
    rows = []
    for method, (_, nfe) in estimates.items():
        x = dict(extra)
        if method == "diffusion_checked":
            x["fallback_share"] = float(np.mean(chosen != "diffusion"))
            x["fallback_to"] = {k: int(np.sum(chosen == k)) for k in ("gmm", "lmmse_mismatched")}
        if method == "lmmse_genie":
            x["exact_nmse_db"] = lmmse_nmse_db(cov, mask, nv)
        if method.startswith("diffusion"):
            x["model"] = model_name
            x["gain_over_lmmse_genie_db"] = gain_db(errs[method][0], errs["lmmse_genie"][0], idx)
            x["gain_over_ls_db"] = gain_db(errs[method][0], errs["ls"][0], idx)
            x["gain_over_lmmse_mismatched_db"] = gain_db(errs[method][0], errs["lmmse_mismatched"][0], idx)
            x["gain_over_gmm_db"] = gain_db(errs[method][0], errs["gmm"][0], idx)
            if "mmse_family" in errs:
                x["gain_over_mmse_family_db"] = gain_db(errs[method][0], errs["mmse_family"][0], idx)
            if "omp" in errs:
                x["gain_over_omp_db"] = gain_db(errs[method][0], errs["omp"][0], idx)
        rows.append(nmse_row(method, setting, *errs[method], idx, nfe, device, x))
    return rows


def sanity(frames: int, engine, rng: np.random.Generator, device: str) -> list[BenchRow]:
    """Exponentially correlated Rayleigh, ``y = h + n``: diffusion (1 DDIM step, and the step sweep 2, 4, 10)
    against the closed-form LMMSE."""
    model = ExpCorrelated(0.9)
    mask = np.ones(EXPCORR_GRID.shape, dtype=bool)
    r, _ = model.covariance(EXPCORR_GRID)
    est = DiffusionChannelEstimator("chanest_expcorr", EXPCORR_GRID, mask, num_steps=STEPS["diffusion_denoise"])
    sweep = {k: DiffusionChannelEstimator("chanest_expcorr", EXPCORR_GRID, mask, num_steps=k) for k in SWEEP_STEPS}
    rows = []
    for snr in (0.0, 10.0, 20.0):
        h = model.sample(EXPCORR_GRID, frames, rng)
        ls = observe(h, mask, snr, rng)
        nv = float(snr_noise_var(snr))
        exact = lmmse_nmse_db(r, mask, nv)
        setting = f"expcorr rho=0.9 N=64 snr_db={snr:g}"
        extra = {"profile": "expcorr", "pilots": "full", "snr_db": snr, "frames": frames}
        idx = _boot_index(frames, rng)
        e_d = _nmse_parts(est.estimate(ls, snr, engine), h)
        e_l = _nmse_parts(lmmse(ls, r, mask, nv), h)
        rows.append(BenchRow("lmmse_closed_form", setting, "nmse_db", exact, exact, exact, 0, device, extra))
        rows.append(nmse_row("lmmse_genie", setting, *e_l, idx, 0, device, extra))
        rows.append(nmse_row("diffusion_denoise", setting, *e_d, idx, est.nfe(snr), device,
                             dict(extra, model="chanest_expcorr", gap_to_closed_form_db=float(
                                 10 * np.log10(e_d[0].sum() / e_d[1].sum()) - exact),
                                 gain_over_lmmse_genie_db=gain_db(e_d[0], e_l[0], idx))))
        for k, other in sweep.items():
            e_k = _nmse_parts(other.estimate(ls, snr, engine), h)
            rows.append(nmse_row(f"diffusion_denoise_{k}_steps", setting, *e_k, idx, other.nfe(snr), device,
                                 dict(extra, model="chanest_expcorr", sweep=True,
                                      gain_over_lmmse_genie_db=gain_db(e_k[0], e_l[0], idx))))
    return rows


def speed(engine, quick: bool, device: str) -> list[BenchRow]:
    """Frames per second: each diffusion mode at 10 dB on ``comb`` pilots (TDL-A), and the LMMSE product."""
    rng = np.random.default_rng(7)
    mask = lattice_pilots(GRID, *PATTERNS["comb"])
    n = 256 if quick else 1024
    h = TDL("A", 30e-9).sample(GRID, n, rng)
    ls = observe(h, mask, 10.0, rng)
    rows = []
    for method, mode in (("diffusion_denoise", "denoise"), ("diffusion_guided", "guided")):
        est = DiffusionChannelEstimator("chanest_tdl", GRID, mask, num_steps=STEPS[method], mode=mode)
        est.estimate(ls[:32], 10.0, engine)  # warm-up
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            est.estimate(ls, 10.0, engine)
            rates.append(n / (time.perf_counter() - t0))
        mean, lo, hi = log_t_interval(rates)
        rows.append(BenchRow(method, "TDL-A 30ns pilots=comb snr_db=10", "frames_per_s", mean, lo, hi,
                             est.nfe(10.0), device, {"frames": n, "repeats": 3, "grid": list(GRID.shape)}))
    a = lmmse_matrix(covariance_matrix(TDL("A", 30e-9), GRID), mask, 0.1)
    classical = {"lmmse_genie": (lambda y: y @ a.T, "matrix product only (the matrix precomputed)"),
                 "gmm": (GMMChannelEstimator(fitted_gmm("chanest_tdl", quick), mask, 0.1).estimate,
                         "posterior and mix (the filters made once per pattern and SNR)"),
                 "mmse_family": (GMMChannelEstimator(mmse_family("chanest_tdl"), mask, 0.1).estimate,
                                 "posterior and mix (the filters made once per pattern and SNR)")}
    sparse_model = SparseClustered()
    sparse_ls = observe(sparse_model.sample(GRID, n, rng), mask, 10.0, rng)
    classical["omp"] = (omp_estimator(sparse_model, mask, 0.1).estimate, "the sparse clustered model's frames")
    for method, (estimate, note) in classical.items():
        frames = sparse_ls if method == "omp" else ls
        rates = []
        for _ in range(3):
            t0 = time.perf_counter()
            estimate(frames)
            rates.append(n / (time.perf_counter() - t0))
        mean, lo, hi = log_t_interval(rates)
        setting = f"{'sparse' if method == 'omp' else 'TDL-A 30ns'} pilots=comb snr_db=10"
        rows.append(BenchRow(method, setting, "frames_per_s", mean, lo, hi, 0, "cpu",
                             {"frames": n, "repeats": 3, "note": note}))
    return rows


# The block's estimate (one symbol: the preamble's LS taps), in and beyond the prior's training family
# (chanest_tdl_sym: TDL-A/B/C, 10-100 ns, the FFT window -2..14 samples into the cyclic prefix).
EQUALIZER_PROFILES = {"TDL-A 30ns": TDL("A", 30e-9), "TDL-C 100ns": TDL("C", 100e-9),
                      "TDL-C 300ns (beyond the family)": TDL("C", 300e-9),
                      "exp 250ns (beyond the family)": ExponentialPDP(250e-9)}
EQUALIZER_SNRS_DB = (0.0, 10.0, 20.0, 30.0)
NULL_BINS = 11  # empty carriers of GNU Radio's 64-carrier layout (DC excluded): what the block measures noise on


def equalizer_taps(frames: int, engine, rng: np.random.Generator, device: str) -> list[BenchRow]:
    """The diffusion equalizer's estimate of one-symbol LS taps with and without the robust-LMMSE fallback,
    beside LS and the robust LMMSE, on the same frames; noise measured as the block measures it (on the empty
    carriers of one symbol)."""
    from diffwireless.ofdm_equalizer import FrameEqualizer, OFDMLayout, robust_lmmse_taps
    from diffwireless.recipes.channel_estimator import SYM_GRID, TIMING_OFFSET_SAMPLES

    layout = OFDMLayout.make(SYM_GRID.n_fft, [SYM_GRID.carriers])
    eq = FrameEqualizer("chanest_tdl_sym", layout, backoff=-TIMING_OFFSET_SAMPLES[0])
    bins = eq.active_bins
    rows = []
    for name, channel in EQUALIZER_PROFILES.items():
        for snr in EQUALIZER_SNRS_DB:
            h = channel.sample(SYM_GRID, frames, rng)[:, :, 0]
            offset = rng.uniform(*TIMING_OFFSET_SAMPLES, (frames, 1))
            h = h * np.exp(-2j * np.pi * offset * np.asarray(SYM_GRID.carriers) / SYM_GRID.n_fft)
            nv = float(snr_noise_var(snr))
            ls = np.zeros((frames, SYM_GRID.n_fft), dtype=np.complex128)
            ls[:, bins] = h + np.sqrt(nv / 2) * (rng.standard_normal(h.shape) + 1j * rng.standard_normal(h.shape))
            measured = nv * rng.chisquare(2 * NULL_BINS, frames) / (2 * NULL_BINS)
            jobs = []
            for k in range(frames):
                items, scale, snr_est = eq.prepare(ls[k], measured[k])
                jobs.append((engine.submit(eq.job(items, snr_est)), scale))
            est = {"ls": ls[:, bins], "lmmse_robust": np.stack([robust_lmmse_taps(
                ls[k], measured[k], layout, eq.cp_len, eq.backoff)[bins] for k in range(frames)])}
            plain, checked, chosen = [], [], []
            for k, (job, scale) in enumerate(jobs):
                taps = eq.taps_from_result(job.result(), scale)
                used, which = eq.checked(taps, ls[k], measured[k])
                plain.append(taps[bins])
                checked.append(used[bins])
                chosen.append(which)
            est["diffusion_equalizer_no_fallback"] = np.stack(plain)
            est["diffusion_equalizer"] = np.stack(checked)
            idx = _boot_index(frames, rng)
            errs = {m: _nmse_parts(e[:, :, None], h[:, :, None]) for m, e in est.items()}
            setting = f"equalizer taps {name} snr_db={snr:g}"
            fell_a = np.asarray(chosen) != "diffusion"
            for m, (err, energy) in errs.items():
                extra = {"profile": f"equalizer {name}", "snr_db": snr, "frames": frames, "pilots": "preamble"}
                if m.startswith("diffusion"):
                    extra["gain_over_lmmse_robust_db"] = gain_db(err, errs["lmmse_robust"][0], idx)
                    extra["model"] = "chanest_tdl_sym"
                if m == "diffusion_equalizer":
                    extra["fallback_share"] = float(fell_a.mean())
                    extra["fallback_share_ci"] = list(wilson_interval(int(fell_a.sum()), frames))
                    extra["fallback_to_ls_share"] = float(np.mean(np.asarray(chosen) == "ls"))
                rows.append(nmse_row(m, setting, err, energy, idx, 1 if m.startswith("diffusion") else 0, device,
                                     extra))
    return rows


def required_snr(snrs: np.ndarray, success: np.ndarray, target: float = TARGET_SUCCESS) -> float:
    """The lowest SNR where the success rate, interpolated linearly, reaches ``target`` (NaN: never)."""
    for i in range(len(snrs)):
        if success[i] >= target:
            if i == 0:
                return float(snrs[0])
            s0, s1, p0, p1 = snrs[i - 1], snrs[i], success[i - 1], success[i]
            return float(s0 + (target - p0) * (s1 - s0) / (p1 - p0))
    return float("nan")


def loopback(quick: bool, device: str, rng: np.random.Generator, coded: bool = False) -> list[BenchRow]:
    """Packet success, BER and the SNR for 90% packets of both receivers; ``coded``: the payload under the
    rate-1/2 K=7 convolutional code (a packet counts when its decoded payload is the one sent)."""
    snrs = np.array(LOOPBACK_SNRS_DB[::2] if quick else LOOPBACK_SNRS_DB)
    n_real = 8 if quick else LOOPBACK_REALIZATIONS
    tx = transmit(LOOPBACK_PACKETS, seed=11, coded=coded)
    code = " fec=cc(7,1/2)" if coded else ""
    # counts[eq][snr index][realization] = (ok, detected, bit errors, bits)
    counts = {eq: np.zeros((len(snrs), n_real, 4), dtype=np.int64) for eq in ("stock", "diffusion")}
    for j, snr in enumerate(snrs):
        for r in range(n_real):
            for res in receive(tx, float(snr), profile="A", delay_spread_s=50e-9, fdts=LOOPBACK_FDTS,
                               seed=1000 + r, device="auto"):
                counts[res.equalizer][j, r] = (res.packets_ok, res.packets_detected, res.bit_errors, res.bits)
    rows = []
    sent = n_real * LOOPBACK_PACKETS
    for eq, c in counts.items():
        method = "stock_simpledfe" if eq == "stock" else "diffusion_equalizer"
        nfe = 0 if eq == "stock" else 1
        for j, snr in enumerate(snrs):
            ok, det, err, bits = c[j].sum(axis=0)
            setting = f"loopback TDL-A 50ns fdts={LOOPBACK_FDTS:g} bpsk{code} snr_db={snr:g}"
            extra = {"profile": "loopback", "snr_db": float(snr), "packets_sent": int(sent), "packets_ok": int(ok),
                     "packets_detected": int(det), "realizations": n_real, "fec": coded}
            lo, hi = wilson_interval(int(ok), sent)
            rows.append(BenchRow(method, setting, "packet_success", ok / sent, lo, hi, nfe, device, extra))
            if bits:
                lo, hi = wilson_interval(int(err), int(bits))
                rows.append(BenchRow(method, setting, "ber", err / bits, lo, hi, nfe, device,
                                     dict(extra, bit_errors=int(err), bits=int(bits))))
        # Packets, and (the ceiling of any payload equalizer: a packet whose header is lost is lost) headers.
        for metric, col in (("snr_db_at_90pct_packets", 0), ("snr_db_at_90pct_headers", 1)):
            value = required_snr(snrs, c[:, :, col].sum(axis=1) / sent)
            boots = np.asarray([required_snr(snrs, c[:, rng.integers(0, n_real, n_real), col].sum(axis=1) / sent)
                                for _ in range(BOOTSTRAP)])
            finite = boots[np.isfinite(boots)]
            lo, hi = (np.percentile(finite, [2.5, 97.5]) if finite.size else (np.nan, np.nan))
            rows.append(BenchRow(method, f"loopback TDL-A 50ns bpsk{code}", metric, value,
                                 float(min(lo, value)) if np.isfinite(value) else float("nan"),
                                 float(max(hi, value)) if np.isfinite(value) else float("nan"), nfe, device,
                                 {"profile": "loopback", "fec": coded,
                                  "bootstrap_never_reached": int(np.sum(~np.isfinite(boots)))}))
    return rows


def run(quick: bool = False) -> list[BenchRow]:
    engine = acquire_engine("auto")
    device = device_name(engine.device)
    rows: list[BenchRow] = []
    rng = np.random.default_rng(2026)
    try:
        frames = 200 if quick else 500
        snrs = (0.0, 10.0, 20.0) if quick else SNRS_DB
        profiles = ("TDL-A 30ns", "sparse") if quick else tuple(PROFILES)
        for profile in track(profiles, "chanest: channel profiles"):
            for pattern in PATTERNS:
                for snr in snrs:
                    rows += nmse_point(profile, pattern, snr, frames, engine, rng, device, quick)
        rows += sanity(500 if quick else 5000, engine, rng, device)
        rows += equalizer_taps(200 if quick else 1000, engine, rng, device)
        rows += speed(engine, quick, device)
        rows += loopback(quick, device, rng)
        rows += loopback(quick, device, rng, coded=True)
    finally:
        release_engine(engine)
    return rows


def plot(rows: list[BenchRow], path) -> None:
    plt = headless_pyplot()

    nm = [r for r in rows if r.metric == "nmse_db" and r.extra.get("profile") != "expcorr"]
    profiles = [p for p in PROFILES if any(r.extra["profile"] == p for r in nm)]
    lb = [r for r in rows if r.extra.get("profile") == "loopback" and r.metric in ("packet_success", "ber")]
    n_rows = len(profiles) + (1 if lb else 0)
    fig, axes = plt.subplots(max(1, n_rows), len(PATTERNS), figsize=(4 * len(PATTERNS), 3.2 * max(1, n_rows)),
                             squeeze=False)
    styles = {"ls": "s--", "lmmse_mismatched": "v--", "gmm": "d--", "mmse_family": "k-.", "omp": "x--",
              "lmmse_genie": "k:",
              "diffusion_denoise": "o-", "diffusion_guided": "^-", "diffusion_checked": "P-"}
    for i, profile in enumerate(profiles):
        for j, pattern in enumerate(PATTERNS):
            ax = axes[i, j]
            for method, style in styles.items():
                pts = sorted((r.extra["snr_db"], r.value, r.ci_low, r.ci_high) for r in nm
                             if r.method == method and r.extra["profile"] == profile and r.extra["pilots"] == pattern)
                if pts:
                    s, v, lo, hi = (np.array(x) for x in zip(*pts))
                    ax.plot(s, v, style, label=method, ms=3, lw=1)
                    ax.fill_between(s, lo, hi, alpha=0.15)
            ax.set_title(f"{profile}, pilots {pattern}", fontsize=9)
            ax.set_xlabel("SNR (dB)")
            ax.grid(True, alpha=0.3)
    if profiles:
        axes[0, 0].set_ylabel("NMSE (dB)")
        axes[0, 0].legend(fontsize=7)
    if lb:
        row = axes[n_rows - 1]
        for k, metric in enumerate(("packet_success", "ber")):
            ax = row[k]
            for (method, style), coded in itertools.product(
                    (("stock_simpledfe", "s--"), ("diffusion_equalizer", "o-")), (False, True)):
                pts = sorted((r.extra["snr_db"], r.value, r.ci_low, r.ci_high) for r in lb
                             if r.method == method and r.metric == metric and r.extra.get("fec", False) == coded)
                if pts:
                    s, v, lo, hi = (np.array(x) for x in zip(*pts))
                    (ax.semilogy if metric == "ber" else ax.plot)(
                        s, v, style, label=method + (" + FEC" if coded else ""), ms=3, lw=1.6 if coded else 0.8)
                    ax.fill_between(s, lo, hi, alpha=0.15)
            ax.set_title(f"GNU Radio OFDM loopback: {metric}", fontsize=9)
            ax.set_xlabel("SNR per carrier (dB)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        sanity_rows = [r for r in rows if r.extra.get("profile") == "expcorr" and r.metric == "nmse_db"]
        ax = row[2]
        for method, style in (("lmmse_closed_form", "k:"), ("diffusion_denoise", "o-"),
                              *((f"diffusion_denoise_{k}_steps", "x--") for k in SWEEP_STEPS)):
            pts = sorted((r.extra["snr_db"], r.value) for r in sanity_rows if r.method == method)
            if pts:
                ax.plot(*zip(*pts), style, label=method.replace("diffusion_denoise", "diffusion"), ms=3, lw=1)
        ax.set_title("sanity: exp. correlated, rho 0.9, N 64", fontsize=9)
        ax.set_xlabel("SNR (dB)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
