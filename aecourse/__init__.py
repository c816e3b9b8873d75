"""aecourse: the companion package of *Autoencoders, from PCA to beta-VAE*.

The chapters import it for everything but the few lines that are their point:
data (:mod:`aecourse.data`), models (:mod:`aecourse.models`), objectives
(:mod:`aecourse.objectives`), the training loop (:func:`fit`), metrics, plots and
the exercise checks.
"""

__version__ = "0.1.0"

from aecourse import config, models, objectives, plots  # noqa: E402
from aecourse.checks import Claims, ClaimFailed  # noqa: E402
from aecourse.config import budget, device, is_quick, seed_everything  # noqa: E402
from aecourse.data import ImageData, load_images  # noqa: E402
from aecourse.notebook import glue, setup  # noqa: E402
from aecourse.train import History, TrainingDivergedError, fit, load_checkpoint, save_checkpoint  # noqa: E402

__all__ = [
    "__version__", "config", "models", "objectives", "plots", "Claims", "ClaimFailed", "budget",
    "device", "is_quick", "seed_everything", "ImageData", "load_images", "glue", "setup", "History",
    "TrainingDivergedError", "fit", "load_checkpoint", "save_checkpoint",
]
