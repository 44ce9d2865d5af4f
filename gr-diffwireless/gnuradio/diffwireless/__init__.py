"""gnuradio.diffwireless: GNU Radio blocks of gr-diffwireless.

Thin adapters from GNU Radio streams, tags and messages to the core library ``diffwireless``; no signal
processing lives here.
"""

from diffwireless import __version__, open_recording

from .diffusion_denoiser import diffusion_denoiser
from .engine_block import engine_block
from .sdr_source import SDRNotFoundError, sdr_source
from .sigmf_sink import sigmf_sink
from .sigmf_source import sigmf_source


def bundled_recording(name: str = "demo_qpsk_bursts") -> str:
    """Path of a recording shipped with gr-diffwireless (default: the demo recording), for GRC variables."""
    from diffwireless.paths import bundled_recording as _bundled

    return _bundled(name)


__all__ = [
    "SDRNotFoundError",
    "bundled_recording",
    "diffusion_denoiser",
    "engine_block",
    "open_recording",
    "sdr_source",
    "sigmf_sink",
    "sigmf_source",
    "__version__",
]
