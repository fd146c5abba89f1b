"""Datasets: built-in generated `shapes` and `lesions`, real `cifar10` and `coco` loaders, own images
(`folder`), export — each a `DatasetSpec` in the dataset registry (registry.py: `register_dataset`,
`DATASETS`; the built-ins in builtin_specs.py), which every dataset lookup reads.

```python
from robustbench_lip.data import get_dataset, make_loader
ds = get_dataset("shapes", "train", n_train=512, seed=0)
image, label, mask = ds[0]          # (3,32,32) float in [0,1], int64, (32,32) int64
for images, labels, masks in make_loader(ds, 64, shuffle=True, seed=1): ...
```

May import: errors, choices, config, io, labels, registry and torch (the real loaders: their file readers,
imported when used) — never models, training, evaluation, records or report.
"""

from __future__ import annotations

from robustbench_lip.data.base import RlipDataset, collate, make_loader
from robustbench_lip.data.export import FORMATS, export_dataset
from robustbench_lip.data.preview import render_preview
from robustbench_lip.data.registry import dataset_info, dataset_table, get_dataset, list_datasets

__all__ = [
    "FORMATS",
    "RlipDataset",
    "collate",
    "dataset_info",
    "dataset_table",
    "export_dataset",
    "get_dataset",
    "list_datasets",
    "make_loader",
    "render_preview",
]
