"""Pictures: translation panels and evaluation plots."""

from .panels import comparison_panel, requested_vs_achieved, translation_panel

__all__ = ["translation_panel", "requested_vs_achieved", "comparison_panel"]

from .generation import sample_grid, trajectory_gif, trajectory_strip  # noqa: E402

__all__ += ["sample_grid", "trajectory_gif", "trajectory_strip"]
