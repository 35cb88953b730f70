"""Guided translation of many cases: what ``inference.json`` runs.

Every input case becomes one folder ``<output_dir>/<case>/`` with ``input.nii.gz`` (the scaled slice),
``label.nii.gz`` (when the case has one), ``<target>.nii.gz`` and ``<target>_difference.nii.gz`` per target and
``panel.png``; ``<output_dir>/summary.csv`` has a row per case and target. All inputs, targets, checkpoints and
output folders are checked before anything is written; case folders appear whole or not at all.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

import torch
from monai.utils import set_determinism
from tqdm import tqdm

from ..data.cases import PreparedSlice, prepare_slice, resolve_cases
from ..data.io import save_csv, save_nifti, staged_output
from ..errors import exit_on_input_error, require
from ..viz import translation_panel
from ..networks.checkpoints import refuse_existing_and_load
from ..settings import check_runner

#: a score maps (B, C, H, W) images and their (B, 1, H, W) brain masks to (B,) values, e.g. R(x, 0)
Score = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def growth_targets(desired_values: Sequence[float] = (), fixed_scales: Sequence[float] = ()) -> list[dict]:
    """Targets of regression guidance: ``s_t = i - R`` for each desired value, fixed ``s_t`` for each scale."""
    targets = []
    for i in desired_values or ():
        require(0.0 <= float(i) <= 1.0, "desired_values", f"desired relative tumour size {i} is outside [0, 1]")
        targets.append({"name": f"desired_{float(i):g}", "desired_value": float(i), "fixed_scale": float("nan")})
    for s in fixed_scales or ():
        require(float(s) != 0.0, "fixed_scales", "a fixed s_t of 0 is plain DDIM reconstruction; use +1 or -1")
        name = ("grow" if s > 0 else "shrink") + ("" if abs(s) == 1 else f"_{abs(float(s)):g}")
        targets.append({"name": name, "desired_value": float("nan"), "fixed_scale": float(s)})
    require(len(targets) > 0, "desired_values", "no target given (set desired_values and/or fixed_scales)")
    return targets


class GuidedTranslation:
    """Translate every input case towards every target and write the outputs.

    Args:
        inputs: path(s) of case folders, dataset folders, datalist JSONs or single slice files, or a callable
            returning them (called in :meth:`run`).
        output_dir: where case folders and ``summary.csv`` go.
        network: the diffusion model; ``inferer(x, network, **target_kwargs)`` does the translation.
        inferer: e.g. :class:`~medi2i.diffusion.GuidedTranslationInferer`.
        targets: dicts with a ``name`` and the per-sample guidance keyword arguments, or a callable returning
            them (called in :meth:`run`, so that bad targets are one-line errors).
        checkpoints: ``[(module, path, what), ...]`` loaded (strictly) before the run.
        image_size: network input size (slices are zero-padded to it).
        scores: name -> :data:`Score`, reported for the input and each output in ``summary.csv``.
        batch_size: images (case x target) per sampler call.
        case_inputs: optional per-case guidance inputs, ``prepared slice -> {name: (1, S, S) tensor}`` (e.g. the
            desired mask z): computed for every case before any translation (so a bad one is an error before
            anything is written), passed to the inferer, written as ``<name>.nii.gz`` and drawn over the panel.
        uncertainty_samples: N > 1 translates each image N times with different seeds (needs stochastic decoding,
            DDIM eta > 0) and writes ``<target>_mean.nii.gz`` and ``<target>_std.nii.gz`` (per-pixel mean and
            standard deviation of the N samples) next to the output, which is the first sample.
        settings: the config's settings to check first (:func:`~medi2i.settings.check_settings`).
    """

    def __init__(self, inputs, output_dir: str, network: torch.nn.Module, inferer, targets: list[dict],
                 checkpoints: Sequence = (), image_size: int = 256, scores: dict[str, Score] | None = None,
                 slice_index: int | str = "largest_tumour", datalist_section: str = "test_cases", batch_size: int = 8,
                 device="cpu", seed: int = 0, overwrite: bool = False, panel: bool = True,
                 case_inputs: Callable[[PreparedSlice], dict[str, torch.Tensor]] | None = None,
                 uncertainty_samples: int = 0, settings: dict | None = None):
        self.inputs, self.output_dir, self.network, self.inferer = inputs, output_dir, network, inferer
        self.uncertainty_samples = int(uncertainty_samples)
        self.case_inputs, self._case_tensors = case_inputs, {}
        self.targets, self.checkpoints, self.image_size = targets, list(checkpoints), int(image_size)
        self.scores = scores or {}
        self.slice_index, self.section, self.batch_size = slice_index, datalist_section, max(1, int(batch_size))
        self.device, self.seed, self.overwrite, self.panel = torch.device(device), seed, overwrite, panel
        self.settings = settings

    @exit_on_input_error
    def run(self) -> list[dict]:
        if callable(self.targets):
            self.targets = self.targets()
        if hasattr(self.inferer, "check"):
            self.inferer.check()
        check_runner(self, self.inferer)
        eta = getattr(getattr(self.inferer, "sampler", None), "eta", 0.0)
        require(self.uncertainty_samples <= 1 or eta > 0, "uncertainty_samples",
                f"{self.uncertainty_samples} samples of deterministic DDIM are identical; set the sampler's eta > 0")
        inputs = self.inputs() if callable(self.inputs) else self.inputs  # a config's lazy default: errors are one line
        cases = resolve_cases(inputs, self.section)
        refuse_existing_and_load(self.output_dir, [case["name"] for case in cases], self.overwrite, self.checkpoints, self.device)
        if hasattr(self.inferer, "load"):
            self.inferer.load(map_location=self.device)
        self.network.eval()
        with tqdm(cases, desc="loading", unit="case") as bar:  # closed (new line) even when a case is bad
            prepared = [prepare_slice(case, self.image_size, self.slice_index) for case in bar]
        self._case_tensors = {p.name: self.case_inputs(p) for p in prepared} if self.case_inputs else {}
        set_determinism(self.seed)
        rows: list[dict] = []
        with tqdm(range(0, len(prepared), self.batch_size), desc="translating", unit="batch") as bar:
            for start in bar:
                rows += self._translate(prepared[start : start + self.batch_size])
        os.makedirs(self.output_dir, exist_ok=True)
        save_csv(rows, os.path.join(self.output_dir, "summary.csv"))
        return rows

    def _score(self, images: torch.Tensor, brain: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: score(images, brain).detach().cpu() for name, score in self.scores.items()}

    def _translate(self, chunk: list[PreparedSlice]) -> list[dict]:
        k = len(self.targets)
        x = torch.stack([p.image.as_tensor()[..., 0] for p in chunk]).to(self.device)
        brain = torch.stack([p.brain[..., 0] for p in chunk]).to(self.device)
        keys = [key for key in self.targets[0] if key != "name"]
        kwargs = {key: torch.tensor([t[key] for t in self.targets] * len(chunk), device=self.device) for key in keys}
        for key in self._case_tensors.get(chunk[0].name, {}):
            per_case = torch.stack([self._case_tensors[p.name][key] for p in chunk]).to(self.device)
            kwargs[key] = per_case.repeat_interleave(k, 0)
        start = time.perf_counter()
        translate = self._translator(x, k, kwargs)
        out = translate()
        seconds = (time.perf_counter() - start) / out.shape[0]
        spread = self._uncertainty(out, translate)
        scores_in = self._score(x, brain)
        scores_out = self._score(out, brain.repeat_interleave(k, 0))
        rows = []
        for b, prep in enumerate(chunk):
            outputs = [(t["name"], out[b * k + j].cpu()) for j, t in enumerate(self.targets)]
            maps = {f"{t['name']}_{stat}": v[b * k + j].cpu() for j, t in enumerate(self.targets) for stat, v in spread.items()}
            notes = {"input": ", ".join(f"{n}={v[b]:.3f}" for n, v in scores_in.items())}
            for j, t in enumerate(self.targets):
                notes[t["name"]] = ", ".join(f"{n}={v[b * k + j]:.3f}" for n, v in scores_out.items())
                row = {"case": prep.name, "slice": prep.slice_index, "target": t["name"]}
                row.update({key: t[key] for key in keys})
                row.update({f"{n}_input": round(float(v[b]), 6) for n, v in scores_in.items()})
                row.update({f"{n}_output": round(float(v[b * k + j]), 6) for n, v in scores_out.items()})
                row["seconds_per_image"] = round(seconds, 4)
                rows.append(row)
            self._write_case(prep, x[b].cpu(), outputs, notes, maps)
        return rows

    def _translator(self, x: torch.Tensor, k: int, kwargs: dict) -> Callable[[], torch.Tensor]:
        """A function translating each image of ``x`` towards its ``k`` targets. With an inferer that has ``encode``
        and ``decode`` the target-independent encoding runs once, here, and each call decodes all ``k`` targets of
        every image as one batch (also for every uncertainty sample)."""
        xk = x.repeat_interleave(k, 0)
        if not (hasattr(self.inferer, "encode") and hasattr(self.inferer, "decode")):
            return lambda: self.inferer(xk, self.network, **kwargs)
        x_noisy = self.inferer.encode(x, self.network).repeat_interleave(k, 0)
        return lambda: self.inferer.decode(x_noisy, self.network, xk, **kwargs)

    def _uncertainty(self, first: torch.Tensor, translate: Callable[[], torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{"mean", "std"}`` over ``uncertainty_samples`` translations (``first`` and N - 1 more), or ``{}``."""
        if self.uncertainty_samples <= 1:
            return {}
        draws = [first]
        for n in range(1, self.uncertainty_samples):
            torch.manual_seed(self.seed + n)
            draws.append(translate())
        stack = torch.stack(draws)
        return {"mean": stack.mean(0), "std": stack.std(0)}

    def _write_case(self, prep: PreparedSlice, source: torch.Tensor, outputs, notes, maps=None) -> None:
        with staged_output(os.path.join(self.output_dir, prep.name), overwrite=self.overwrite) as folder:
            save_nifti(prep.original, os.path.join(folder, "input.nii.gz"))
            if prep.original_label is not None:
                save_nifti(prep.original_label, os.path.join(folder, "label.nii.gz"))
            for name, image in outputs:
                save_nifti(prep.restore_edit(image.unsqueeze(-1)), os.path.join(folder, f"{name}.nii.gz"))
                diff = (image - source).abs().sum(0, keepdim=True)
                save_nifti(prep.restore(diff.unsqueeze(-1)), os.path.join(folder, f"{name}_difference.nii.gz"))
            for name, image in (maps or {}).items():  # a mean is an image; a std is a change
                restore = prep.restore_edit if name.endswith("_mean") else prep.restore
                save_nifti(restore(image.unsqueeze(-1)), os.path.join(folder, f"{name}.nii.gz"))
            extra = self._case_tensors.get(prep.name, {})
            for name, image in extra.items():
                save_nifti(prep.restore(image.float().cpu().unsqueeze(-1)), os.path.join(folder, f"{name}.nii.gz"))
            if self.panel:
                overlay = next(iter(extra.values()))[0].cpu() if extra else None
                translation_panel(os.path.join(folder, "panel.png"), source, outputs, notes=notes, overlay=overlay)
