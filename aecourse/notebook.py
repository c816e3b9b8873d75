"""What every chapter notebook shares: the set-up cell, glue, and the repository URL."""

from __future__ import annotations

import platform
import sys
from typing import Any

import torch

from aecourse import config

#: The course's repository; ``_config.yml`` names the same URL (a test checks it).
REPO_URL = "https://github.com/aecourse/autoencoders-course"

#: The first code cell of every chapter, verbatim (a test checks every notebook).
SETUP_CELL = f'''# Set-up, the same in every chapter (on Colab it first installs the package).
import sys, subprocess
if "google.colab" in sys.modules:
    url = "git+{REPO_URL}"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", url],
                   check=True)

import aecourse
data = aecourse.setup()'''

QUICK_SUBSET = (2_000, 500)


def setup(dataset: str | None = None, seed: int = 0):
    """Apply the plot style, seed everything, print the device, load and return the image data.

    In quick mode the data are cut to a random subset of
    ``QUICK_SUBSET`` = (2,000 train, 500 test) images.
    """
    from aecourse.data import load_images
    from aecourse.plots import use_style

    use_style()
    config.seed_everything(seed)
    dev = config.device()
    mode = "quick mode (small budgets)" if config.is_quick() else "full mode"
    print(f"aecourse {_version()} | torch {torch.__version__} | Python {platform.python_version()} | "
          f"device: {dev} | {mode}")
    data = load_images(dataset)
    if config.is_quick():
        data = data.subset(*QUICK_SUBSET, seed=seed)
    return data


def _version() -> str:
    from aecourse import __version__
    return __version__


def glue(name: str, value: Any, display: bool = False) -> None:
    """Glue ``value`` under ``name`` for the prose (myst-nb); a no-op where myst-nb is absent.

    In the text, ``{glue:text}`name:.2f``` shows it formatted. Returns nothing, so a
    glue call at the end of a cell displays nothing.
    """
    try:
        from myst_nb import glue as _glue
    except ImportError:  # e.g. on Colab: the prose is static there anyway
        return
    if isinstance(value, torch.Tensor) or type(value).__module__ == "numpy":
        value = value.item()  # plain Python numbers, so formats like :.2f apply
    _glue(name, value, display=display)


def in_colab() -> bool:
    return "google.colab" in sys.modules
