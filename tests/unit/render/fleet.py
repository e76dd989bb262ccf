"""Access to istio/generate.py (the example fleet with its mesh settings) from the tests."""

from __future__ import annotations

import functools
import importlib.util
from types import ModuleType

from tests.unit.conftest import ROOT


@functools.cache
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("istio_generate", ROOT / "istio" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
