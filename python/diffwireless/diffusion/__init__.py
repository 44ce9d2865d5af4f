"""Diffusion in the style of Hugging Face diffusers: schedules and samplers apart from the networks they run."""

from diffwireless.diffusion.samplers import (
    DDIMSampler,
    DDPMSampler,
    ForwardPass,
    OpenSetPass,
    Sampler,
    StopRequested,
    ddim_timesteps,
)
from diffwireless.diffusion.schedule import NoiseSchedule

__all__ = ["DDIMSampler", "DDPMSampler", "ForwardPass", "NoiseSchedule", "OpenSetPass", "Sampler", "StopRequested",
           "ddim_timesteps"]
