"""A vectorised symbol-rate link: hardware impairments as GNU Radio's ``gr-channels`` blocks model them, then noise.

Order of a link (the order of the example flowgraph): transmit IQ imbalance (``channels.iqbal_gen``, mode 0),
2nd-order distortion (``channels.distortion_2_gen``), 3rd-order distortion (``channels.distortion_3_gen``, a PA
that compresses for negative beta), phase noise (``channels.phase_noise_gen``), additive noise at ``snr_db``
(Es/N0, unit-power symbols), then the receive ADC (``channels.quantizer`` on I and on Q).

Each model is the GNU Radio block's own arithmetic (GNU Radio 3.10 ``gr-channels`` Python hier blocks):

- ``iqbal_gen(magnitude_db, phase_deg, mode=0)``: ``re' = g re cos(phi)``, ``im' = g re sin(phi) + im``,
  ``g = 10^(magnitude_db/20)``.
- ``distortion_2_gen(beta)``: ``x + beta (x^2 + x conj(x))``; ``distortion_3_gen(beta)``: ``x + beta x |x|^2``.
- ``phase_noise_gen(noise_mag, alpha)``: ``x e^{j phi}``, ``phi`` = Gaussian noise of standard deviation
  ``noise_mag`` through ``single_pole_iir_filter_ff(alpha)`` (``phi[n] = alpha w[n] + (1 - alpha) phi[n-1]``),
  so its stationary standard deviation is ``noise_mag sqrt(alpha / (2 - alpha))``.
- ``quantizer(bits)``: ``rint(v 2^(bits-1)) / 2^(bits-1)``, through a 16-bit short (saturating).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy.signal import lfilter

from diffwireless.constellations import noise_var

NOISE_KINDS = ("gaussian", "laplacian", "impulsive")
IMPULSE_PROB = 0.1  # Bernoulli-Gaussian: probability that a symbol's noise is an impulse
IMPULSE_RATIO = 10.0  # ... and the impulse's variance over the background's (total variance kept at the SNR's)


@dataclass(frozen=True)
class Impairments:
    """Hardware impairments of one link, in the units of the GNU Radio blocks' parameters (0 = absent)."""

    iq_magnitude_db: float = 0.0
    iq_phase_deg: float = 0.0
    distortion2_beta: float = 0.0
    distortion3_beta: float = 0.0
    phase_noise_mag: float = 0.0
    phase_noise_alpha: float = 0.1
    adc_bits: int = 0  # 0: no quantizer

    @property
    def phase_noise_std(self) -> float:
        """Stationary standard deviation of the phase (rad)."""
        return float(_stationary_std(self.phase_noise_mag, self.phase_noise_alpha))

    def distort(self, x: np.ndarray) -> np.ndarray:
        """The memoryless transmit impairments (IQ imbalance, 2nd- and 3rd-order distortion) of ``x [n]``."""
        x = np.asarray(x, dtype=np.complex128)
        if self.iq_magnitude_db or self.iq_phase_deg:
            x = _iq_imbalance(x, self.iq_magnitude_db, self.iq_phase_deg)
        if self.distortion2_beta or self.distortion3_beta:
            x = _distortion(x, self.distortion2_beta, self.distortion3_beta)
        return x

    def phase_noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """A phase-noise sequence ``[n]`` (rad), the filter starting at rest as GNU Radio's does."""
        if not self.phase_noise_mag:
            return np.zeros(n)
        a = self.phase_noise_alpha
        return lfilter([a], [1.0, -(1.0 - a)], rng.standard_normal(n) * self.phase_noise_mag)

    def quantize(self, y: np.ndarray) -> np.ndarray:
        """The ADC on I and on Q (identity when ``adc_bits`` is 0)."""
        return _adc(y, self.adc_bits) if self.adc_bits else y

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


IDEAL = Impairments()


# The block arithmetic, for one set of parameters (floats) or one per symbol (arrays).
def _iq_imbalance(x, magnitude_db, phase_deg):
    g = 10.0 ** (np.asarray(magnitude_db) / 20.0)
    phi = np.deg2rad(phase_deg)
    return g * x.real * np.cos(phi) + 1j * (g * x.real * np.sin(phi) + x.imag)


def _distortion(x, beta2, beta3):
    x = x + beta2 * (x * x + x * np.conj(x))
    return x + beta3 * x * np.abs(x) ** 2


def _stationary_std(noise_mag, alpha):
    return noise_mag * np.sqrt(alpha / (2.0 - alpha))


def _adc(y, bits):
    """``quantizer(bits)`` on I and Q; where ``bits`` is 0 (arrays only), the sample passes unquantised."""
    scale = np.where(np.asarray(bits) > 0, 2.0 ** (np.asarray(bits) - 1), np.inf)
    q = lambda v: np.where(np.isinf(scale), v, np.clip(np.rint(v * scale), -32768, 32767) / scale)  # noqa: E731
    return q(y.real) + 1j * q(y.imag)


@dataclass(frozen=True)
class HardwareProfile:
    """Impairments drawn uniformly within documented ranges: what a model is trained for.

    ``nominal`` is the centre; every field of :class:`Impairments` varies by ``+-spread`` of its nominal value
    (the ADC by ``+-adc_bits_spread`` bits), so a model sees a family of transceivers of one design rather than one
    unit. ``sample(n)`` draws one set per symbol.
    """

    nominal: Impairments
    spread: float = 0.2
    adc_bits_spread: int = 1
    notes: str = ""

    def ranges(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for key, v in self.nominal.to_dict().items():
            if key == "adc_bits":
                out[key] = [max(v - self.adc_bits_spread, 0), v + self.adc_bits_spread] if v else [0, 0]
            elif key == "phase_noise_alpha":
                out[key] = [v, v]
            else:
                lo, hi = sorted((v * (1 - self.spread), v * (1 + self.spread)))
                out[key] = [lo, hi]
        return out

    def edge(self, sign: int) -> Impairments:
        """Every impairment at the weak (``sign=-1``) or strong (``+1``) end of its range."""
        n = self.nominal
        f = 1.0 + (1 if sign > 0 else -1) * self.spread
        bits = n.adc_bits - (1 if sign > 0 else -1) * self.adc_bits_spread if n.adc_bits else 0
        return replace(n, iq_magnitude_db=n.iq_magnitude_db * f, iq_phase_deg=n.iq_phase_deg * f,
                       distortion2_beta=n.distortion2_beta * f, distortion3_beta=n.distortion3_beta * f,
                       phase_noise_mag=n.phase_noise_mag * f, adc_bits=max(bits, 0))


# The profile the shipped detector models are trained for: a low-cost zero-IF transceiver.
DEFAULT_PROFILE = HardwareProfile(
    nominal=Impairments(iq_magnitude_db=1.0, iq_phase_deg=5.0, distortion2_beta=0.01, distortion3_beta=-0.04,
                        phase_noise_mag=0.08, phase_noise_alpha=0.1, adc_bits=6),
    spread=0.2, adc_bits_spread=1,
    notes="transmit IQ imbalance, weak 2nd-order and compressive 3rd-order distortion, phase noise "
          "(stationary std ~1.1 deg), 5-7 bit ADC with a step of 2^-(bits-1) at unit symbol power")


def sample_impairments(profile: HardwareProfile, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-symbol impairment parameters ``{field: [n]}`` drawn uniformly within ``profile.ranges()``."""
    out = {}
    for key, (lo, hi) in profile.ranges().items():
        out[key] = (rng.integers(int(lo), int(hi) + 1, n) if key == "adc_bits" else rng.uniform(lo, hi, n))
    return out


def apply_sampled(x: np.ndarray, p: dict[str, np.ndarray], snr_db: np.ndarray, rng: np.random.Generator,
                  noise: str = "gaussian") -> np.ndarray:
    """A link with per-symbol impairments ``p`` (from :func:`sample_impairments`) and per-symbol ``snr_db``.

    Phase noise is drawn from its stationary distribution for each symbol independently (training data has no
    memory to keep); everything else is as :func:`simulate`.
    """
    x = _iq_imbalance(x, p["iq_magnitude_db"], p["iq_phase_deg"])
    x = _distortion(x, p["distortion2_beta"], p["distortion3_beta"])
    x = x * np.exp(1j * rng.standard_normal(len(x)) * _stationary_std(p["phase_noise_mag"], p["phase_noise_alpha"]))
    return _adc(x + add_noise(len(x), snr_db, rng, noise), p["adc_bits"])


def add_noise(n: int, snr_db: float | np.ndarray, rng: np.random.Generator, kind: str = "gaussian") -> np.ndarray:
    """Complex noise ``[n]`` of variance ``10^(-snr_db/10)`` (a unit-power signal at ``snr_db``).

    ``gaussian``: circular AWGN. ``laplacian``: independent Laplace I and Q of the same variance (heavier tails,
    never seen in training). ``impulsive``: Bernoulli-Gaussian: with probability 0.1 a symbol's noise has 10 times
    the background variance, the background scaled so that the total variance is still the SNR's.
    """
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    var = np.broadcast_to(noise_var(snr_db), (n,))
    if kind == "gaussian":
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * np.sqrt(var / 2)
    if kind == "laplacian":
        b = np.sqrt(var / 4)  # Laplace variance is 2 b^2 per dimension
        return rng.laplace(0, 1, n) * b + 1j * rng.laplace(0, 1, n) * b
    background = var / (1 - IMPULSE_PROB + IMPULSE_PROB * IMPULSE_RATIO)
    scale = np.where(rng.random(n) < IMPULSE_PROB, IMPULSE_RATIO, 1.0) * background
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)) * np.sqrt(scale / 2)


@dataclass
class LinkRun:
    """One simulated transmission: what was sent, what was received, and how."""

    indices: np.ndarray
    sent: np.ndarray
    received: np.ndarray
    phase: np.ndarray
    snr_db: float
    impairments: Impairments
    noise: str = "gaussian"
    extra: dict[str, Any] = field(default_factory=dict)


def simulate(points: np.ndarray, n: int, snr_db: float, impairments: Impairments = IDEAL,
             rng: np.random.Generator | None = None, noise: str = "gaussian") -> LinkRun:
    """Send ``n`` uniformly random symbols of ``points`` (unit power) through the link."""
    rng = rng if rng is not None else np.random.default_rng()
    idx = rng.integers(0, len(points), n)
    sent = np.asarray(points)[idx]
    phase = impairments.phase_noise(n, rng)
    x = impairments.distort(sent) * np.exp(1j * phase)
    y = impairments.quantize(x + add_noise(n, snr_db, rng, noise))
    return LinkRun(idx, sent, y, phase, float(snr_db), impairments, noise)
