"""``zoo.deepmad``: the DeepMAD designer and scores as a public API (``zoo.deepmad.design``)."""
from zoo.families.deepmad.designer import Design, DesignError, Space, design

__all__ = ["Design", "DesignError", "Space", "design"]
