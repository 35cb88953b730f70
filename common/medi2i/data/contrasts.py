"""Contrast labels: the set of contrasts a model is conditioned on is configuration, not code.

A :class:`ContrastSet` holds the configured names in label order (e.g. ``["FLAIR", "T1", "T1 post-contrast", "T2"]``,
the paper's four fastMRI contrasts); class index ``len(names)`` is the null class of classifier-free guidance.
Datalists store contrast *names*, so one datalist serves any contrast set: entries of contrasts outside the set
are left out and labels are the positions in the configured list.

Dataset-specific names map to the canonical ones through :data:`ALIASES` (BraTS file suffixes, IXI contrasts,
fastMRI ``acquisition`` attributes), case-insensitively.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.transforms import MapTransform

from ..errors import InputError, require
from .datalist import load_section

#: dataset-specific contrast names -> canonical names (keys compared case-insensitively)
ALIASES = {
    # BraTS 2018-2021 suffixes and BraTS 2023 suffixes
    "t1": "T1", "t1ce": "T1 post-contrast", "t2": "T2", "flair": "FLAIR",
    "t1n": "T1", "t1c": "T1 post-contrast", "t2w": "T2", "t2f": "FLAIR",
    # IXI
    "pd": "PD",
    # fastMRI brain ``acquisition`` attribute
    "axt1": "T1", "axt1pre": "T1", "axt1post": "T1 post-contrast", "axt2": "T2", "axflair": "FLAIR",
    # spelled out
    "t1 post-contrast": "T1 post-contrast", "t1post": "T1 post-contrast", "t1gd": "T1 post-contrast",
}


def canonical_contrast(name: str) -> str:
    """The canonical name of a dataset-specific contrast name (unknown names are returned unchanged)."""
    return ALIASES.get(str(name).strip().casefold(), str(name).strip())


class ContrastSet:
    """Configured contrast names in label order; ``null_class`` (= ``len(names)``) is the 'no contrast' label."""

    def __init__(self, names: Sequence[str]):
        names = [canonical_contrast(n) for n in names]
        require(len(names) > 0, "contrasts", "no contrast configured")
        require(len(set(n.casefold() for n in names)) == len(names), "contrasts", f"names repeat: {names}")
        self.names = names

    def __len__(self) -> int:
        return len(self.names)

    @property
    def null_class(self) -> int:
        return len(self.names)

    @property
    def num_class_embeds(self) -> int:
        """Embeddings the network needs: one per contrast plus the null class."""
        return len(self.names) + 1

    def __contains__(self, name: str) -> bool:
        return canonical_contrast(name).casefold() in (n.casefold() for n in self.names)

    def index(self, name: str | int) -> int:
        """Label of a contrast name (any alias, any case) or a valid integer label; one-line error otherwise."""
        if isinstance(name, int) and not isinstance(name, bool):
            require(0 <= name < len(self.names), "contrast", f"label {name} outside 0..{len(self.names) - 1}")
            return name
        key = canonical_contrast(name).casefold()
        for i, n in enumerate(self.names):
            if n.casefold() == key:
                return i
        raise InputError("contrast", f"unknown contrast '{name}' (configured: {', '.join(self.names)})")

    def labels(self, names: Sequence[str | int]) -> list[int]:
        require(len(names) > 0, "contrasts", "no contrast requested")
        return [self.index(n) for n in names]


class ContrastLabeld(MapTransform):
    """Set ``label_key`` to the class index of the entry's contrast name (key ``contrast``)."""

    def __init__(self, contrasts: Sequence[str], keys: str = "contrast", label_key: str = "label"):
        super().__init__(keys)
        self.contrasts, self.label_key = ContrastSet(contrasts), label_key

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.label_key] = torch.tensor(self.contrasts.index(d[key]), dtype=torch.long)
        return d


def load_contrast_section(datalist: str, section: str, contrasts: Sequence[str]) -> list[dict]:
    """Entries of a contrast datalist section whose contrast is in ``contrasts`` (paths absolute)."""
    wanted = ContrastSet(contrasts)
    items = [item for item in load_section(datalist, section) if item["contrast"] in wanted]
    require(len(items) > 0, datalist, f"section '{section}' has no slice of the contrasts {', '.join(wanted.names)}")
    return items
