import pickle

import pytest
import torch
from torch import nn

from aecourse import fit, load_checkpoint, save_checkpoint
from aecourse.models import MLPAutoencoder
from aecourse.objectives import Reconstruction, squared_error
from aecourse.train import CheckpointError, TrainingDivergedError


def tiny_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    basis = torch.rand(3, 64, generator=g)
    return (torch.rand(n, 3, generator=g) @ basis / 3).reshape(n, 1, 8, 8)


def test_fit_lowers_the_loss_and_records_every_term():
    x = tiny_data()
    model = MLPAutoencoder((1, 8, 8), code_dim=3, hidden=(32,))
    hist = fit(model, Reconstruction(), x[:200], x[200:], epochs=40, batch_size=32, lr=3e-3)
    assert hist.epochs == 40 and set(hist.train) == {"loss", "reconstruction"}
    assert set(hist.val) == {"loss", "reconstruction"} and len(hist.val["loss"]) == 40
    assert hist.train["loss"][-1] < 0.3 * hist.train["loss"][0]
    with torch.no_grad():
        direct = squared_error(model(x[200:]), x[200:]).mean().item()
    assert hist.last("loss", "val") == pytest.approx(direct, rel=1e-4)


def test_same_seed_same_result():
    x = tiny_data()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(16,))
        fit(model, Reconstruction(), x, epochs=3, batch_size=16, seed=7)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])


class Exploding:
    """An objective whose loss turns NaN after a few steps."""

    def __init__(self):
        self.calls = 0

    def __call__(self, model, x):
        self.calls += 1
        loss = ((model(x) - x) ** 2).mean()
        if self.calls > 5:
            loss = loss * float("nan")
        return {"loss": loss}


def test_nan_loss_names_the_epoch_and_restores_weights():
    x = tiny_data(64)
    model = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(8,))
    with pytest.raises(TrainingDivergedError) as err:
        fit(model, Exploding(), x, epochs=10, batch_size=16, lr=1e-3)
    msg = str(err.value)
    assert "epoch 2" in msg and "lower learning rate" in msg and "lr=0.0001" in msg
    assert err.value.history.epochs == 1
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_ctrl_c_keeps_the_model_and_history():
    x = tiny_data(64)
    model = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(8,))

    def interrupt(epoch, history):
        if epoch == 3:
            raise KeyboardInterrupt

    hist = fit(model, Reconstruction(), x, epochs=50, batch_size=16, callback=interrupt)
    assert hist.interrupted and hist.epochs == 3 and len(hist.train["loss"]) == 3
    before = [p.detach().clone() for p in model.parameters()]
    hist2 = fit(model, Reconstruction(), x, epochs=2, batch_size=16)  # training can go on
    assert hist2.epochs == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_bad_inputs_are_clear_errors():
    model = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(8,))
    with pytest.raises(TypeError, match="float data"):
        fit(model, Reconstruction(), torch.zeros(4, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        fit(model, Reconstruction(), [[0.0] * 64])
    with pytest.raises(ValueError, match="epochs"):
        fit(model, Reconstruction(), tiny_data(8), epochs=0)
    with pytest.raises(ValueError, match="expects inputs of shape"):
        fit(model, Reconstruction(), torch.zeros(4, 1, 9, 9))
    with pytest.raises(KeyError, match="no 'loss'"):
        fit(model, lambda m, x: {"rec": ((m(x) - x) ** 2).mean()}, tiny_data(8), epochs=1)


def test_checkpoint_cache_reuses_trained_weights():
    x = tiny_data()
    torch.manual_seed(0)
    a = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(16,))
    torch.manual_seed(0)
    b = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(16,))
    h1 = fit(a, Reconstruction(), x, epochs=5, batch_size=32, cache="tiny")
    h2 = fit(b, Reconstruction(), x, epochs=5, batch_size=32, cache="tiny")
    assert not h1.from_cache and h2.from_cache
    assert h2.train == h1.train
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    # anything that changes the result changes the key: here the learning rate
    torch.manual_seed(0)
    c = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(16,))
    assert not fit(c, Reconstruction(), x, epochs=5, batch_size=32, lr=2e-3, cache="tiny").from_cache


def test_checkpoint_round_trip(tmp_path):
    model = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(8,))
    hist = fit(model, Reconstruction(), tiny_data(32), epochs=2, batch_size=8)
    path = save_checkpoint(tmp_path / "m.pt", model, hist)
    other = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(8,))
    _, loaded = load_checkpoint(path, other)
    assert loaded.train == hist.train
    for p, q in zip(model.parameters(), other.parameters()):
        assert torch.equal(p, q)


class _Evil:
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned > /dev/null",))


def test_a_malicious_pickle_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    path2 = tmp_path / "evil2.pt"
    path2.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path2, nn.Linear(1, 1))


def test_cache_can_be_switched_off(monkeypatch):
    x = tiny_data(64)
    monkeypatch.setenv("AECOURSE_CHECKPOINTS", "0")
    for _ in range(2):
        torch.manual_seed(0)
        m = MLPAutoencoder((1, 8, 8), code_dim=2, hidden=(8,))
        assert not fit(m, Reconstruction(), x, epochs=1, batch_size=16, cache="off").from_cache
