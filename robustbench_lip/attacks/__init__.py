"""Adversarial attacks for classifiers and segmenters, and their evaluation."""
