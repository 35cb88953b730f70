"""Pictures: translation panels and evaluation plots."""

from .panels import requested_vs_achieved, translation_panel

__all__ = ["translation_panel", "requested_vs_achieved"]

from .generation import sample_grid, trajectory_gif, trajectory_strip  # noqa: E402

__all__ += ["sample_grid", "trajectory_gif", "trajectory_strip"]
