"""The test suite, one package per package of robustbench_lip (tests/lipschitz/ tests lipschitz/, …).
Shared truths and tiny models live in tests/helpers/; no test module imports another."""
