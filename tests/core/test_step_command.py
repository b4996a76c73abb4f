"""The in-pod command rebuilds a step from JSON, refuses code skew, and exits with codes the Job understands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from gokart_k8s.conventions import EXIT_CODE_SKEW, EXIT_OK, EXIT_USER_ERROR
from gokart_k8s.entrypoint import step_argv
from gokart_k8s.settings import load_settings
from gokart_k8s.steps import spec_for
from tests.core.pipelines import Boom, ConfiguresInRun, Ray, Source, Star

REPO = Path(__file__).resolve().parents[2]


def run_in_pod(argv: list[str], workspace: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "GOKART_K8S_WORKSPACE": f"{workspace}/"}
    env.pop("LUIGI_CONFIG_PATH", None)
    command = [sys.executable, "-m", "gokart_k8s", *argv[1:]]
    return subprocess.run(command, cwd=workspace, env=env, capture_output=True, text=True, timeout=120)


def test_the_step_command_rebuilds_the_task_from_json_and_writes_its_cached_output(tmp_path: Path) -> None:
    spec = spec_for(Source(n=4), load_settings())
    done = run_in_pod(step_argv(spec), tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    outputs = list(tmp_path.glob(f"tests/core/pipelines/Source_{spec.unique_id}.pkl"))
    assert len(outputs) == 1


def test_the_step_command_refuses_to_run_when_the_image_computes_another_unique_id(tmp_path: Path) -> None:
    spec = spec_for(Source(n=4), load_settings())
    argv = step_argv(spec)
    argv[argv.index("--unique-id") + 1] = "0" * 32
    done = run_in_pod(argv, tmp_path)
    assert done.returncode == EXIT_CODE_SKEW
    assert f"computes unique id {spec.unique_id} in this image, but the driver expected {'0' * 32}" in done.stderr
    assert "Rebuild the image" in done.stderr
    assert not list(tmp_path.glob("tests/core/pipelines/Source_*.pkl"))


def test_a_module_missing_from_the_image_is_code_skew(tmp_path: Path) -> None:
    spec = spec_for(Source(n=4), load_settings())
    argv = step_argv(spec)
    argv[argv.index("--module") + 1] = "not_in_this_image"
    done = run_in_pod(argv, tmp_path)
    assert done.returncode == EXIT_CODE_SKEW
    assert "cannot import module 'not_in_this_image'" in done.stderr


def test_an_error_in_the_steps_own_code_exits_as_a_user_error(tmp_path: Path) -> None:
    spec = spec_for(Boom(), load_settings())
    done = run_in_pod(step_argv(spec), tmp_path)
    assert done.returncode == EXIT_USER_ERROR
    assert "the step's own code failed" in done.stderr


def test_step_parameters_travel_as_json_never_pickle() -> None:
    spec = spec_for(Source(n=7), load_settings())
    argv = step_argv(spec)
    assert json.loads(argv[argv.index("--params") + 1])["n"] == "7"


def test_a_config_value_set_in_a_steps_run_is_what_the_tasks_it_builds_next_read(tmp_path: Path) -> None:
    """The pod finds each parameter's value once, but forgets them all when luigi's config changes."""
    import pickle

    spec = spec_for(ConfiguresInRun(), load_settings())
    done = run_in_pod(step_argv(spec), tmp_path)
    assert done.returncode == EXIT_OK, done.stderr
    (output,) = tmp_path.glob(f"tests/core/pipelines/ConfiguresInRun_{spec.unique_id}.pkl")
    assert pickle.loads(output.read_bytes()) == ["default", "set-in-run"]


_COUNTING_POD = """
import collections, json, sys
import luigi.parameter
from gokart_k8s.entrypoint import run_step
reads = collections.Counter()
original = luigi.parameter.Parameter._get_value_from_config
def counting(param, section, name):
    reads[(section, name)] += 1
    return original(param, section, name)
luigi.parameter.Parameter._get_value_from_config = counting
code = run_step(module=sys.argv[1], family=sys.argv[2], params_json=sys.argv[3], unique_id=sys.argv[4])
print(json.dumps({"code": code, "most": max(reads.values()), "of": str(reads.most_common(1))}))
"""


def test_a_step_pod_reads_each_config_value_once_not_once_per_task_it_builds(tmp_path: Path) -> None:
    """Its requirement is built ~10 times in a pod (scheduling, unique id, each dump): read once."""
    spec = spec_for(Star(n=3), load_settings())
    for ready in (Ray(i=0), Ray(i=1), Ray(i=2)):
        assert run_in_pod(step_argv(spec_for(ready, load_settings())), tmp_path).returncode == EXIT_OK
    env = {**os.environ, "PYTHONPATH": str(REPO), "GOKART_K8S_WORKSPACE": f"{tmp_path}/"}
    env.pop("LUIGI_CONFIG_PATH", None)
    argv = [spec.module, spec.family, json.dumps(dict(spec.params)), spec.unique_id]
    done = subprocess.run(
        [sys.executable, "-c", _COUNTING_POD, *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    counted = json.loads(done.stdout.splitlines()[-1])
    assert counted["code"] == EXIT_OK, done.stderr
    assert counted["most"] <= 2, counted
