"""The operator image installs only the runtime dependencies; the operator must run there."""

import subprocess
import sys

DEV_ONLY = ("cryptography", "kubernetes", "pytest")


def test_operator_runtime_imports_no_dev_only_package() -> None:
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in DEV_ONLY)
    modules = "agentfleet.main, agentfleet.runtime.handlers"
    code = f"import sys; {blocked}; import {modules}; agentfleet.main.app"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
