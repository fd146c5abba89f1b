"""Model files that hold no code: model directories, `.pt` weights, `.pt2` exports, foreign weights.

A model directory (segmentation_models.pytorch style) holds `model.safetensors` (the state_dict)
and `config.json` = {"format": "rlip-model", "format_version": 1, "model": ModelConfig dict,
"dataset": DatasetInfo dict | null, "training": dict | null, "rlip", "torch", "weights_sha256",
"weights_sha256_of"}: enough to rebuild the model from the registry with no code from the file.
`weights_sha256` is the fingerprint of the tensors alone (fingerprint.py: name, dtype, shape, bytes,
sorted by name), not of the file's bytes, so it does not depend on the safetensors layout.

`load_model` also reads
- `.pt` / `.pth` / other torch files holding {"config": ModelConfig dict, "state_dict": ...} or a
  bare state_dict (then `arch` names a registered model or `torchvision:NAME`), always with
  `torch.load(..., weights_only=True)`: a pickled nn.Module or any code-bearing pickle is refused
  before anything in it runs;
- `.safetensors` state_dicts (with `arch`, or beside a config.json);
- `.pt2` archives from `torch.export.save` (any architecture). torch.export.load may unpickle
  opaque objects, load AOTInductor shared libraries or fall back to unsafe `torch.load`, so the
  archive is screened first (no AOTInductor/ExecuTorch/MTIA payloads, no custom/opaque objects)
  and loaded with TORCH_FORCE_WEIGHTS_ONLY_LOAD=1, which turns every torch.load into weights_only.

Foreign models (.pt2, torchvision) are wrapped in `ForeignModel`, which carries a ModelConfig whose
task is inferred from one forward pass on a zero image of the input size: output (N, K) →
classification; output shape == input shape → image2image (reflection defined; an ambiguous
C-class segmenter with C input channels counts as image2image); (N, K, H, W) with the input's H, W →
segmentation (mask classes = K, predict_mask = argmax); any other output → features (bounds only,
no certified radius). Dict outputs use their "out" entry
(torchvision segmentation models).

Modules: files (format constants, weights-only readers), fingerprint (weights_sha256), statedict
(strict loading), foreign (ForeignModel, infer_config, torchvision builders), rebuild (weights →
model), save, load, pt2.

May import: models, config, device, io, errors (and the package version); never lipschitz, training,
evaluations, report or cli.
"""

from robustbench_lip.modelio.files import (
    CONFIG_FILE,
    DEFAULT_FOREIGN_INPUT,
    FORMAT,
    FORMAT_VERSION,
    TORCHVISION_PREFIX,
    WEIGHTS_FILE,
)
from robustbench_lip.modelio.foreign import ForeignModel, build_from_config, infer_config
from robustbench_lip.modelio.load import load_model, read_model_meta
from robustbench_lip.modelio.save import export_pt2, save_model, save_pt

__all__ = [
    "CONFIG_FILE",
    "DEFAULT_FOREIGN_INPUT",
    "FORMAT",
    "FORMAT_VERSION",
    "TORCHVISION_PREFIX",
    "WEIGHTS_FILE",
    "ForeignModel",
    "build_from_config",
    "export_pt2",
    "infer_config",
    "load_model",
    "read_model_meta",
    "save_model",
    "save_pt",
]
