"""Shared fixtures: every test gets its own data/cache directory and quick mode."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_course_env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AECOURSE_DATA", str(tmp_path_factory.mktemp("aecourse-data")))
    monkeypatch.setenv("AECOURSE_PROGRESS", "0")
    monkeypatch.setenv("AECOURSE_QUICK", "1")
    monkeypatch.delenv("AECOURSE_DATASET", raising=False)
    monkeypatch.delenv("AECOURSE_DEVICE", raising=False)
    monkeypatch.delenv("AECOURSE_CHECKPOINTS", raising=False)
    yield
