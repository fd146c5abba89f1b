"""Randomized-smoothing certificates (Cohen et al. 2019; SegCertify, Fischer et al. 2021).

- `settings`: `SmoothingSettings`, σ, n, n0, α and batch size defined once (torch-free);
- `sampling`: batched Monte Carlo votes under Gaussian noise, seeded per image;
- `statistics`: Clopper–Pearson, binomial tests, Holm / Bonferroni, radius σ·Φ⁻¹(p);
- `classification`: PREDICT and CERTIFY of one batch of images;
- `segmentation`: SegCertify per pixel;
- `summary`: `certify_smoothed(model, dataset)` — dataset-level certified accuracy / mIoU;
- `run`: `certify_smoothed_run(model_path, settings)` — the evaluation (load → certify → record).

May import: evaluations (base, inputs, data_check), data.base (seeds), records, metrics, device,
errors — never cli, report or lipschitz.
"""
