"""The Lipschitz certificate of a saved model and its certified ℓ2 radii.

- `settings`: `CertifySettings`, the defaults of `rlip certify` (torch-free, read by the CLI);
- `run`: `certify_run(model_path, settings, inputs)` — the evaluation (load → certify → record →
  write) and `pending_certify`, the runs not yet recorded;
- `certificate`: `certify(model, images, ...)` on tensors → `Certificate` (bounds, FNE, radii);
- `radii`: margin / (√2·U), per-pixel radii of masks, accuracy and mIoU at ε (one home each);
- `heads`: the linear-head and CAM-mask rules of classifiers on top of the √2 rule;
- `metrics`: certified accuracy / mIoU by task, each computed once, and the record's radius rules;
- `cam_masks`: per-pixel certified radii of the CAM masks of `LipResNet`.

May import: evaluations (base, inputs, data_check, steps), lipschitz (bounds, lower, margins),
models, modelio, records, metrics, scoring, attacks.eps, device, errors — never cli or report.
"""
