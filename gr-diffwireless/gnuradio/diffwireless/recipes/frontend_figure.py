"""The classifier front end in pictures (``make screenshots`` writes ``docs/img/classifier-frontend.png``).

A capture of three bursts like those of :mod:`gnuradio.diffwireless.recipes.radio_sources` (a pulse-coded OOK
telegram, a 2-FSK burst and an OFDM packet, each at its own rate and carrier offset, through the receiver model at
20 dB): the gate over the noise floor, each burst's spectrum as recorded and as the network sees it (carrier
centred, band fitted to :data:`~diffwireless.frontend.BAND_SHARE`), and one frame of each.

    python -m gnuradio.diffwireless.recipes.frontend_figure OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from diffwireless.bench.results import headless_pyplot
from diffwireless.frontend import BAND_SHARE, _spectrum, burst_frames, gate_bursts, remove_dc, smoothed_power

from gnuradio.diffwireless.recipes.radio_sources import clean_burst, received

LABELS = ("ook", "2fsk", "ofdm")


def capture(seed: int = 4) -> tuple[np.ndarray, list[tuple[int, int, str]]]:
    """The capture (one receiver: one fading draw, carrier offset, DC and noise for all of it) and where each burst
    lies in it: (start, end, label)."""
    rng = np.random.default_rng(seed)
    parts, spans, pos = [], [], 0
    for label, symbols in zip(LABELS, (60, 400, 600)):
        burst = clean_burst(label, symbols, rng)
        gap = np.zeros(int(rng.integers(4096, 8192)), np.complex64)
        parts += [burst, gap]
        spans.append((pos, pos + len(burst), label))
        pos += len(burst) + len(gap)
    x, start = received(np.concatenate(parts), 20.0, rng)
    return x.astype(np.complex64), [(start + s, start + e, label) for s, e, label in spans]


def _label(burst, truth: list[tuple[int, int, str]]) -> str:
    overlap = [(min(burst.end, e) - max(burst.start, s), label) for s, e, label in truth]
    return max(overlap)[1]


def draw(out_dir: str | Path) -> Path:
    plt = headless_pyplot()
    x, truth = capture()
    x = remove_dc(x)
    power = smoothed_power(x)
    bursts = gate_bursts(x, min_length=256)
    fig = plt.figure(figsize=(11, 6.5))
    top = fig.add_subplot(2, 1, 1)
    top.plot(10 * np.log10(power + 1e-12), lw=0.5, color="tab:gray")
    floor = bursts[0].noise_power if bursts else float(np.median(power))
    top.axhline(10 * np.log10(floor), color="k", lw=0.8, ls=":", label="noise floor")
    top.axhline(10 * np.log10(floor) + 6, color="tab:red", lw=0.8, ls="--", label="gate (6 dB over it)")
    named = [(b, _label(b, truth)) for b in bursts]
    for b, label in named:
        top.axvspan(b.start, b.end, color="tab:blue", alpha=0.12)
        top.text((b.start + b.end) / 2, 0.97, f"{label}, {b.snr_db:.0f} dB", ha="center", va="top", fontsize=7,
                 transform=top.get_xaxis_transform())
    top.set_xlabel("sample")
    top.set_ylabel("power, 64-sample average (dB)")
    top.legend(fontsize=7, loc="lower right")
    top.set_title("1. Bursts gated over the noise floor (hold 1024 samples keeps an OOK telegram whole)", fontsize=9)
    shown = [next(bl for bl in named if bl[1] == label) for label in LABELS if any(bl[1] == label for bl in named)]
    for k, (b, label) in enumerate(shown):
        raw = x[b.start:b.end]
        frames = burst_frames(raw, 1024, 4, BAND_SHARE, b.noise_power)
        ax = fig.add_subplot(2, 3, 4 + k)
        f, p = _spectrum(raw, 1024)
        ax.plot(f, 10 * np.log10(p + 1e-12), lw=0.7, color="tab:gray", label="as recorded")
        f2, p2 = _spectrum(frames.ravel(), 1024)
        ax.plot(f2, 10 * np.log10(p2 + 1e-12), lw=0.7, color="tab:blue", label="as the network sees it")
        ax.axvspan(-BAND_SHARE / 2, BAND_SHARE / 2, color="tab:blue", alpha=0.06)
        ax.set_xlabel("frequency (cycles/sample)")
        ax.set_title(f"2. {label}: centred, band fitted to {BAND_SHARE:g}", fontsize=8)
        inset = ax.inset_axes([0.02, 0.02, 0.4, 0.3])
        inset.plot(frames[0].real[:256], lw=0.5)
        inset.plot(frames[0].imag[:256], lw=0.5)
        inset.set_xticks([])
        inset.set_yticks([])
        inset.set_title("a frame (I, Q)", fontsize=6, pad=1)
        if k == 0:
            ax.set_ylabel("power density (dB)")
            ax.legend(fontsize=6, loc="upper right")
    fig.tight_layout()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "classifier-frontend.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    from PIL import Image  # as make docs-plots: a small palette PNG for the repository

    Image.open(path).convert("RGB").quantize(128).save(path, optimize=True)
    return path


if __name__ == "__main__":
    print(draw(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
