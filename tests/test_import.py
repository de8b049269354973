"""Importing jaxsel has no side effects on JAX: no backend started, no config changed."""

import subprocess
import sys


def test_import_starts_no_backend_and_changes_no_config():
    code = (
        "import jax\n"
        "before = {k: getattr(jax.config, k) for k in ('jax_enable_x64', 'jax_platforms')}\n"
        "import jaxsel, jaxsel.data, jaxsel.models, jaxsel.train, jaxsel.measures._selection\n"
        "import jaxsel.insilico, jaxsel.train._many, jaxsel.cli._main\n"
        "from jax._src import xla_bridge\n"
        "assert not xla_bridge.backends_are_initialized(), 'backend initialised at import'\n"
        "after = {k: getattr(jax.config, k) for k in before}\n"
        "assert before == after, (before, after)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
