"""Whole-volume multi-modal translation (ALDM): what the bundle's ``inference.json`` and ``evaluate.json`` run.

Inference: every input case (a case folder, a dataset folder, a datalist JSON, or single source-modality files)
is preprocessed as in training (scaled on brain tissue, foreground-cropped, cropped/padded to the network size),
its ``source`` modality translated to every requested target in one call, and each output written as
``<output_dir>/<case>/<target>.nii.gz`` in the source's original shape and affine (MONAI ``Invertd`` undoes the
crop/pad), with ``panel.png`` (axial and sagittal views of the source, each output and, for a multi-modal case,
each ground truth) and ``summary.csv``. Everything is checked before anything is written; case folders appear whole.

Evaluation: the full source x target matrix (Table 2) for each method (ALDM, Table 3 ablations, identity
baseline) on test cases, PSNR/NMSE/SSIM on the 3D volumes at network size, as JSON and Markdown.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import set_determinism
from tqdm import tqdm

from ..data.datalist import load_section
from ..data.io import save_csv, save_nifti, staged_output
from ..data.multimodal import multimodal_cases
from ..errors import apply_unwrapped, exit_on_input_error, require
from ..metrics.volume import volume_metrics
from ..viz.volumes import volume_views_panel
from ..networks.checkpoints import load_weights, refuse_existing_and_load
from ..settings import check_runner
from .tables import markdown_table, write_tables


def modality_index(modalities: Sequence[str], name: str, setting: str) -> int:
    require(name in modalities, setting, f"unknown modality '{name}' (this model knows {', '.join(modalities)})")
    return list(modalities).index(name)


def resolve_volume_cases(inputs, modalities: Sequence[str], section: str = "test") -> list[dict]:
    """Cases from datalist entries (:func:`~medi2i.data.multimodal.volume_datalist`) or paths: datalist JSONs
    (``section``), case/dataset folders (all ``modalities``) or single source files (``"single": True``). Each case
    gets a unique ``name``."""
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs or [])
    require(len(paths) > 0, "inputs", "no input given")
    cases: list[dict] = []
    for path in paths:
        if isinstance(path, dict):
            cases.append(dict(path))
            continue
        path = str(path)
        require(os.path.exists(path), path, "no such file or folder")
        if path.endswith(".json"):
            cases += load_section(path, section)
        elif os.path.isdir(path):
            cases += multimodal_cases(path, modalities)
        else:
            stem = os.path.basename(path).split(".nii")[0]
            cases.append({"case": stem, "image": [path], "single": True})
    seen: dict[str, int] = {}
    for case in cases:  # MONAI's datalist loader turns a case id that is also a folder name into a path: keep the id
        name = os.path.basename(os.path.normpath(str(case.get("case") or "case")))
        seen[name] = seen.get(name, 0) + 1
        case["name"] = name if seen[name] == 1 else f"{name}_{seen[name]}"
    return cases


def translate_volume(inferer, network, source: torch.Tensor, targets: Sequence[int], batch_size: int, device) -> torch.Tensor:
    """``(K, 1, *spatial)`` translations of one ``(1, *spatial)`` source to each of ``targets``, in batches."""
    outputs = []
    for start in range(0, len(targets), batch_size):
        chunk = list(targets[start : start + batch_size])
        x = source.as_tensor() if isinstance(source, MetaTensor) else source
        x = x.unsqueeze(0).expand(len(chunk), *source.shape).to(device)
        outputs.append(inferer(x, network, target=torch.tensor(chunk, device=device)).cpu())
    return torch.cat(outputs)


def _prepare(preprocessing, case: dict) -> dict:
    image = case["image"]
    where = image if isinstance(image, (str, os.PathLike)) else (image[0] if len(image) == 1 else case["name"])
    return apply_unwrapped(preprocessing, {k: v for k, v in case.items() if k in ("image", "channel_index")}, where)


class VolumeTranslation:
    """Translate the ``source`` modality of every input case to each of ``targets`` (one-to-many).

    Args:
        inputs, output_dir: see the module docstring.
        network: the latent diffusion UNet; inferer: :class:`~medi2i.diffusion.LatentTranslationInferer`.
        preprocessing: dict Compose on ``{"image": [paths]}`` (ends at network size); postprocessing: dict
            Compose with ``Invertd`` of ``"pred"`` through ``preprocessing``.
        modalities: channel names of the model; source/targets: names; allow_same_modality: allow target = source.
        checkpoints: ``[(module, path, what), ...]`` loaded strictly first.
        settings: the config's settings to check first (:func:`~medi2i.settings.check_settings`).
    """

    def __init__(self, inputs, output_dir: str, network, inferer, preprocessing, postprocessing, modalities: Sequence[str],
                 source: str, targets: Sequence[str], checkpoints: Sequence = (), allow_same_modality: bool = False,
                 datalist_section: str = "test", batch_size: int = 4, device="cpu", seed: int = 0, overwrite: bool = False,
                 panel: bool = True, settings: dict | None = None):
        self.inputs, self.output_dir, self.network, self.inferer = inputs, output_dir, network, inferer
        self.preprocessing, self.postprocessing, self.modalities = preprocessing, postprocessing, list(modalities)
        self.source, self.targets = source, [targets] if isinstance(targets, str) else list(targets or [])
        self.checkpoints, self.allow_same_modality, self.section = list(checkpoints), allow_same_modality, datalist_section
        self.batch_size, self.device, self.seed = max(1, int(batch_size)), torch.device(device), seed
        self.overwrite, self.panel, self.settings = overwrite, panel, settings

    def check_settings(self) -> tuple[int, list[int]]:
        check_runner(self, self.inferer)
        source = modality_index(self.modalities, self.source, "source")
        require(len(self.targets) > 0, "targets", "no target modality given")
        targets = [modality_index(self.modalities, t, "targets") for t in self.targets]
        require(self.allow_same_modality or source not in targets, "targets",
                f"target '{self.source}' is the source modality (set allow_same_modality=true to reconstruct it)")
        return source, targets

    @exit_on_input_error
    def run(self) -> list[dict]:
        source, targets = self.check_settings()
        cases = resolve_volume_cases(self.inputs, self.modalities, self.section)
        refuse_existing_and_load(self.output_dir, [c["name"] for c in cases], self.overwrite, self.checkpoints, self.device)
        with tqdm(cases, desc="loading", unit="case") as bar:
            prepared = [_prepare(self.preprocessing, case) for case in bar]
        rows: list[dict] = []
        for case, data in zip(tqdm(cases, desc="translating", unit="case"), prepared):
            rows += self._translate_case(case, data, source, targets)
        os.makedirs(self.output_dir, exist_ok=True)
        save_csv(rows, os.path.join(self.output_dir, "summary.csv"))
        return rows

    def _translate_case(self, case: dict, data: dict, source: int, targets: list[int]) -> list[dict]:
        image, single = data["image"], case.get("single", False)
        src = image[:1] if single else image[source : source + 1]
        set_determinism(self.seed)
        start = time.perf_counter()
        outputs = translate_volume(self.inferer, self.network, src, targets, self.batch_size, self.device)
        seconds = (time.perf_counter() - start) / len(targets)
        rows, views = [], [(f"source {self.source}", src)]
        with staged_output(os.path.join(self.output_dir, case["name"]), overwrite=self.overwrite) as folder:
            for name, index, out in zip(self.targets, targets, outputs):
                restored = self.postprocessing({"image": image, "pred": MetaTensor(out.clamp(0, 1))})["pred"]
                save_nifti(restored, os.path.join(folder, f"{name}.nii.gz"))
                row = {"case": case["name"], "source": self.source, "target": name, "seconds": round(seconds, 3)}
                if not single:
                    row.update({k: round(v, 5) for k, v in volume_metrics(out[0], image[index]).items()})
                rows.append(row)
                views.append((f"{self.source} -> {name}", out))
            if not single:
                views += [(f"ground truth {name}", image[index]) for name, index in zip(self.targets, targets)]
            if self.panel:
                volume_views_panel(os.path.join(folder, "panel.png"), views)
        return rows


class MultiModalEvaluation:
    """PSNR/NMSE/SSIM of every method for every source x target pair on the test cases (mean and std over cases).

    ``methods`` are inferer methods (see :data:`~medi2i.diffusion.latent_translation.METHODS`); the Table 3
    ablations ``"palette"`` and ``"diffusion_only"`` load their own diffusion model from
    ``ablation_checkpoints[method]`` (trained with the ``ablation_<method>.json`` overlay). ``overwrite``: write into
    a non-empty ``output_dir``; ``settings``: the config's settings to check first.
    """

    def __init__(self, inputs, output_dir: str, network, inferer, preprocessing, modalities: Sequence[str],
                 checkpoints: Sequence = (), methods: Sequence[str] = ("aldm", "spade_only", "identity"),
                 sources: Sequence[str] | None = None, targets: Sequence[str] | None = None,
                 ablation_checkpoints: dict | None = None, datalist_section: str = "test", batch_size: int = 4,
                 device="cpu", seed: int = 0, overwrite: bool = False, settings: dict | None = None):
        self.inputs, self.output_dir, self.network, self.inferer = inputs, output_dir, network, inferer
        self.preprocessing, self.modalities, self.checkpoints = preprocessing, list(modalities), list(checkpoints)
        self.methods, self.ablations, self.section = list(methods), dict(ablation_checkpoints or {}), datalist_section
        self.sources, self.targets = list(sources or modalities), list(targets or modalities)
        self.batch_size, self.device, self.seed = max(1, int(batch_size)), torch.device(device), seed
        self.overwrite, self.settings = overwrite, settings

    def _method(self, method: str):
        inferer = copy.copy(self.inferer)
        inferer.method = method
        network = self.network
        if method in ("palette", "diffusion_only"):
            require(method in self.ablations, "methods", f"'{method}' needs ablation_checkpoints['{method}'] (train with the ablation_{method} overlay)")
            network = load_weights(copy.deepcopy(self.network), self.ablations[method], f"{method} diffusion checkpoint", self.device)
        return inferer, network

    @exit_on_input_error
    def run(self) -> list[dict]:
        check_runner(self, self.inferer)
        sources = [modality_index(self.modalities, s, "sources") for s in self.sources]
        targets = [modality_index(self.modalities, t, "targets") for t in self.targets]
        cases = [c for c in resolve_volume_cases(self.inputs, self.modalities, self.section) if not c.get("single")]
        require(len(cases) > 0, "inputs", "evaluation needs multi-modal cases (ground truth for every target)")
        refuse_existing_and_load(self.output_dir, None, self.overwrite, self.checkpoints, self.device)
        prepared = [_prepare(self.preprocessing, case) for case in tqdm(cases, desc="loading", unit="case")]
        per_case = []
        for method in self.methods:
            inferer, network = self._method(method)
            for case, data in zip(tqdm(cases, desc=method, unit="case"), prepared):
                for s in sources:
                    set_determinism(self.seed)
                    outputs = translate_volume(inferer, network, data["image"][s : s + 1], targets, self.batch_size, self.device)
                    for t, out in zip(targets, outputs):
                        per_case.append({"method": method, "case": case["name"], "source": self.modalities[s],
                                         "target": self.modalities[t], **volume_metrics(out[0].clamp(0, 1), data["image"][t])})
        table = self._summarise(per_case)
        extra = {"per_case": per_case, "cases": [c["name"] for c in cases], "network_size": list(prepared[0]["image"].shape[1:])}
        paths = write_tables(table, self.output_dir, "metrics", "PSNR / NMSE / SSIM on 3D volumes (mean over test cases)", extra)
        self._write_matrices(table)
        print(open(paths["markdown"]).read())
        return table

    @staticmethod
    def _summarise(per_case: list[dict]) -> list[dict]:
        table = []
        for key in dict.fromkeys((r["method"], r["source"], r["target"]) for r in per_case):
            group = [r for r in per_case if (r["method"], r["source"], r["target"]) == key]
            row = {"method": key[0], "source": key[1], "target": key[2], "n": len(group)}
            for metric in ("psnr", "nmse", "ssim"):
                values = np.array([r[metric] for r in group], dtype=float)
                row[metric], row[f"{metric}_std"] = float(values.mean()), float(values.std())
            table.append(row)
        return table

    def _write_matrices(self, table: list[dict]) -> None:
        """``matrix.md``: per method, rows = source, columns = target, cells ``PSNR / NMSE / SSIM`` (Table 2)."""
        blocks = []
        for method in self.methods:
            cells = {(r["source"], r["target"]): f"{r['psnr']:.2f} / {r['nmse']:.3f} / {r['ssim']:.3f}" for r in table if r["method"] == method}
            rows = [{"source \\ target": s, **{t: cells.get((s, t), "") for t in self.targets}} for s in self.sources]
            blocks.append(f"## {method}\n\n" + markdown_table(rows))
        path = os.path.join(self.output_dir, "matrix.md")
        with open(path + ".part", "w") as f:
            f.write("# Source x target matrix (PSNR / NMSE / SSIM)\n\n" + "\n".join(blocks))
        os.replace(path + ".part", path)
