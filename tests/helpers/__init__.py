"""Shared truths and builders of the tests: the dense float64 Jacobian oracle (oracle.py), tiny
models (rules, certify_models, seg_models, constrained), record and folder writers, repository
paths. May import robustbench_lip, torch and each other; never a test module."""
