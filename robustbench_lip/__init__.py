"""robustbench-lip: train, certify and attack Lipschitz-regularised image models."""

from __future__ import annotations

__version__ = "0.1.0"

from robustbench_lip.config import DatasetInfo, ModelConfig
from robustbench_lip.errors import RlipError

__all__ = ["DatasetInfo", "ModelConfig", "RlipError", "__version__"]
