"""Doctest collection of the package: a backend module whose framework is not installed is left out (it would
fail on its first import line; cnnviz imports it only when Keras runs on that backend)."""

import importlib.util

collect_ignore = [f"cnnviz/backends/{name}.py" for name in ("jax",) if importlib.util.find_spec(name) is None]
