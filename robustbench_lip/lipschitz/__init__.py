"""Lipschitz machinery: Jacobian power iteration, certified bounds, the training penalty."""
