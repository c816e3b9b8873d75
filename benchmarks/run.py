#!/usr/bin/env python3
"""Time the course's budgets on this machine. Run with ``python3 tasks.py bench [PARTS]``.

Parts (default: all):

``loader``     ``aecourse.fit`` on in-memory tensors vs a plain ``DataLoader`` over a
               torchvision-style dataset that builds each example with PIL and
               ``ToTensor``; same model, same data, same batches, side by side.
``notebooks``  every chapter executed in quick mode, in full mode on the data this
               machine has, and in full mode on the MNIST-sized random stand-in;
               wall time and the peak memory (RSS) of the kernel.
``suite``      the test command (``python3 tasks.py test``), install excluded.
``book``       the book build from a clean ``_build``, then again from its cache.

Results are printed as a table and written to ``benchmarks/out/results.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PEAK_CELL = ("import resource, sys\n"
             "print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")


def bench_loader(n: int = 20_000, epochs: int = 2, hidden: tuple[int, ...] = (256, 64)) -> dict:
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from aecourse import fit
    from aecourse.models import MLPAutoencoder
    from aecourse.objectives import Reconstruction

    g = torch.Generator().manual_seed(0)
    images_u8 = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)

    class TorchvisionStyle(Dataset):
        """Like torchvision.datasets.MNIST: uint8 storage, a PIL image and ToTensor per sample."""

        def __init__(self, data):
            self.data, self.transform = data, transforms.ToTensor()

        def __len__(self):
            return len(self.data)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.data[i].numpy(), mode="L")), 0

    def plain_loop(model, loader, epochs):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        objective = Reconstruction()
        for _ in range(epochs):
            for x, _ in loader:
                loss = objective(model, x)["loss"]
                opt.zero_grad()
                loss.backward()
                opt.step()

    x = images_u8.float().div(255).unsqueeze(1)
    torch.manual_seed(0)
    m1 = MLPAutoencoder(code_dim=16, hidden=hidden)
    t0 = time.perf_counter()
    fit(m1, Reconstruction(), x, epochs=epochs, batch_size=128, progress=False)
    t_fit = (time.perf_counter() - t0) / epochs
    torch.manual_seed(0)
    m2 = MLPAutoencoder(code_dim=16, hidden=hidden)
    loader = DataLoader(TorchvisionStyle(images_u8), batch_size=128, shuffle=True)
    t0 = time.perf_counter()
    plain_loop(m2, loader, epochs)
    t_loader = (time.perf_counter() - t0) / epochs
    return {"images": n, "fit_s_per_epoch": round(t_fit, 3), "dataloader_s_per_epoch": round(t_loader, 3),
            "speedup": round(t_loader / t_fit, 2), "torch_threads": torch.get_num_threads(),
            "model": f"MLPAutoencoder(code_dim=16, hidden={hidden})",
            "note": "same model, data, batch 128 and Adam; DataLoader with num_workers=0"}


def run_notebook(path: Path, env: dict, timeout: int = 1800) -> dict:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    old = dict(os.environ)
    os.environ.update(env)
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        t0 = time.perf_counter()
        error = None
        try:
            client.execute()
        except Exception as exc:  # report, keep going
            error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else ''}"
        wall = time.perf_counter() - t0
    finally:
        os.environ.clear()
        os.environ.update(old)
    peak = None
    for out in nb.cells[-1].get("outputs", []):
        text = out.get("text", "")
        if "PEAK_RSS_MB" in text:
            peak = float(text.split()[-1])
    return {"seconds": round(wall, 1), "peak_rss_mb": round(peak, 0) if peak else None, "error": error}


def bench_notebooks(modes: list[str]) -> dict:
    results: dict = {}
    notebooks = sorted((ROOT / "book").glob("*.ipynb"))
    settings = {
        "quick": {"AECOURSE_QUICK": "1"},
        "full": {"AECOURSE_QUICK": "0"},
        "standin": {"AECOURSE_QUICK": "0", "AECOURSE_DATASET": "standin"},
    }
    for mode in modes:
        for nb in notebooks:
            with tempfile.TemporaryDirectory() as cache:  # a cold checkpoint cache
                env = {"AECOURSE_PROGRESS": "0", "AECOURSE_DATA": os.environ.get("AECOURSE_DATA", ""),
                       **settings[mode]}
                if mode != "quick":
                    env["AECOURSE_DATA"] = cache
                    data_home = Path(os.environ.get("AECOURSE_DATA") or Path.home() / ".cache" / "aecourse")
                    for sub in ("MNIST", "FashionMNIST"):
                        if (data_home / sub).exists():
                            shutil.copytree(data_home / sub, Path(cache) / sub)
                env = {k: v for k, v in env.items() if v}
                r = run_notebook(nb, env)
            results.setdefault(nb.stem, {})[mode] = r
            print(f"{nb.stem:14s} {mode:8s} {r['seconds']:7.1f} s  peak {r['peak_rss_mb']} MB"
                  + (f"  ERROR {r['error']}" if r["error"] else ""), flush=True)
    return results


def bench_suite() -> dict:
    t0 = time.perf_counter()
    rc = subprocess.run([sys.executable, str(ROOT / "tasks.py"), "test", "-q"], cwd=ROOT).returncode
    return {"seconds": round(time.perf_counter() - t0, 1), "returncode": rc}


def bench_book() -> dict:
    shutil.rmtree(ROOT / "_build", ignore_errors=True)
    res = {}
    for label in ("clean", "cached"):
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, str(ROOT / "tasks.py"), "book"], cwd=ROOT).returncode
        res[label] = {"seconds": round(time.perf_counter() - t0, 1), "returncode": rc}
    return res


def main(argv: list[str]) -> None:
    parts = argv or ["loader", "notebooks", "suite", "book"]
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for part in parts:
        if part == "loader":
            results["loader"] = {"intro model": bench_loader(hidden=(256, 64)),
                                 "small model": bench_loader(hidden=(64,))}
        elif part.startswith("notebooks"):
            modes = part.split(":")[1].split(",") if ":" in part else ["quick", "full", "standin"]
            results.setdefault("notebooks", {})
            for name, r in bench_notebooks(modes).items():
                results["notebooks"].setdefault(name, {}).update(r)
        elif part == "suite":
            results["suite"] = bench_suite()
        elif part == "book":
            results["book"] = bench_book()
        else:
            raise SystemExit(f"unknown part {part!r}; choose from loader, notebooks[:quick,full,standin], suite, book")
        path.write_text(json.dumps(results, indent=2))
        print(json.dumps({part.split(':')[0]: results[part.split(':')[0]]}, indent=2), flush=True)
    print(f"results in {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
