"""Schedules, samplers and model files (core, no GNU Radio)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from diffwireless.diffusion import DDIMSampler, DDPMSampler, ForwardPass, NoiseSchedule, ddim_timesteps
from diffwireless.errors import ModelError
from diffwireless.models import build_model, load_model, save_model


def test_schedules_are_decreasing_and_match_noise_levels():
    for sched in (NoiseSchedule(), NoiseSchedule(kind="cosine"), NoiseSchedule(200, beta_end=0.05)):
        abar = sched.alphas_cumprod
        assert abar.shape == (sched.num_train_steps,)
        assert np.all(np.diff(abar) < 0) and 0 < abar[-1] < abar[0] < 1
        for t in (0, 7, sched.num_train_steps // 2, sched.num_train_steps - 1):
            assert sched.step_for_noise_var(float(sched.noise_to_signal(t))) == t
    assert NoiseSchedule().step_for_noise_var(0.0) == 0
    with pytest.raises(ValueError, match="kind"):
        NoiseSchedule(kind="sigmoid")
    with pytest.raises(ValueError, match="noise_var"):
        NoiseSchedule().step_for_noise_var(float("nan"))


def test_ddim_timesteps():
    steps = ddim_timesteps(99, 10)
    assert steps[0] == 99 and steps[-1] == 0 and len(steps) == 10 and np.all(np.diff(steps) < 0)
    assert list(ddim_timesteps(3, 10)) == [3, 2, 1, 0]  # never more steps than there are
    assert list(ddim_timesteps(0, 5)) == [0]
    assert list(ddim_timesteps(100, 4, "trailing")) == [100, 75, 50, 25]  # stops short of step 0
    assert list(ddim_timesteps(3, 10, "trailing")) == [3, 2, 1]
    assert list(ddim_timesteps(0, 3, "trailing")) == [0]
    with pytest.raises(ValueError, match="spacing"):
        DDIMSampler(spacing="leading")
    assert DDIMSampler(num_steps=10, start_step=3).nfe(NoiseSchedule()) == 4
    assert DDPMSampler(start_step=49).nfe(NoiseSchedule()) == 50
    with pytest.raises(ValueError, match="eta"):
        DDIMSampler(eta=1.5)
    with pytest.raises(ValueError, match="beyond"):
        DDIMSampler(start_step=1000).timesteps(NoiseSchedule())


class GaussianOracle(torch.nn.Module):
    """The exact noise predictor for data x0 ~ N(mean, var) per dimension: E[eps | x_t]."""

    def __init__(self, schedule: NoiseSchedule, mean: float, var: float) -> None:
        super().__init__()
        self.abar = torch.tensor(schedule.alphas_cumprod, dtype=torch.float64)
        self.mean, self.var = mean, var

    def forward(self, x_t, t, cond=None):
        a = self.abar[t].to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))
        # x_t = sqrt(a) x0 + sqrt(1-a) eps; Cov(eps, x_t) = sqrt(1-a); Var(x_t) = a var + 1 - a.
        return (1 - a).sqrt() * (x_t - a.sqrt() * self.mean) / (a * self.var + 1 - a)


@pytest.mark.parametrize("sampler", [DDPMSampler(from_observation=False),
                                     DDIMSampler(num_steps=200, from_observation=False)],
                         ids=["ddpm", "ddim-200"])
def test_samplers_reproduce_the_data_distribution_with_the_exact_denoiser(sampler):
    # (Strided DDIM shrinks the variance: about -10% at 50 steps on this linear schedule, -2.5% at 200.)
    sched = NoiseSchedule()
    oracle = GaussianOracle(sched, mean=0.7, var=0.25)
    gen = torch.Generator().manual_seed(1)
    x = torch.zeros(20000, 2, dtype=torch.float64)
    with torch.inference_mode():
        out = sampler.run(oracle, sched, x, generator=gen).numpy()
    assert abs(out.mean() - 0.7) < 0.02
    assert abs(out.var() / 0.25 - 1) < 0.05


def test_ddim_with_eta_one_over_every_step_is_ddpm():
    sched = NoiseSchedule(100)
    oracle = GaussianOracle(sched, mean=0.0, var=1.0)
    x = torch.zeros(64, 3, dtype=torch.float64)
    with torch.inference_mode():
        a = DDPMSampler(from_observation=False).run(oracle, sched, x, generator=torch.Generator().manual_seed(3))
        b = DDIMSampler(num_steps=100, eta=1.0, from_observation=False).run(
            oracle, sched, x, generator=torch.Generator().manual_seed(3))
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


def test_one_step_from_the_matched_step_is_the_posterior_mean():
    # With the exact denoiser, one DDIM step from the SNR-matched step returns E[x0 | y] (Tweedie), the MMSE
    # estimate; for a Gaussian prior that is the Wiener gain var / (var + noise_var) applied to y.
    sched = NoiseSchedule()
    oracle = GaussianOracle(sched, mean=0.0, var=1.0)
    t = 150
    noise_var = float(sched.noise_to_signal(t))
    y = torch.linspace(-3, 3, 101, dtype=torch.float64)[:, None]
    with torch.inference_mode():
        est = DDIMSampler(num_steps=1, start_step=t).run(oracle, sched, y)
    np.testing.assert_allclose(est.numpy(), y.numpy() / (1 + noise_var), rtol=1e-9, atol=1e-12)


def test_forward_pass_is_one_call():
    net = torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    with torch.inference_mode():
        np.testing.assert_allclose(ForwardPass().run(lambda a, t, c: net(a), None, x).numpy(), net(x).numpy())
    assert ForwardPass().nfe() == 1


def _model(name="m", item_shape=(8, 2), seed=0):
    torch.manual_seed(seed)
    return build_model(name, "mlp_denoiser", {"item_shape": list(item_shape), "hidden": 32}, NoiseSchedule(100),
                       card={"description": "test"})


def test_model_round_trip(tmp_path):
    model = _model()
    weights, card = save_model(model, tmp_path / "m")
    assert weights.name == "m.safetensors" and card.name == "m.json"
    doc = json.loads(card.read_text())
    assert doc["parameters"] == model.num_parameters and doc["size_bytes"] == weights.stat().st_size
    loaded = load_model(tmp_path / "m.safetensors")
    assert loaded.item_shape == (8, 2) and loaded.schedule == NoiseSchedule(100)
    assert loaded.card["description"] == "test"
    x, t = torch.randn(4, 8, 2), torch.tensor([5])
    with torch.inference_mode():
        np.testing.assert_array_equal(model.network(x, t).numpy(), loaded.network(x, t).numpy())


def test_model_errors(tmp_path):
    with pytest.raises(ModelError, match="pickle"):
        load_model(tmp_path / "weights.pt")
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load_model(tmp_path / "junk")
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(ModelError, match="no 'diffwireless' metadata"):
        load_model(tmp_path / "foreign")
    # Weights of one shape under the header of another: the mismatch is named.
    small, big = _model("a", (4, 2)), _model("b", (8, 2))
    save_model(big, tmp_path / "b")
    header = json.dumps(small.header())
    from safetensors import safe_open

    with safe_open(str(tmp_path / "b.safetensors"), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors, str(tmp_path / "mixed.safetensors"), metadata={"diffwireless": header})
    with pytest.raises(ModelError, match="do not fit"):
        load_model(tmp_path / "mixed")


class ConditionalOracle(GaussianOracle):
    """The exact denoiser of x0 ~ N(cond[:, 0] * mean, var): a class indicator in cond[:, 0] moves the mean; the
    unconditional input (indicator 0) is N(0, var)."""

    def forward(self, x_t, t, cond=None):
        a = self.abar[t].to(x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))
        mean = cond[:, :1].to(x_t.dtype) * self.mean
        return (1 - a).sqrt() * (x_t - a.sqrt() * mean) / (a * self.var + 1 - a)

    def unconditional(self, cond):
        out = cond.clone()
        out[:, 0] = 0
        return out


def test_classifier_free_guidance_scales_the_conditional_shift():
    # The noise estimate is linear in the mean, so guidance w turns the class mean m into w * m (variance kept).
    sched = NoiseSchedule()
    oracle = ConditionalOracle(sched, mean=0.5, var=0.25)
    x = torch.zeros(20000, 1, dtype=torch.float64)
    cond = torch.ones(20000, 1, dtype=torch.float64)
    for w in (0.0, 1.0, 2.0):
        sampler = DDIMSampler(num_steps=1000, eta=1.0, from_observation=False, guidance_scale=w)
        with torch.inference_mode():
            out = sampler.run(oracle, sched, x, cond, generator=torch.Generator().manual_seed(4)).numpy()
        assert abs(out.mean() - w * 0.5) < 0.02, w
        assert abs(out.var() / 0.25 - 1) < 0.06, w
    assert DDIMSampler(num_steps=10, guidance_scale=2.0).nfe(sched) == 20
    assert DDIMSampler(num_steps=10, guidance_scale=1.0).nfe(sched) == 10
    with pytest.raises(ValueError, match="guidance_scale"):
        DDIMSampler(guidance_scale=float("nan"))
    with pytest.raises(ValueError, match="unconditional branch"):
        DDIMSampler(num_steps=2, guidance_scale=2.0).run(GaussianOracle(sched, 0.0, 1.0), sched, x[:4], cond[:4])


def test_every_sampler_satisfies_the_sampler_protocol():
    from diffwireless.anomaly import AnomalyScoreSampler
    from diffwireless.chanest import GuidedDDIMSampler
    from diffwireless.diffusion.samplers import DDIMSampler, DDPMSampler, ForwardPass, Sampler

    samplers = [DDIMSampler(), DDPMSampler(), ForwardPass(), GuidedDDIMSampler(), AnomalyScoreSampler((10,))]
    for sampler in samplers:
        assert isinstance(sampler, Sampler), type(sampler).__name__
        hash(sampler)  # the engine's batching key

    class NotASampler:
        def run(self, *args):
            return None

    assert not isinstance(NotASampler(), Sampler)


def _rewrite(weights, tensors=None, **header_changes):
    """Rewrite a model file's tensors and/or header fields (as a hostile or broken file would have them)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata()
        current = {k: f.get_tensor(k) for k in f.keys()}
    header = json.loads(meta["diffwireless"])
    for key, value in header_changes.items():
        if key == "config":
            header["config"] = {**header["config"], **value}
        else:
            header[key] = value
    save_file(tensors if tensors is not None else current, str(weights), metadata={"diffwireless": json.dumps(header)})


def test_hostile_or_broken_model_files_are_model_errors_naming_the_file(tmp_path):
    import time

    def fresh(name):
        model = build_model(name, "mlp_denoiser", {"item_shape": [8, 2], "hidden": 16}, NoiseSchedule(100))
        return save_model(model, tmp_path / name)[0]

    cases = {
        "huge": ({"config": {"hidden": 16384}}, "over the cap"),
        "extra": ({"config": {"no_such_setting": 3}}, "do not make a mlp_denoiser"),
        "negative": ({"config": {"hidden": -4}}, "do not make a mlp_denoiser"),
        "other_arch": ({"arch": "unet1d"}, "weights do not fit|do not make"),
        "unknown_arch": ({"arch": "nope"}, "unknown architecture"),
        "long_schedule": ({"schedule": {**NoiseSchedule(100).to_dict(), "num_train_steps": 2_000_000_000}},
                          "over the cap"),
    }
    for name, (changes, message) in cases.items():
        weights = fresh(name)
        _rewrite(weights, **changes)
        started = time.monotonic()
        with pytest.raises(ModelError, match=f"{name}.safetensors: .*({message})"):
            load_model(weights)
        assert time.monotonic() - started < 5, name  # refused before anything large is built
    weights = fresh("nan")
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    first = sorted(k for k, t in tensors.items() if t.is_floating_point())[0]
    tensors[first] = tensors[first].clone()
    tensors[first].view(-1)[0] = float("nan")
    _rewrite(weights, tensors=tensors)
    with pytest.raises(ModelError, match=r"nan.safetensors: non-finite weights"):
        load_model(weights)
    weights = fresh("card")
    (tmp_path / "card.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match=r"card.json: the model card must be a JSON object"):
        load_model(weights)


def test_item_noise_is_a_function_of_each_items_seed_and_draw():
    from diffwireless.diffusion.noise import ItemNoise, item_seeds

    seeds = item_seeds(1234, np.arange(0, 64 * 1024, 1024))
    assert len(set(seeds.tolist())) == 64 and not np.array_equal(seeds, item_seeds(1235, np.arange(0, 64 * 1024, 1024)))
    whole = ItemNoise(seeds)
    first, second = (whole.randn((64, 50, 2), torch.device("cpu"), torch.float32) for _ in range(2))
    halves = [ItemNoise(seeds[s]) for s in (slice(0, 20), slice(20, 64))]
    again = torch.cat([h.randn((len(h.seeds), 50, 2), torch.device("cpu"), torch.float32) for h in halves])
    assert torch.equal(first, again)  # a row's noise does not depend on the rest of the batch
    assert not torch.equal(first, second)  # each draw is new
    z = torch.cat([first, second]).double().flatten()
    # 12800 standard normal values: mean within 4 standard errors, variance and kurtosis near 1 and 3.
    assert abs(z.mean()) < 4 / math.sqrt(len(z)) and abs(z.var() - 1) < 0.05 and abs((z ** 4).mean() - 3) < 0.25
    assert abs(np.corrcoef(first[:, :, 0].flatten(), first[:, :, 1].flatten())[0, 1]) < 0.05
    with pytest.raises(ValueError, match="seeds"):
        whole.randn((3, 2), torch.device("cpu"), torch.float32)
