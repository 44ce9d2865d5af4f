"""gnuradio.diffwireless: GNU Radio blocks of gr-diffwireless.

Thin adapters from GNU Radio streams, tags and messages to the core library ``diffwireless``; no signal
processing lives here.
"""

from diffwireless import __version__, open_recording

from diffwireless.channel import DEFAULT_PROFILE

from .anomaly_detector import anomaly_detector
from .constellations import gr_constellation, link_constellation
from .diffusion_denoiser import diffusion_denoiser
from .diffusion_detector import diffusion_detector
from .diffusion_ofdm_equalizer import diffusion_ofdm_equalizer
from .diffusion_ofdm_rx import diffusion_ofdm_rx
from .diffusion_waterfall import diffusion_waterfall
from .channel_view import channel_view
from .constellation_view import constellation_view
from .engine_monitor import engine_monitor
from .recipes.ofdm_loopback import tdl_taps
from .engine_block import engine_block
from .engine_config import engine_options
from .modulation_augmenter import modulation_augmenter
from .modulation_classifier import modulation_classifier
from .sdr_sink import sdr_sink
from .sdr_source import SDRNotFoundError, sdr_source
from .sigmf_sink import sigmf_sink
from .sigmf_source import sigmf_source


def bundled_recording(name: str = "demo_qpsk_bursts") -> str:
    """Path of a recording shipped with gr-diffwireless (default: the demo recording), for GRC variables."""
    from diffwireless.paths import bundled_recording as _bundled

    return _bundled(name)


__all__ = [
    "DEFAULT_PROFILE",
    "anomaly_detector",
    "gr_constellation",
    "link_constellation",
    "SDRNotFoundError",
    "bundled_recording",
    "diffusion_denoiser",
    "diffusion_detector",
    "diffusion_ofdm_equalizer",
    "diffusion_ofdm_rx",
    "diffusion_waterfall",
    "channel_view",
    "constellation_view",
    "engine_monitor",
    "engine_block",
    "engine_options",
    "modulation_augmenter",
    "modulation_classifier",
    "open_recording",
    "sdr_sink",
    "sdr_source",
    "sigmf_sink",
    "sigmf_source",
    "tdl_taps",
    "__version__",
]
