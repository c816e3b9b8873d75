"""ipywidgets explorers for the live notebooks.

On the website, widgets cannot run (there is no kernel), so each chapter shows a
static figure in their place: the widget cell is tagged ``remove-cell`` and a
static figure computed from the same function follows it.
"""

from __future__ import annotations
