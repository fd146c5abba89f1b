"""Lipschitz machinery: Jacobian power iteration, certified bounds, the training penalty.

May import: config, choices, modelio (hints), device, errors, registry, io; never training,
evaluations, report or cli.
"""
