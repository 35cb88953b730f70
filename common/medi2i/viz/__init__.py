"""Pictures: translation panels and evaluation plots."""

from .panels import requested_vs_achieved, translation_panel

__all__ = ["translation_panel", "requested_vs_achieved"]
