"""Showing a figure dict (engine.analysis.figures) in the page without a second validation pass."""
from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

CONFIG = {"displaylogo": False}


class _Prebuilt(go.Figure):
    """A figure dict that st.plotly_chart accepts as an already-validated plotly Figure."""

    def __init__(self, spec: dict):  # noqa: D107  (no super().__init__: no validation)
        self._spec = spec

    def to_dict(self) -> dict:
        return self._spec


def show(fig: dict, key: str) -> None:
    st.plotly_chart(_Prebuilt(fig), key=key, config=CONFIG)
