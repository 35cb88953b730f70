"""Build (or extend) a MONAI Label app that serves bundles with MONAI Label's stock ``BundleInferTask``.

    python tools/monailabel_app.py /srv/medi2i_app bundles/chest_xray_denoising_cddpm bundles/prostate_mri_super_resolution_cddpm
    python tools/monailabel_app.py /srv/medi2i_app bundles/brats_mri_tumor_growth_regression_guidance --weights /data/runs/growth/models --overlays "[]"
    monailabel start_server --app /srv/medi2i_app --studies /data/images --host 127.0.0.1 --port 8000

Each bundle becomes ``<app>/model/<bundle>/`` (see ``medi2i.serving.prepare_monailabel_bundle``): one merged
``configs/inference.json`` (``inference.json`` + ``--overlays``, default the demo size ``demo.json``, +
``--overrides``), the ``*.pt`` of ``--weights`` (default: the bundle's shipped ``models/demo``, else ``models/real``) in ``models/``, the shared package vendored.
"""

import os

import fire

from medi2i.errors import exit_on_input_error
from medi2i.serving import prepare_monailabel_bundle, write_monailabel_app


@exit_on_input_error
def main(app_dir: str, *bundles: str, weights: str = "shipped", overlays=("demo.json",), overrides: dict | None = None):
    write_monailabel_app(app_dir)
    for bundle in bundles:
        print(prepare_monailabel_bundle(bundle, os.path.join(app_dir, "model"), weights=weights or None,
                                        overlays=tuple(overlays or ()), overrides=overrides))


if __name__ == "__main__":
    fire.Fire(main)
