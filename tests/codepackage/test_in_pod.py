"""In the pod: the code package is what runs -- new code without a new image, config included, and
a package changed after upload is refused."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gokart_k8s.codepackage import prepare
from gokart_k8s.codepackage.pod import CACHE_ENV, SHA256_ENV, URL_ENV
from gokart_k8s.conventions import EXIT_CODE_SKEW

REPO = Path(__file__).resolve().parents[2]

pytest_plugins = ["gokart_k8s.testing.gcs"]

STEPS = """
import os

import gokart
import luigi

import gokart_k8s


@gokart_k8s.job(resources="tiny-custom")
class Shout(gokart.TaskOnKart):
    word = luigi.Parameter(default="hi")

    def run(self):
        self.dump(
            {"version": VERSION, "file": __file__, "cwd": os.getcwd(), "pythonpath": os.environ.get("PYTHONPATH", "")}
        )
"""

# The resource class exists only in this file, in the driver's working directory: a pod, which
# starts elsewhere, resolves it only if the configuration travels with the code.
LUIGI_CFG = """
[gokart_k8s.resources.tiny-custom]
cpu = 100m
memory = 1Gi
spot = false
"""


def make_project(root: Path, version: str) -> None:
    (root / "cpkg_demo").mkdir(parents=True, exist_ok=True)
    (root / "cpkg_demo/__init__.py").write_text("")
    (root / "cpkg_demo/steps.py").write_text(f"VERSION = {version!r}\n" + STEPS)
    (root / "luigi.cfg").write_text(LUIGI_CFG)


def driver(project: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``gokart-k8s`` run from the project directory, with only gokart_k8s itself on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LUIGI_CONFIG_PATH", None)
    command = [sys.executable, "-m", "gokart_k8s", *argv]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)


def output_of(workspace: Path) -> dict[str, str]:
    (path,) = workspace.glob("cpkg_demo/steps/Shout_*.pkl")
    with path.open("rb") as f:
        value: dict[str, str] = pickle.load(f)
    return value


def test_a_changed_step_runs_its_new_code_in_the_pods_without_a_new_image(tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_project(project, "v1")
    first = driver(
        project, "run", "cpkg_demo.steps.Shout", "--backend", "local-cluster", "--workspace", str(tmp_path / "ws1")
    )
    assert first.returncode == 0, first.stderr
    assert "code package" in first.stderr and "uploaded" in first.stderr
    one = output_of(tmp_path / "ws1")
    assert one["version"] == "v1"
    # The pod imported the step from the extracted package, in an empty working directory.
    assert not one["file"].startswith(str(project)) and "gokart-k8s-code" in one["file"]
    assert not os.path.exists(one["file"])  # the rehearsal's extracted packages go with the run
    assert one["cwd"] != str(project) and not os.path.exists(one["cwd"])
    # Nothing of the driver's import path reaches the pod: only what imports gokart_k8s itself.
    assert one["pythonpath"] == str(REPO)

    make_project(project, "v2")  # the same image (this interpreter), another step body
    second = driver(
        project, "run", "cpkg_demo.steps.Shout", "--backend", "local-cluster", "--workspace", str(tmp_path / "ws2")
    )
    assert second.returncode == 0, second.stderr
    assert output_of(tmp_path / "ws2")["version"] == "v2"
    # Each run's record names the package its steps ran, and the two differ.
    versions = [recorded_code_version(tmp_path / ws) for ws in ("ws1", "ws2")]
    assert all(
        v and (tmp_path / ws / "gokart_k8s" / "code" / f"{v}.tar.gz").exists()
        for v, ws in zip(versions, ("ws1", "ws2"), strict=True)
    )
    assert versions[0] != versions[1]


def recorded_code_version(workspace: Path) -> str | None:
    (snapshot,) = (workspace / "gokart_k8s" / "runs").glob("*/record.json")
    value = json.loads(snapshot.read_text())["code_version"]
    return None if value is None else str(value)


def test_code_package_off_keeps_the_image_only_path(tmp_path: Path) -> None:
    # With code_package=off the rehearsal's pods import from the driver's import roots and working
    # directory (standing in for an image that holds the code), and no package is made.
    project = tmp_path / "project"
    make_project(project, "v1")
    argv = ["run", "cpkg_demo.steps.Shout", "--backend", "local-cluster", "--workspace", str(tmp_path / "ws")]
    done = driver(project, *argv, "--code-package", "off")
    assert done.returncode == 0, done.stderr
    assert "code package" not in done.stderr
    assert output_of(tmp_path / "ws")["file"] == str(project / "cpkg_demo" / "steps.py")
    assert recorded_code_version(tmp_path / "ws") is None  # the image held the code
    assert not (tmp_path / "ws" / "gokart_k8s" / "code").exists()


def test_a_package_changed_after_upload_is_refused_by_the_pod(tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_project(project, "v1")
    package = prepare([str(project)], str(tmp_path / "ws"), limit_mb=50)
    Path(package.url).write_bytes(Path(package.url).read_bytes() + b"tampered")
    pod_dir = tmp_path / "pod"
    pod_dir.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        URL_ENV: package.url,
        SHA256_ENV: package.sha256,
        CACHE_ENV: str(tmp_path / "code-cache"),
    }
    argv = ["step", "--module", "cpkg_demo.steps", "--family", "Shout", "--params", "{}", "--unique-id", "0" * 32]
    done = subprocess.run(
        [sys.executable, "-m", "gokart_k8s", *argv], cwd=pod_dir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == EXIT_CODE_SKEW
    assert f"but the driver packed {package.sha256}: it was changed after it was uploaded" in done.stderr
    assert not (tmp_path / "code-cache" / package.sha256).exists()


def test_a_schedule_pins_its_code_package_by_hash_in_the_cronjob(
    tmp_path: Path, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml
    from google.cloud import storage

    project = tmp_path / "project"
    make_project(project, "v1")
    argv = ["schedule", "cpkg_demo.steps.Shout", "--cron", "@daily", "--image", "deps:1"]
    argv += ["--workspace", f"gs://{gcs_bucket}/cache"]

    def driver_env(out: Path) -> dict[str, str]:
        done = driver(project, *argv, "-o", str(out))
        assert done.returncode == 0, done.stderr
        (cronjob,) = out.glob("*-cronjob-*.yaml")
        pod = yaml.safe_load(cronjob.read_text())["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return {e["name"]: e.get("value", "") for e in pod["containers"][0]["env"]}

    first = driver_env(tmp_path / "out1")
    sha = first[SHA256_ENV]
    assert first[URL_ENV] == f"gs://{gcs_bucket}/cache/gokart_k8s/code/{sha}.tar.gz"
    make_project(project, "v2")
    second = driver_env(tmp_path / "out2")
    assert second[SHA256_ENV] != sha  # scheduling again pins the new code ...
    names = {b.name for b in storage.Client().list_blobs(gcs_bucket, prefix="cache/gokart_k8s/code/")}
    assert f"cache/gokart_k8s/code/{sha}.tar.gz" in names  # ... and the old package stays for past days


def test_a_driver_pod_runs_the_package_its_environment_pins(tmp_path: Path) -> None:
    # A scheduled driver starts in the image's directory, without the project: the pinned package
    # provides the task to import and the config (the custom resource class) to plan it with.
    project = tmp_path / "project"
    make_project(project, "pinned")
    package = prepare([str(project)], str(tmp_path / "ws"), limit_mb=50, config_files=[str(project / "luigi.cfg")])
    empty = tmp_path / "driver-pod"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), URL_ENV: package.url, SHA256_ENV: package.sha256}
    env.pop("LUIGI_CONFIG_PATH", None)
    argv = ["run", "cpkg_demo.steps.Shout", "--backend", "inline", "--workspace", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", "gokart_k8s", *argv], cwd=empty, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert output_of(tmp_path / "out")["version"] == "pinned"


def test_render_names_the_package_in_every_job_and_stores_it(tmp_path: Path, gcs_bucket: str) -> None:
    import yaml
    from google.cloud import storage

    project = tmp_path / "project"
    make_project(project, "v1")
    argv = ["render", "cpkg_demo.steps.Shout", "--image", "deps:1", "--workspace", f"gs://{gcs_bucket}/ws"]
    done = driver(project, *argv, "-o", str(tmp_path / "jobs"))
    assert done.returncode == 0, done.stderr
    (job,) = (yaml.safe_load(p.read_text()) for p in (tmp_path / "jobs").glob("*.yaml"))
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[URL_ENV] == f"gs://{gcs_bucket}/ws/gokart_k8s/code/{env[SHA256_ENV]}.tar.gz"
    key = env[URL_ENV].removeprefix(f"gs://{gcs_bucket}/")
    assert storage.Client().bucket(gcs_bucket).get_blob(key) is not None  # stored where the pods will look

    off = driver(project, *argv, "-o", str(tmp_path / "jobs-off"), "--code-package", "off")
    assert off.returncode == 0, off.stderr
    (job,) = (yaml.safe_load(p.read_text()) for p in (tmp_path / "jobs-off").glob("*.yaml"))
    assert URL_ENV not in {e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_gokart_k8s_build_ships_the_package_too(tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_project(project, "from-build")
    script = (
        "import gokart_k8s\n"
        "from gokart_k8s.workspace import set_workspace_directory\n"
        "from cpkg_demo.steps import Shout\n"
        "set_workspace_directory({!r})\n"
        "print(gokart_k8s.build(Shout(), backend='local-cluster')['file'])\n".format(str(tmp_path / "ws"))
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{project}"}
    env.pop("LUIGI_CONFIG_PATH", None)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert output_of(tmp_path / "ws")["version"] == "from-build"
    assert "gokart-k8s-code" in done.stdout.strip().splitlines()[-1]


def test_code_package_accepts_auto_or_off_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from gokart_k8s.errors import ConfigurationError
    from gokart_k8s.settings import load_settings

    monkeypatch.setenv("GOKART_K8S_CODE_PACKAGE", "sometimes")
    with pytest.raises(ConfigurationError, match="setting 'code_package': must be auto or off, got 'sometimes'"):
        load_settings()


def test_a_rehearsal_whose_package_was_tampered_with_fails_the_step_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    make_project(project, "v1")
    workspace = tmp_path / "ws"
    # The package the driver will make (same roots, config and settings), stored with other bytes
    # before the run: the driver finds it by name and skips the upload; the pod must refuse it.
    monkeypatch.chdir(project)
    expected = prepare(
        [str(project), str(REPO)], str(workspace), limit_mb=50, upload_it=False, config_files=["luigi.cfg"]
    )
    Path(expected.url).parent.mkdir(parents=True)
    Path(expected.url).write_bytes(b"not the package")
    done = driver(project, "run", "cpkg_demo.steps.Shout", "--backend", "local-cluster", "--workspace", str(workspace))
    assert done.returncode == 1
    assert f"code package {expected.sha256[:12]}" in done.stderr and "already in the cache" in done.stderr
    assert "refused its code package (exit 43)" in done.stderr
    assert "it was changed after it was uploaded" in done.stderr
    assert not list(workspace.glob("cpkg_demo/steps/Shout_*.pkl"))


def test_render_works_offline_and_writes_the_package_beside_the_jobs(tmp_path: Path, monkeypatch: Any) -> None:
    """No credentials and no emulator: render still writes every Job, plus the package and how to store it."""
    import yaml

    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GCS_CREDENTIAL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud application-default credentials either
    project = tmp_path / "project"
    make_project(project, "v1")
    out = tmp_path / "jobs"
    done = driver(
        project, "render", "cpkg_demo.steps.Shout", "--image", "deps:1", "--workspace", "gs://b/ws", "-o", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    (job,) = (yaml.safe_load(p.read_text()) for p in out.glob("*.yaml"))
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    (archive,) = out.glob("code-*.tar.gz")
    assert archive.name == f"code-{env[SHA256_ENV]}.tar.gz"
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == env[SHA256_ENV]
    assert f"gcloud storage cp {archive} {env[URL_ENV]}" in done.stderr
