"""Strict checks of the settings a runner receives from a bundle config (one-line errors, before any work).

``python -m monai.bundle run --overwrite false`` hands the config the *string* ``'false'``, which Python counts as
true; :func:`flag` accepts true/false/1/0/yes/no (any case) and bools and refuses anything else.
:data:`RULES` holds the range of every numeric setting of the inference and evaluation configs, by setting name;
a runner checks the ``settings`` its config passes with :func:`check_settings`, and turns the flags held by its
inferer, sampler and scheduler into bools with :func:`parse_flags`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import require

_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")
#: attribute names of flags held by runners, inferers, samplers and MONAI schedulers (see :func:`parse_flags`)
FLAG_ATTRIBUTES = ("overwrite", "trajectory", "panel", "degrade_inputs", "allow_same_modality", "amp", "keep_known",
                   "clip_denoised", "clip_sample", "clip")


def flag(value, name: str) -> bool:
    """``value`` as a bool: a bool, 0/1, or true/false/1/0/yes/no in any case; anything else is a one-line error."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    require(text in _TRUE + _FALSE, name, f"expected true or false, got {value!r}")
    return text in _TRUE


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


@dataclass(frozen=True)
class Range:
    """A finite number (an integer when ``integer``) in ``[low, high]`` (``above``: strictly greater than ``low``).
    ``high`` may name another setting (e.g. ``"num_train_timesteps"``) whose value is the bound."""

    low: float | None = None
    high: float | str | None = None
    integer: bool = False
    above: bool = False

    def __call__(self, value, name: str, settings: Mapping) -> int | float:
        high = settings.get(self.high) if isinstance(self.high, str) else self.high
        kind = "an integer" if self.integer else "a finite number"
        bounds = ([f"{'>' if self.above else '>='} {_show(self.low)}"] if self.low is not None else []) + (
            [f"<= {_show(high)}" + (f" ({self.high})" if isinstance(self.high, str) else "")] if high is not None else [])
        problem = f"must be {kind}" + (f" {' and '.join(bounds)}" if bounds else "") + f", got {value!r}"
        number = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
        ok = math.isfinite(number) and (not self.integer or number.is_integer())
        ok = ok and (self.low is None or (number > self.low if self.above else number >= self.low))
        require(ok and (high is None or number <= float(high)), name, problem)
        return int(number) if self.integer else number


@dataclass(frozen=True)
class Each:
    """A non-empty list whose every item passes ``rule``."""

    rule: Callable

    def __call__(self, value, name: str, settings: Mapping) -> list:
        items = [value] if isinstance(value, (int, float)) else value
        require(isinstance(items, (list, tuple)) and len(items) > 0, name, f"expected a non-empty list, got {value!r}")
        return [self.rule(v, name, settings) for v in items]


def _flag(value, name: str, settings: Mapping) -> bool:
    return flag(value, name)


def _optional(rule: Callable) -> Callable:
    return lambda value, name, settings: None if value is None else rule(value, name, settings)


_STEPS = Range(1, "num_train_timesteps", integer=True)
_COUNT, _POSITIVE_INT, _WEIGHT = Range(0, integer=True), Range(1, integer=True), Range(0)
_FRACTION, _FINITE, _POSITIVE = Range(0, 1), Range(), Range(0, above=True)

#: setting name -> rule(value, name, settings) returning the parsed value (raising a one-line error)
RULES: dict[str, Callable] = {
    **{name: _flag for name in FLAG_ATTRIBUTES},
    "seed": Range(0, 2**32 - 1, integer=True), "batch_size": _POSITIVE_INT, "image_size": _POSITIVE_INT,
    "num_train_timesteps": _POSITIVE_INT, "num_inference_steps": _STEPS, "ddim_steps": _STEPS,
    "noise_level": _STEPS, "source_noise_level": _STEPS, "start_noise_level": _optional(_STEPS), "stride": _STEPS,
    "eta": _WEIGHT, "ddim_eta": _WEIGHT, "guidance_weight": _WEIGHT, "guidance_weights": Each(_WEIGHT),
    "gradient_scale": _FINITE, "desired_value": _FRACTION, "desired_values": _optional(Each(_FRACTION)), "fixed_scales": _optional(Each(_FINITE)),
    "num_samples": _POSITIVE_INT, "uncertainty_samples": _COUNT, "trajectory_frames": _COUNT, "pixdim": _POSITIVE,
    "margin": _COUNT, "threshold": _FRACTION, "tumour_flair_ratio": _POSITIVE, "tissue_threshold": _FINITE,
    "histogram_bins": _POSITIVE_INT, "max_real": _COUNT, "panel_cases": _COUNT, "fid_in_channels": _POSITIVE_INT,
    "mask_radius": _POSITIVE, "min_brain_fraction": _FRACTION, "max_inputs": _COUNT, "healthy_per_case": _POSITIVE_INT, "sr_factor": Range(1),
    "latent_scale": _POSITIVE, "roi_size": Each(_POSITIVE_INT), "noise_std": Each(_WEIGHT), "salt_pepper": Each(_FRACTION),
    "mask_area": Each(Range(0, 1, above=True)),
}


def check_settings(settings: Mapping | None) -> dict:
    """Every setting checked and parsed by its :data:`RULES` entry (settings without a rule are kept as they are);
    ``num_train_timesteps`` first, since others are bounded by it."""
    settings = dict(settings or {})
    order = sorted(settings, key=lambda name: name != "num_train_timesteps")
    parsed: dict = {}
    for name in order:
        rule = RULES.get(name)
        parsed[name] = rule(settings[name], name, parsed) if rule else settings[name]
    return parsed


def parse_flags(*objects) -> None:
    """Replace every :data:`FLAG_ATTRIBUTES` attribute of ``objects`` (and of their ``sampler``, ``scheduler`` and
    ``guidance``)
    that is not a bool by its :func:`flag` value, so that ``'false'`` from the command line is False there too."""
    seen: set[int] = set()
    stack = [o for o in objects if o is not None]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        attributes = vars(obj) if hasattr(obj, "__dict__") else {}
        for name in FLAG_ATTRIBUTES:
            if isinstance(attributes.get(name), str):
                setattr(obj, name, flag(attributes[name], name))
        stack += [attributes[a] for a in ("sampler", "scheduler", "guidance") if attributes.get(a) is not None]


def check_runner(runner, *parts) -> dict:
    """The start of a runner's ``run``: check and parse ``runner.settings`` (:func:`check_settings`) and the flags
    of ``runner`` and ``parts`` (:func:`parse_flags`); returns the parsed settings."""
    runner.settings = check_settings(getattr(runner, "settings", None))
    parse_flags(runner, *parts)
    return runner.settings
