"""fastMRI brain layout: HDF5 files (``file_brain_AXT1POST_201_6002780.h5``) holding ``reconstruction_rss``
(slices, H, W) magnitude images (root-sum-of-squares of the coil images) and the acquisition (``AXFLAIR``,
``AXT1``, ``AXT1PRE``, ``AXT1POST``, ``AXT2``) in the file attributes.

h5py is imported only when such a file is read; without it the reader stops with a one-line error naming the
package, so the rest of the collection does not depend on it.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from ..errors import InputError, require

RSS_KEY = "reconstruction_rss"


def _h5py():
    try:
        import h5py
    except ImportError:
        raise InputError("h5py", "reading fastMRI HDF5 files needs the h5py package (pip install h5py)") from None
    return h5py


def find_fastmri_files(path: str) -> list[str]:
    """Every ``*.h5`` file under ``path`` (a file or a folder, searched recursively)."""
    require(os.path.exists(path), path, "no such file or folder")
    files = [path] if os.path.isfile(path) else sorted(glob.glob(os.path.join(path, "**", "*.h5"), recursive=True))
    require(len(files) > 0, path, "no fastMRI .h5 file found")
    return files


def read_fastmri_volume(path: str) -> tuple[np.ndarray, str]:
    """``(rss (slices, H, W) float32, acquisition)`` of one fastMRI brain file; one-line errors when the file has
    no ``reconstruction_rss`` (e.g. a test-set file) or no acquisition attribute."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            require(RSS_KEY in f, path, f"has no '{RSS_KEY}' dataset (fastMRI test files hold k-space only)")
            rss = np.asarray(f[RSS_KEY][()], dtype=np.float32)
            acquisition = f.attrs.get("acquisition")
    except OSError as err:
        raise InputError(path, f"cannot be read as HDF5 ({str(err).splitlines()[0]})") from err
    require(acquisition is not None, path, "has no 'acquisition' attribute")
    acquisition = acquisition.decode() if isinstance(acquisition, bytes) else str(acquisition)
    require(rss.ndim == 3, path, f"'{RSS_KEY}' has shape {rss.shape}, expected (slices, H, W)")
    require(bool(np.isfinite(rss).all()), path, f"'{RSS_KEY}' contains non-finite values")
    return rss, acquisition
