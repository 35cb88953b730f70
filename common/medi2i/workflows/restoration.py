"""Conditional restoration runners of the Med-cDiff bundles: ``inference.json`` and ``evaluate.json``.

:class:`ConditionalRestoration` turns each input into ``<output_dir>/<case>/`` with ``condition.nii.gz`` (the
network's input y), ``output.nii.gz`` (the sample, on the network's grid), ``restored.nii.gz`` (the sample on the
input's own grid, affine and intensity units, when a ``postprocessing`` is given), ``target.nii.gz`` and
``mask.nii.gz`` when known, and ``panel.png``; ``summary.csv`` lists the cases. Inputs are a datalist section (clean slices, degraded by the
bundle's seeded degradation: the evaluation setting) or the user's own degraded 2D images (PNG/JPEG/NIfTI).
Everything is checked before anything is written; case folders appear whole or not at all.

:class:`RestorationEvaluation` compares the samples with classical baselines on the cases that have a target:
PSNR, SSIM, NMSE, accutance (+ LPIPS/FID with local weights; + PSNR/NMSE inside the hole when the cases have a
mask), as JSON + Markdown tables and a PNG panel.
"""

from __future__ import annotations

import glob
import os
import time

import torch
from monai.data import MetaTensor
from monai.utils import set_determinism
from tqdm import tqdm

from ..data.datalist import load_section
from ..data.images2d import PICTURE_EXTENSIONS, VOLUME_EXTENSIONS
from ..data.io import check_output_dir, save_csv, save_nifti, staged_output
from ..data.slices import as_slab
from ..errors import apply_unwrapped, exit_on_input_error, require
from ..metrics.restoration import FIDELITY, IN_MASK, FeatureMetrics, accutance
from ..viz import comparison_panel
from ..networks.checkpoints import refuse_existing_and_load
from ..settings import check_runner
from .outputs import load_slice, read_summary
from .tables import write_tables

OUTPUT_KEYS = ("condition", "target", "mask")


def resolve_items(inputs, section: str = "test") -> list[dict]:
    """Items ``{"image", "name", ...}`` from a datalist JSON (its ``section``), folders of 2D images, or files."""
    paths = [inputs] if isinstance(inputs, str) else list(inputs or [])
    require(len(paths) > 0, "inputs", "no input given")
    items: list[dict] = []
    for path in map(str, paths):
        require(os.path.exists(path), path, "no such file or folder")
        if path.endswith(".json"):
            items += [dict(it) for it in load_section(path, section)]
        elif os.path.isdir(path):
            files = sorted(f for f in glob.glob(os.path.join(path, "**", "*"), recursive=True)
                           if f.lower().endswith(PICTURE_EXTENSIONS + VOLUME_EXTENSIONS))
            require(len(files) > 0, path, "no 2D image (PNG, JPEG or NIfTI) found")
            items += [{"image": f} for f in files]
        else:
            items.append({"image": path})
    seen: dict[str, int] = {}
    for item in items:
        stem = os.path.basename(item["image"]).split(".")[0]
        name = f"{item['case']}_z{int(item['slice']):03d}" if "case" in item and "slice" in item else stem
        seen[name] = seen.get(name, 0) + 1
        item["name"] = name if seen[name] == 1 else f"{name}_{seen[name]}"
    return items


def _slab(data: torch.Tensor, reference) -> MetaTensor:
    """``(C, H, W)`` -> ``(C, H, W, 1)`` MetaTensor with the reference image's affine (NIfTI slice or 2D picture)."""
    affine = getattr(reference, "affine", torch.eye(4, dtype=torch.float64))
    if affine.shape[0] == 4:
        return MetaTensor(data.detach().cpu().unsqueeze(-1), affine=affine)
    return as_slab(MetaTensor(data.detach().cpu(), affine=affine))


class ConditionalRestoration:
    """Sample the restoration of every input (``inferer(condition, network)``) and write the outputs.

    Args:
        inputs: datalist JSON, folder(s) or file(s) of 2D images.
        output_dir: where case folders and ``summary.csv`` go.
        network, inferer: the conditional DDPM and its :class:`~medi2i.diffusion.ConditionalDiffusionInferer`.
        transform: MONAI Compose on ``{"image": path, ...}`` giving ``condition`` (and ``target``/``mask``).
        degrade_transform, degrade_inputs: with ``degrade_inputs`` true, ``degrade_transform`` is used instead of
            ``transform`` (the bundle's seeded degradation of clean inputs).
        checkpoint: state dict of ``network`` (loaded strictly).
        datalist_section: section of a datalist input.
        batch_size: images per sampler call.
        settings: the config's settings to check first (:func:`~medi2i.settings.check_settings`).
        postprocessing: transform on ``{..., "pred": sample}`` giving ``pred`` back on the input's grid (the
            bundle's :class:`~medi2i.data.Restored`, as MONAI Label applies it); written as ``restored.nii.gz``.
    """

    def __init__(self, inputs, output_dir: str, network: torch.nn.Module, inferer, transform, checkpoint: str,
                 datalist_section: str = "test", batch_size: int = 8, device="cpu", seed: int = 0,
                 overwrite: bool = False, panel: bool = True, degrade_transform=None, degrade_inputs: bool = False,
                 settings: dict | None = None, postprocessing=None):
        self.inputs, self.output_dir, self.network, self.inferer = inputs, output_dir, network, inferer
        self.postprocessing = postprocessing
        self.transform, self.checkpoint, self.section = transform, checkpoint, datalist_section
        self.degrade_transform, self.degrade_inputs, self.settings = degrade_transform, degrade_inputs, settings
        self.batch_size, self.device, self.seed = max(1, int(batch_size)), torch.device(device), seed
        self.overwrite, self.panel = overwrite, panel

    @exit_on_input_error
    def run(self) -> list[dict]:
        self.inferer.check()
        check_runner(self, self.inferer)
        require(not self.degrade_inputs or self.degrade_transform is not None, "degrade_inputs", "no degrade_transform given")
        transform = self.degrade_transform if self.degrade_inputs else self.transform
        items = resolve_items(self.inputs, self.section)
        refuse_existing_and_load(self.output_dir, [item["name"] for item in items], self.overwrite,
                                 [(self.network, self.checkpoint, "diffusion model checkpoint")], self.device)
        self.network.eval()
        set_determinism(self.seed)
        with tqdm(items, desc="loading", unit="image") as bar:
            prepared = [apply_unwrapped(transform, item, item["image"]) for item in bar]
        shapes = {tuple(p["condition"].shape) for p in prepared}
        require(len(shapes) == 1, "inputs", f"conditions differ in shape after preprocessing: {sorted(shapes)}")
        rows = []
        for start in tqdm(range(0, len(prepared), self.batch_size), desc="sampling", unit="batch"):
            chunk = prepared[start : start + self.batch_size]
            y = torch.stack([torch.as_tensor(p["condition"]).float() for p in chunk]).to(self.device)
            began = time.perf_counter()
            out = self.inferer(y, self.network)
            seconds = (time.perf_counter() - began) / len(chunk)
            for item, data, sample in zip(items[start : start + len(chunk)], chunk, out):
                self._write(item, data, sample)
                rows.append({"case": item["name"], "image": item["image"], "has_target": int("target" in data),
                             "sampling_method": self.inferer.sampler.method, "network_evaluations": self.inferer.sampler.steps,
                             "seconds_per_image": round(seconds, 4)})
        os.makedirs(self.output_dir, exist_ok=True)
        save_csv(rows, os.path.join(self.output_dir, "summary.csv"))
        return rows

    def _write(self, item: dict, data: dict, sample: torch.Tensor) -> None:
        ref = data["image"]
        with staged_output(os.path.join(self.output_dir, item["name"]), overwrite=self.overwrite) as folder:
            images = {k: torch.as_tensor(data[k]).float() for k in OUTPUT_KEYS if k in data}
            images["output"] = sample.cpu()
            for key, image in images.items():
                save_nifti(_slab(image, ref), os.path.join(folder, f"{key}.nii.gz"))
            if self.postprocessing is not None:
                save_nifti(self.postprocessing({**data, "pred": sample.cpu()})["pred"], os.path.join(folder, "restored.nii.gz"))
            if self.panel:
                columns = [("input", images["condition"][:1]), ("Med-cDiff", images["output"])]
                columns += [("ground truth", images["target"])] if "target" in images else []
                comparison_panel(os.path.join(folder, "panel.png"), [(item["name"], columns)])


class RestorationEvaluation:
    """Compare Med-cDiff's samples (``inference_dir``) with ``baselines`` (name -> callable) on the cases that
    have a target. Writes ``metrics.{json,md}``, ``per_case.{json,md}`` and ``panel.png`` to ``output_dir``.

    ``lpips_weights``/``fid_weights``: local TorchScript files (see :mod:`medi2i.metrics.restoration`); None skips.
    ``panel_cases``: rows of the comparison panel. ``overwrite``: write into a non-empty ``output_dir``.
    ``settings``: the config's settings to check first (:func:`~medi2i.settings.check_settings`).
    """

    def __init__(self, inference_dir: str, output_dir: str, baselines: dict, method_name: str = "Med-cDiff",
                 lpips_weights: str | None = None, fid_weights: str | None = None, panel_cases: int = 4, device="cpu",
                 overwrite: bool = False, settings: dict | None = None):
        self.inference_dir, self.output_dir, self.baselines = inference_dir, output_dir, dict(baselines)
        self.method_name, self.panel_cases, self.device = method_name, int(panel_cases), device
        self.lpips_weights, self.fid_weights = lpips_weights or None, fid_weights or None
        self.overwrite, self.settings = overwrite, settings

    def _cases(self) -> tuple[list[str], dict[str, torch.Tensor]]:
        names = [r["case"] for r in read_summary(self.inference_dir, ("case", "has_target")) if r.get("has_target") == "1"]
        require(len(names) > 0, os.path.join(self.inference_dir, "summary.csv"),
                "no case with a ground truth (run inference.json on a datalist section)")
        data = {key: [] for key in ("condition", "output", "target")}
        for name in names:
            for key in data:
                data[key].append(load_slice(os.path.join(self.inference_dir, name, f"{key}.nii.gz"), "restoration output"))
        masks = [os.path.join(self.inference_dir, name, "mask.nii.gz") for name in names]
        if all(os.path.exists(m) for m in masks):
            data["mask"] = [load_slice(m, "restoration output") for m in masks]
        stacked = {key: torch.stack(v) for key, v in data.items()}
        require(stacked["output"].shape == stacked["target"].shape, self.inference_dir,
                f"outputs {tuple(stacked['output'].shape)} and targets {tuple(stacked['target'].shape)} differ in shape")
        return names, stacked

    @exit_on_input_error
    def run(self) -> list[dict]:
        check_runner(self)
        read_summary(self.inference_dir, ("case", "has_target"))
        check_output_dir(self.output_dir, self.overwrite)
        features = FeatureMetrics(self.lpips_weights, self.fid_weights, self.device)
        names, data = self._cases()
        methods = {name: fn(data["condition"], data["target"]) for name, fn in self.baselines.items()}
        methods[self.method_name] = data["output"]
        table, per_case = [], []
        for method, images in methods.items():
            scores = {key: fn(images, data["target"]) for key, fn in FIDELITY.items()}
            if "mask" in data:
                scores.update({key: fn(images, data["target"], data["mask"]) for key, fn in IN_MASK.items()})
            scores["accutance"] = accutance(images)
            lp = features.lpips_per_image(images, data["target"])
            if lp is not None:
                scores["lpips"] = lp
            row = {"method": method, "n": len(names), **{k: float(v.mean()) for k, v in scores.items()}}
            fid = features.fid_score(images, data["target"])
            if fid is not None:
                row["fid"] = fid
            table.append(row)
            per_case += [{"case": c, "method": method, **{k: float(v[i]) for k, v in scores.items()}} for i, c in enumerate(names)]
        table.append({"method": "ground truth", "n": len(names), "accutance": float(accutance(data["target"]).mean())})
        extra = {"inference_dir": os.path.abspath(self.inference_dir), "skipped": features.messages,
                 "note": "images in [-1, 1] mapped to [0, 1] for every metric; accutance = mean Sobel gradient magnitude x100"
                 + ("; *_hole = inside the inpainting mask only" if "mask" in data else "")}
        paths = write_tables(table, self.output_dir, "metrics", "Restoration: Med-cDiff vs classical baselines", extra)
        write_tables(per_case, self.output_dir, "per_case")
        self._panel(names, data, methods, per_case)
        for message in features.messages:
            print(message)
        print(open(paths["markdown"]).read())
        return table

    def _panel(self, names, data, methods, per_case) -> None:
        psnr = {(r["case"], r["method"]): f"PSNR {r['psnr']:.1f}" + (f" (hole {r['psnr_hole']:.1f})" if "psnr_hole" in r else "")
                for r in per_case}
        rows = []
        for i, name in enumerate(names[: self.panel_cases]):
            columns = [("input", data["condition"][i, :1])] + [(m, images[i]) for m, images in methods.items()]
            rows.append((name, columns + [("ground truth", data["target"][i])]))
        comparison_panel(os.path.join(self.output_dir, "panel.png"), rows, psnr)

