"""Streaming summary of an IQ stream: sample count, power, peak, DC, non-finite samples, clipping, averaged spectrum.

Fed chunk by chunk (``update``), so a replay of any length is summarised in constant memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class IQSummary:
    """Accumulates statistics of complex samples at full scale 1.0.

    Args:
        n_fft: FFT size of the averaged power spectrum (Hann window, non-overlapping segments).
        sample_rate: samples per second, for the frequency axis (None: normalised frequency).
        clip_level: a component at or beyond this magnitude counts as clipped (1.0 - 1 LSB of 8 bits by default).
        envelope_points: how many points of the max-hold magnitude envelope to keep for the plot.
    """

    n_fft: int = 1024
    sample_rate: float | None = None
    clip_level: float = 1.0 - 1.0 / 128
    envelope_points: int = 2000
    num_samples: int = 0
    num_nonfinite: int = 0
    num_clipped: int = 0
    _power_sum: float = 0.0
    _dc_sum: complex = 0j
    _peak: float = 0.0
    _psd_sum: np.ndarray | None = None
    _psd_count: int = 0
    _pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.complex64))
    _envelope: list[float] = field(default_factory=list)
    _envelope_block: int = 1024
    tag_counts: dict[str, int] = field(default_factory=dict)

    def update(self, samples: np.ndarray) -> None:
        """Add a chunk of samples, shape ``(n,)``, complex."""
        samples = np.asarray(samples, dtype=np.complex64).reshape(-1)
        self.num_samples += samples.size
        finite = np.isfinite(samples)
        if not finite.all():
            self.num_nonfinite += int(samples.size - finite.sum())
            samples = samples[finite]
        if samples.size == 0:
            return
        mag2 = samples.real.astype(np.float64) ** 2 + samples.imag.astype(np.float64) ** 2
        self._power_sum += float(mag2.sum())
        self._dc_sum += complex(samples.sum(dtype=np.complex128))
        self._peak = max(self._peak, float(np.sqrt(mag2.max())))
        self.num_clipped += int(((np.abs(samples.real) >= self.clip_level) |
                                 (np.abs(samples.imag) >= self.clip_level)).sum())
        # Max-hold per block of this chunk (the last block may be short).
        n_full = mag2.size // self._envelope_block * self._envelope_block
        if n_full:
            self._envelope.extend(np.sqrt(mag2[:n_full].reshape(-1, self._envelope_block).max(axis=1)).tolist())
        if n_full < mag2.size:
            self._envelope.append(float(np.sqrt(mag2[n_full:].max())))
        if len(self._envelope) > 2 * self.envelope_points:
            # Halve the envelope resolution (max of pairs) to stay within budget.
            env = np.asarray(self._envelope[: len(self._envelope) // 2 * 2]).reshape(-1, 2).max(axis=1)
            self._envelope = env.tolist()
            self._envelope_block *= 2
        pending = np.concatenate([self._pending, samples])
        n_seg = pending.size // self.n_fft
        if n_seg:
            segs = pending[: n_seg * self.n_fft].reshape(n_seg, self.n_fft) * np.hanning(self.n_fft)
            spec = np.abs(np.fft.fftshift(np.fft.fft(segs, axis=1), axes=1)) ** 2
            self._psd_sum = spec.sum(axis=0) if self._psd_sum is None else self._psd_sum + spec.sum(axis=0)
            self._psd_count += n_seg
        self._pending = pending[n_seg * self.n_fft:]

    def count_tag(self, key: str) -> None:
        self.tag_counts[key] = self.tag_counts.get(key, 0) + 1

    @property
    def mean_power_dbfs(self) -> float:
        n = self.num_samples - self.num_nonfinite
        return 10 * np.log10(self._power_sum / n) if n and self._power_sum > 0 else float("-inf")

    @property
    def peak_dbfs(self) -> float:
        return 20 * np.log10(self._peak) if self._peak > 0 else float("-inf")

    def psd_db(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(frequency, power dB)`` of the averaged spectrum, frequency in Hz (or cycles/sample), or None."""
        if self._psd_sum is None:
            return None
        window_power = float(np.sum(np.hanning(self.n_fft) ** 2))
        psd = self._psd_sum / self._psd_count / window_power
        freq = np.fft.fftshift(np.fft.fftfreq(self.n_fft, d=1.0 / (self.sample_rate or 1.0)))
        return freq, 10 * np.log10(np.maximum(psd, 1e-20))

    def report(self) -> dict[str, Any]:
        """The summary as JSON-ready values."""
        n_ok = self.num_samples - self.num_nonfinite
        peak_freq = None
        psd = self.psd_db()
        if psd is not None:
            peak_freq = float(psd[0][int(np.argmax(psd[1]))])
        papr = self.peak_dbfs - self.mean_power_dbfs if n_ok and self._power_sum > 0 else None
        return {
            "num_samples": self.num_samples,
            "duration_s": self.num_samples / self.sample_rate if self.sample_rate else None,
            "mean_power_dbfs": round(float(self.mean_power_dbfs), 2),
            "peak_dbfs": round(float(self.peak_dbfs), 2),
            "papr_db": round(float(papr), 2) if papr is not None else None,
            "dc_offset": [round((self._dc_sum / n_ok).real, 5), round((self._dc_sum / n_ok).imag, 5)] if n_ok else None,
            "clipped_fraction": self.num_clipped / n_ok if n_ok else 0.0,
            "nonfinite_samples": self.num_nonfinite,
            "spectrum_peak_offset_hz" if self.sample_rate else "spectrum_peak_offset": peak_freq,
            "tags": dict(sorted(self.tag_counts.items())),
        }

    def plot(self, path: str, title: str = "") -> None:
        """Save a PNG: averaged spectrum (top) and max-hold magnitude envelope (bottom)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (ax_psd, ax_env) = plt.subplots(2, 1, figsize=(9, 6.5))
        psd = self.psd_db()
        if psd is not None:
            freq, power = psd
            scale, unit = (1e3, "kHz") if self.sample_rate else (1.0, "cycles/sample")
            ax_psd.plot(freq / scale, power, lw=0.8)
            ax_psd.set_xlabel(f"frequency offset ({unit})")
        ax_psd.set_ylabel("power (dB/bin, full scale)")
        ax_psd.set_title(title or "averaged spectrum")
        ax_psd.grid(alpha=0.3)
        env = np.asarray(self._envelope)
        if env.size:
            t = np.arange(env.size) * self._envelope_block
            if self.sample_rate:
                ax_env.plot(t / self.sample_rate * 1e3, env, lw=0.8)
                ax_env.set_xlabel("time (ms)")
            else:
                ax_env.plot(t, env, lw=0.8)
                ax_env.set_xlabel("sample")
        ax_env.set_ylabel("|x| max-hold (full scale)")
        ax_env.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
