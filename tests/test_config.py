import pytest
import torch

from aecourse import config


def test_quick_mode_and_budget(monkeypatch):
    monkeypatch.setenv("AECOURSE_QUICK", "1")
    assert config.is_quick() and config.budget(full=100, quick=3) == 3
    monkeypatch.setenv("AECOURSE_QUICK", "0")
    assert not config.is_quick() and config.budget(full=100, quick=3) == 100
    monkeypatch.setenv("AECOURSE_QUICK", "maybe")
    with pytest.raises(ValueError, match="AECOURSE_QUICK"):
        config.is_quick()


def test_epochs_for_counts_steps():
    assert config.epochs_for(600, 60_000, 128) == 1  # 469 steps per epoch
    assert config.epochs_for(6000, 1437, 128) == 500
    assert config.epochs_for(6000, 1437, 128, max_epochs=300) == 300
    with pytest.raises(ValueError):
        config.epochs_for(0, 10, 10)


def test_device_choice(monkeypatch):
    assert config.device("cpu") == torch.device("cpu")
    monkeypatch.setenv("AECOURSE_DEVICE", "cpu")
    assert config.device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("AECOURSE_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            config.device()


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AECOURSE_DATA", str(tmp_path / "here"))
    assert config.data_dir() == tmp_path / "here" and (tmp_path / "here").is_dir()


def test_seed_everything_makes_runs_identical():
    config.seed_everything(123)
    a = torch.randn(5), torch.nn.Linear(3, 3).weight.detach().clone()
    config.seed_everything(123)
    b = torch.randn(5), torch.nn.Linear(3, 3).weight.detach().clone()
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError):
        config.seed_everything(-1)
