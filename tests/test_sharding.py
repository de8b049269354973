"""The model axis sharded over 8 forced CPU devices, and over two jax.distributed processes,
gives the same models as unsharded training (subprocesses: this process has already
initialised JAX)."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent

SCRIPT = r"""
import json, sys
import numpy as np, jax
sys.path.insert(0, {here!r})
mode = sys.argv[1]
if mode == "dist":
    # what jaxsel.train._sharding.initialize_distributed does (before any JAX computation)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize("127.0.0.1:" + sys.argv[2], num_processes=2,
                               process_id=int(sys.argv[3]))
from jaxsel.train._many import fit_many
from _many_helpers import tiny_config, tiny_twin
ds, _ = tiny_twin(n_neurons=6)
cfg = tiny_config(max_epochs=2)
kw = dict(seeds=[0, 1, 2], hparams={{"lr": [0.005, 0.02, 0.05]}}, formulation="vmap")
sharded = fit_many(cfg, ds, mesh=True, **kw)
out = {{"devices": jax.device_count(), "sharded": sharded.best_score.tolist(),
        "params": float(sum(np.abs(l).sum() for l in jax.tree.leaves(sharded.params)))}}
if mode != "dist" or jax.process_index() == 0:
    ref = fit_many(cfg, ds, mesh=None, **kw) if mode != "dist" else None
    if ref is not None:
        out["ref"] = ref.best_score.tolist()
        out["ref_params"] = float(sum(np.abs(l).sum() for l in jax.tree.leaves(ref.params)))
print("RESULT" + json.dumps(out))
"""


def _run(args, env_extra, timeout=240):
    env = {**os.environ, **env_extra}
    code = SCRIPT.format(here=str(HERE))
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(p, timeout=240):
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, err[-3000:]
    line = [x for x in out.splitlines() if x.startswith("RESULT")][-1]
    return json.loads(line[6:])


@pytest.mark.slow
def test_eight_forced_devices_equal_unsharded():
    r = _result(_run(["local"], {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}))
    assert r["devices"] == 8
    np.testing.assert_allclose(r["sharded"], r["ref"], atol=1e-5)
    assert abs(r["params"] - r["ref_params"]) < 1e-3 * r["ref_params"]


@pytest.mark.slow
def test_two_process_distributed():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {"XLA_FLAGS": ""}
    procs = [_run(["dist", port, str(i)], env) for i in range(2)]
    ref_p = _run(["local"], {"XLA_FLAGS": ""})
    res = [_result(p) for p in procs]
    ref = _result(ref_p)
    assert res[0]["devices"] == 2
    assert res[0]["sharded"] == res[1]["sharded"]
    np.testing.assert_allclose(res[0]["sharded"], ref["ref"], atol=1e-5)
