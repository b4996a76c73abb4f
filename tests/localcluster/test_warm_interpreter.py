"""A step pod forked from the warm interpreter is the container a fresh process would be.

Each test runs the real ``gokart-k8s step`` command of a probe step (written into the test's own
directory, never imported by the server) that reports what it sees: its process group, parents,
environment, working directory, ``sys.path`` results and luigi configuration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import six
from kubernetes import client

from gokart_k8s.conventions import EXIT_EVICTED, EXIT_USER_ERROR
from gokart_k8s.localcluster import LocalCluster
from gokart_k8s.localcluster.warm.client import LOST_MESSAGE, ForkedContainer, WarmStarter
from gokart_k8s.localcluster.warm.fork import equivalence_problem, startup_environment, step_tail, suspects
from gokart_k8s.supervision.parentdeath import PARENT_ENV
from gokart_k8s.testing.cluster import ClusterFactory, wait_for
from tests.localcluster.conftest import pod_events

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import json, os, signal, sys, time
from pathlib import Path

import gokart
import luigi
import luigi.configuration
import six


def _ppid_of(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


class Probe(gokart.TaskOnKart):
    n = luigi.IntParameter(default=0)

    def run(self):
        mode = os.environ.get("PROBE_MODE", "report")
        try:
            import probe_helper
            helper = probe_helper.WHERE
        except ImportError:
            helper = None
        report = {
            "pid": os.getpid(),
            "pgrp": os.getpgrp(),
            "sid": os.getsid(0),
            "supervisor": os.getppid(),
            "supervisor_parent": _ppid_of(os.getppid()),
            "supervisor_grandparent": _ppid_of(_ppid_of(os.getppid())),
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "six_shadowed": getattr(six, "SHADOWED", False),
            "helper": helper,
            "luigi_value": luigi.configuration.get_config().get("probe", "value", "unset"),
        }
        out = os.environ.get("PROBE_OUT") or os.path.join(self.workspace_directory, "report.json")
        Path(out).write_text(json.dumps(report))
        if mode == "fail":
            raise ValueError("the probe fails on purpose")
        if mode == "hog":
            hog = b"x" * (400 << 20)
            time.sleep(60)
        if mode == "stubborn":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(60)
        if mode == "sleep":
            time.sleep(60)
        if mode == "linger":  # long enough for the kubelet to measure its memory a few times
            time.sleep(2)
        self.dump(self.n)
"""


@pytest.fixture(scope="module")
def probe_code(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, str]]:
    """The probe's code directory, and the unique id of ``Probe(n=i)`` for a few ``i``."""
    code = tmp_path_factory.mktemp("probe-code")
    (code / "warm_probe.py").write_text(PROBE)
    ids = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, warm_probe; print(json.dumps({i: warm_probe.Probe(n=i).make_unique_id() for i in range(8)}))",
        ],
        env={**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{REPO}"},
        capture_output=True,
        text=True,
        check=True,
    )
    return code, {int(k): v for k, v in json.loads(ids.stdout).items()}


def full_command(ids: dict[int, str], n: int = 0) -> list[str]:
    """The container command of the probe step ``Probe(n=n)``, as a step's Job has it."""
    params = json.dumps({"n": str(n)})
    return [
        "gokart-k8s",
        "step",
        "--module",
        "warm_probe",
        "--family",
        "Probe",
        "--params",
        params,
        "--unique-id",
        ids[n],
    ]


def tail_of(ids: dict[int, str], n: int = 0) -> list[str]:
    return full_command(ids, n)[1:]


def base_env(code: Path, out: Path, **extra: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update(PYTHONPATH=f"{code}{os.pathsep}{REPO}", PYTHONUNBUFFERED="1", PROBE_OUT=str(out), **extra)
    return env


def read_report(path: Path) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    return report


@pytest.fixture
def starter() -> Iterator[WarmStarter]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1", ONLY_IN_THE_SERVER="1")
    warm = WarmStarter(env)
    warm.start()
    yield warm
    warm.stop()


def run_forked(warm: WarmStarter, tail: list[str], env: dict[str, str], cwd: Path) -> tuple[ForkedContainer, str]:
    container = warm.spawn(tail, env, str(cwd))
    assert container is not None and container.stdout is not None
    log = container.stdout.read().decode(errors="replace")
    container.stdout.close()
    container.wait(timeout=120)
    return container, log


# ---------------------------------------------------------------------------------------- pure
def test_only_the_step_command_is_forked() -> None:
    python = sys.executable
    assert step_tail([python, "-m", "gokart_k8s", "step", "--module", "m"], python) == ["step", "--module", "m"]
    assert step_tail([python, "-m", "gokart_k8s", "run", "T"], python) is None
    assert step_tail(["sh", "-c", "gokart-k8s step"], python) is None
    assert step_tail([python, "-c", "print(1)"], python) is None


def test_a_different_interpreter_setting_or_a_shadowed_module_means_a_fresh_interpreter() -> None:
    env = {"PATH": "/bin", "PYTHONUNBUFFERED": "1", "PYTHONPATH": "/a"}
    here = {"six": "/site/six.py"}
    assert equivalence_problem(env, {**env, "PYTHONPATH": "/b"}, here, here.get) is None
    assert "PYTHONHASHSEED" in str(equivalence_problem(env, {**env, "PYTHONHASHSEED": "0"}, here, here.get))
    assert "LC_ALL" in str(equivalence_problem(env, {**env, "LC_ALL": "C"}, here, here.get))
    # numpy's OpenBLAS, preloaded with gokart, sized its thread pool from the server's environment.
    assert "OMP_NUM_THREADS" in str(equivalence_problem(env, {**env, "OMP_NUM_THREADS": "1"}, here, here.get))
    assert "six" in str(equivalence_problem(env, env, here, {"six": "/pod/six.py"}.get))
    assert startup_environment({"PYTHONPATH": "/x", "PYTHONOPTIMIZE": "1", "HOME": "/h"}) == {"PYTHONOPTIMIZE": "1"}


def test_only_modules_a_pods_path_might_shadow_are_looked_up(tmp_path: Path) -> None:
    site, first, empty = tmp_path / "site", tmp_path / "first", tmp_path / "empty"
    for directory in (site, first, empty):
        directory.mkdir()
    homes = {"six": str(site), "luigi": str(site), "gone": str(tmp_path / "elsewhere"), "spaced": None}
    (first / "six.py").write_text("")
    assert suspects([str(empty), str(site), str(first)], homes) == ["gone", "spaced"]
    assert suspects([str(first), str(empty), str(site)], homes) == ["six", "gone", "spaced"]


# ------------------------------------------------------------------------- the forked process
def test_a_forked_step_has_its_own_session_exactly_its_environment_and_its_working_directory(
    starter: WarmStarter, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    code, ids = probe_code
    out = tmp_path / "report.json"
    env = base_env(code, out, ONLY_IN_THE_POD="yes")
    container, log = run_forked(starter, tail_of(ids), env, tmp_path)
    assert container.returncode == 0, log
    report = read_report(out)
    server = starter.server_pid
    # The supervisor is the forked container: its own session and group, a child of the server.
    assert report["pgrp"] == report["sid"] == container.pid == report["supervisor"], report
    assert report["supervisor_parent"] == server
    # Exactly the pod's environment (plus what the step supervisor adds for its worker).
    expected = {**env, PARENT_ENV: str(server)}
    seen = dict(report["env"])
    assert seen.pop("GOKART_K8S_STEP_WORKER") == "1"
    assert PARENT_ENV not in seen  # the supervisor does not pass it on
    expected.pop(PARENT_ENV)
    assert seen == expected
    assert "ONLY_IN_THE_SERVER" not in report["env"]
    assert report["cwd"] == str(tmp_path)
    assert starter.forked == 1


def test_the_exit_code_of_a_forked_step_is_the_container_exit_code(
    starter: WarmStarter, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    code, ids = probe_code
    env = base_env(code, tmp_path / "report.json", PROBE_MODE="fail")
    container, log = run_forked(starter, tail_of(ids), env, tmp_path)
    assert container.returncode == EXIT_USER_ERROR
    assert "the probe fails on purpose" in log


def test_a_forked_worker_writes_through_the_supervisors_relay_which_leaves_the_log_as_the_message(
    starter: WarmStarter, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    code, ids = probe_code
    message = tmp_path / "termination-message"
    env = base_env(code, tmp_path / "report.json", PROBE_MODE="fail", GOKART_K8S_TERMINATION_MESSAGE_PATH=str(message))
    container, log = run_forked(starter, tail_of(ids), env, tmp_path)
    assert container.returncode == EXIT_USER_ERROR
    assert starter.forked == 1  # the supervisor was forked, and so was its worker (start_worker)
    # The worker's fds 1 and 2 were the relay's pipes: what it wrote is in the message, as in the log.
    assert "the probe fails on purpose" in log
    assert message.read_text() == "gokart-k8s log: complete\n" + log


def test_a_module_on_the_pods_path_wins_over_what_the_server_preloaded(
    starter: WarmStarter, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    """A ``six`` on the pod's PYTHONPATH is the one the step imports (a fresh interpreter would), and a
    module in the working directory is importable."""
    code, ids = probe_code
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    assert six.__file__ is not None
    (shadow / "six.py").write_text(Path(six.__file__).read_text() + "\nSHADOWED = True\n")
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "probe_helper.py").write_text("WHERE = 'working directory'\n")
    env = base_env(code, tmp_path / "report.json")
    env["PYTHONPATH"] = f"{shadow}{os.pathsep}{env['PYTHONPATH']}"
    container, log = run_forked(starter, tail_of(ids), env, workdir)
    assert container.returncode == 0, log
    report = read_report(tmp_path / "report.json")
    assert report["six_shadowed"] is True
    assert report["helper"] == "working directory"


def test_a_forked_step_reads_the_luigi_config_of_its_own_directory_and_environment(
    starter: WarmStarter, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    code, ids = probe_code
    first, second = tmp_path / "first", tmp_path / "second"
    for directory in (first, second):
        directory.mkdir()
    (first / "luigi.cfg").write_text("[probe]\nvalue = from the working directory\n")
    named = tmp_path / "named.cfg"
    named.write_text("[probe]\nvalue = from LUIGI_CONFIG_PATH\n")
    run_forked(starter, tail_of(ids), base_env(code, first / "report.json"), first)
    run_forked(starter, tail_of(ids), base_env(code, second / "report.json", LUIGI_CONFIG_PATH=str(named)), second)
    assert read_report(first / "report.json")["luigi_value"] == "from the working directory"
    assert read_report(second / "report.json")["luigi_value"] == "from LUIGI_CONFIG_PATH"


# ------------------------------------------------------------------------------ in the cluster
def _pod(name: str, command: list[str], env: dict[str, str], *, grace: int = 1, **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": grace,
            "containers": [
                {
                    "name": "main",
                    "image": "gokart-k8s:rehearsal",
                    "command": command,
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                    **container,
                }
            ],
        },
    }


def _terminated(core: client.CoreV1Api, name: str) -> Any:
    def done() -> Any:
        statuses = core.read_namespaced_pod(name, "default").status.container_statuses or []
        return statuses[0].state.terminated if statuses and statuses[0].state.terminated else None

    return wait_for(done, timeout=180, what=f"pod {name} terminated")


def _cluster_env(code: Path, out: Path, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": f"{code}{os.pathsep}{REPO}", "PROBE_OUT": str(out), **extra}


def test_the_setting_off_starts_every_step_pod_as_a_fresh_process(
    local_cluster_factory: ClusterFactory, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    code, ids = probe_code
    cluster = local_cluster_factory(workdir=tmp_path, warm_interpreter=False)
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod("default", _pod("cold", full_command(ids), _cluster_env(code, tmp_path / "r.json")))
    assert _terminated(core, "cold").exit_code == 0
    assert cluster.kubelet.warm is None
    assert read_report(tmp_path / "r.json")["supervisor_parent"] == os.getpid()


def test_a_step_pod_of_the_cluster_is_forked_and_its_memory_limit_holds(
    local_cluster_factory: ClusterFactory, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    code, ids = probe_code
    cluster = local_cluster_factory(workdir=tmp_path)
    core = client.CoreV1Api(cluster.api_client())
    # The RSS of the forked supervisor and worker, pages shared with the warm server included, is above
    # 150Mi (each maps about 80 MiB of the server's right after the fork); what the pod itself holds is
    # well below, and only that counts, as a cgroup charges a shared page to who first touched it.
    fits = _pod(
        "warm",
        full_command(ids, 1),
        _cluster_env(code, tmp_path / "a.json", PROBE_MODE="linger"),
        resources={"limits": {"memory": "150Mi"}},
    )
    core.create_namespaced_pod("default", fits)
    assert _terminated(core, "warm").exit_code == 0
    assert cluster.kubelet.warm is not None and cluster.kubelet.warm.forked == 1
    assert read_report(tmp_path / "a.json")["supervisor_parent"] == cluster.kubelet.warm.server_pid
    hog = _pod(
        "hog",
        full_command(ids, 2),
        _cluster_env(code, tmp_path / "b.json", PROBE_MODE="hog"),
        resources={"limits": {"memory": "256Mi"}},
    )
    core.create_namespaced_pod("default", hog)
    term = _terminated(core, "hog")
    assert (term.reason, term.exit_code) == ("OOMKilled", 137)
    assert cluster.kubelet.warm.forked == 2


def _deleted(core: client.CoreV1Api, name: str, grace: int) -> Any:
    """Delete pod ``name`` and return its container's last terminated state."""
    rv = core.read_namespaced_pod(name, "default").metadata.resource_version
    core.delete_namespaced_pod(name, "default", grace_period_seconds=grace)
    for event in pod_events(core, name, rv, timeout=120):
        if event["type"] == "DELETED":
            return event["object"].status.container_statuses[0].state.terminated
    raise AssertionError(f"pod {name} was not deleted")


def _wait_report(path: Path) -> dict[str, Any]:
    wait_for(lambda: path.exists() and path.stat().st_size > 0, timeout=120, what=f"{path} written")
    return read_report(path)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_deleting_a_forked_step_pod_sends_sigterm_then_sigkill_after_the_grace_period(
    local_cluster_factory: ClusterFactory, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    code, ids = probe_code
    cluster = local_cluster_factory(workdir=tmp_path)
    core = client.CoreV1Api(cluster.api_client())
    # A step that stops on SIGTERM: the supervisor forwards it and the step exits as evicted.
    core.create_namespaced_pod(
        "default", _pod("polite", full_command(ids, 3), _cluster_env(code, tmp_path / "p.json", PROBE_MODE="sleep"))
    )
    polite = _wait_report(tmp_path / "p.json")
    assert _deleted(core, "polite", 30).exit_code == EXIT_EVICTED
    # A step that ignores SIGTERM for longer than the grace period: SIGKILL to the whole group.
    stubborn_env = _cluster_env(
        code, tmp_path / "s.json", PROBE_MODE="stubborn", GOKART_K8S_TERMINATION_BUDGET_SECONDS="120"
    )
    core.create_namespaced_pod("default", _pod("stubborn", full_command(ids, 4), stubborn_env, grace=1))
    stubborn = _wait_report(tmp_path / "s.json")
    assert _deleted(core, "stubborn", 1).exit_code == 137
    assert cluster.kubelet.warm is not None and cluster.kubelet.warm.forked == 2
    for report in (polite, stubborn):
        wait_for(lambda pgid=report["pgrp"]: _group_gone(pgid), timeout=30, what="the pod's process group gone")


def test_the_cluster_runs_the_next_step_pods_after_the_warm_server_was_killed(
    local_cluster_factory: ClusterFactory, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    code, ids = probe_code
    cluster = local_cluster_factory(workdir=tmp_path)
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespaced_pod(
        "default", _pod("victim", full_command(ids, 5), _cluster_env(code, tmp_path / "v.json", PROBE_MODE="sleep"))
    )
    victim = _wait_report(tmp_path / "v.json")
    warm = cluster.kubelet.warm
    assert warm is not None and warm.server_pid is not None
    os.kill(warm.server_pid, signal.SIGKILL)
    term = _terminated(core, "victim")
    assert (term.exit_code, term.message) == (137, LOST_MESSAGE)
    wait_for(lambda: _group_gone(victim["pgrp"]), timeout=30, what="the lost pod's group gone")
    core.create_namespaced_pod("default", _pod("next", full_command(ids, 6), _cluster_env(code, tmp_path / "n.json")))
    assert _terminated(core, "next").exit_code == 0
    assert (warm.server_starts, warm.forked) == (2, 2)


def test_other_commands_are_not_forked(local_cluster: LocalCluster, tmp_path: Path) -> None:
    core = client.CoreV1Api(local_cluster.api_client())
    core.create_namespaced_pod("default", _pod("shell", ["sh", "-c", "echo $PPID > " + str(tmp_path / "ppid")], {}))
    assert _terminated(core, "shell").exit_code == 0
    assert int((tmp_path / "ppid").read_text()) == os.getpid()
    warm = local_cluster.kubelet.warm
    assert warm is not None and (warm.server_starts, warm.forked) == (0, 0)


# ----------------------------------------------------------------- nothing imported in a pod
UNUSED_BY_A_STEP = (
    "gokart_k8s.localcluster",
    "gokart_k8s.cost",
    "gokart_k8s.history",
    "gokart_k8s.scheduling",
    "gokart_k8s.codepackage.image",
    "gokart_k8s.runner",
    "gokart_k8s.driver",
    "kubernetes",
)

_MODULES_AT_EXIT = (
    "import atexit, json, os, sys\n"
    "atexit.register(lambda: open(os.environ['MODULES_OUT'], 'w').write(json.dumps(sorted(sys.modules))))\n"
    "from gokart_k8s.cli import main\n"
    "raise SystemExit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("role", ["worker", "supervisor"])
def test_the_step_command_imports_nothing_a_step_does_not_use(
    role: str, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    code, ids = probe_code
    env = base_env(code, tmp_path / "report.json", MODULES_OUT=str(tmp_path / "modules.json"))
    if role == "worker":
        env["GOKART_K8S_STEP_WORKER"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", _MODULES_AT_EXIT, *tail_of(ids)], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    modules = json.loads((tmp_path / "modules.json").read_text())
    assert "warm_probe" in modules or role == "supervisor"
    unused = [m for m in modules if any(m == u or m.startswith(u + ".") for u in UNUSED_BY_A_STEP)]
    assert unused == []
    if role == "supervisor":  # it only supervises: no luigi, no gokart
        assert not {"luigi", "gokart", "pandas"} & set(modules)


def test_no_warm_server_outlives_its_cluster(probe_code: tuple[Path, dict[int, str]], tmp_path: Path) -> None:
    code, ids = probe_code
    cluster = LocalCluster(workdir=tmp_path).start()
    try:
        core = client.CoreV1Api(cluster.api_client())
        core.create_namespaced_pod(
            "default", _pod("one", full_command(ids, 7), _cluster_env(code, tmp_path / "o.json"))
        )
        assert _terminated(core, "one").exit_code == 0
        assert cluster.kubelet.warm is not None
        server = cluster.kubelet.warm.server_pid
        assert server is not None
    finally:
        cluster.stop()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _group_gone(server):
        time.sleep(0.05)
    assert _group_gone(server)


def test_warm_up_starts_the_preload_before_any_pod_asks_for_it(tmp_path: Path) -> None:
    """A rehearsal warms the interpreter up as its cluster starts, so the preload overlaps the first
    nodes' provisioning; a cluster nobody warms up starts no server until a step pod needs one."""
    cluster = LocalCluster(workdir=tmp_path).start()
    try:
        warm = cluster.kubelet.warm
        assert warm is not None
        assert warm.server_starts == 0 and warm.server_pid is None
        cluster.warm_up()
        deadline = time.monotonic() + 120
        while warm.server_pid is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert warm.server_pid is not None
        assert warm.forked == 0
    finally:
        cluster.stop()


@pytest.mark.parametrize("setting", ["true", "false"])
def test_the_rehearsal_follows_the_warm_interpreter_setting(
    setting: str, probe_code: tuple[Path, dict[int, str]], tmp_path: Path
) -> None:
    """``[gokart_k8s] warm_interpreter`` (here as GOKART_K8S_WARM_INTERPRETER): false starts the step's
    pod as a fresh process of the driver's cluster, true forks it from the warm server."""
    code, _ = probe_code
    workspace = tmp_path / "resources"
    (tmp_path / "luigi.cfg").write_text(f"[TaskOnKart]\nworkspace_directory = {workspace}/\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOKART_K8S_") and k != "LUIGI_CONFIG_PATH"}
    env.update(PYTHONPATH=f"{code}{os.pathsep}{REPO}", GOKART_K8S_WARM_INTERPRETER=setting)
    driver = subprocess.Popen(
        [sys.executable, "-m", "gokart_k8s", "run", "warm_probe.Probe", "--backend", "local-cluster", "--no-logs"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output
    report = read_report(workspace / "report.json")
    if setting == "false":
        assert report["supervisor_parent"] == driver.pid
    else:
        assert report["supervisor_parent"] != driver.pid
        assert report["supervisor_grandparent"] == driver.pid  # the warm server, the driver's child


@pytest.mark.parametrize(("flag", "off"), [("--no-warm-interpreter", True), ("--warm-interpreter", False)])
def test_local_cluster_start_takes_the_warm_interpreter_flag(flag: str, off: bool, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOKART_K8S_") and k != "LUIGI_CONFIG_PATH"}
    env.update(PYTHONPATH=str(REPO), GOKART_K8S_WARM_INTERPRETER="false" if not off else "true")
    argv = [sys.executable, "-m", "gokart_k8s", "local-cluster", "start", flag, "--kubeconfig", str(tmp_path / "kc")]
    cluster = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert cluster.stdout is not None
        lines = []
        for line in cluster.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
    finally:
        cluster.send_signal(signal.SIGINT)
        cluster.communicate(timeout=60)
    # The flag wins over the setting (set here to the opposite).
    assert any("warm interpreter: off" in line for line in lines) is off, "".join(lines)


def test_a_server_started_before_its_cluster_is_taken_only_with_exactly_its_environment() -> None:
    """A rehearsal starts the server while it plans; the cluster takes that one, or kills it and
    starts its own when the environment differs (a pod must never see another interpreter)."""
    from gokart_k8s.localcluster.warm.client import PrestartedServer

    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env.update(PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    for theirs, taken in ((env, True), ({**env, "PYTHONOPTIMIZE": "1"}, False)):
        early = PrestartedServer(theirs)
        pid = early.pid
        assert pid is not None
        warm = WarmStarter(env, prestarted=early)
        warm.start()
        try:
            warm.warm_up()
            wait_for(lambda w=warm: w.server_pid is not None, timeout=120)  # type: ignore[misc]
            assert (warm.server_pid == pid) is taken
            assert warm.server_starts == 1
            assert early.pid is None  # handed over, or killed
            if not taken:
                wait_for(lambda p=pid: _group_gone(p), timeout=10)  # type: ignore[misc]
        finally:
            warm.stop()
    # One nobody takes is killed when closed (a plan with problems, nothing to run).
    unused = PrestartedServer(env)
    pid = unused.pid
    assert pid is not None
    unused.close()
    assert _group_gone(pid)  # it leads its own session, so its own process group


def test_a_rehearsal_from_the_command_line_takes_the_server_it_started_before_planning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment guessed before the plan is exactly the one its cluster starts a server with."""
    from gokart_k8s.cli import main
    from gokart_k8s.localcluster.warm.client import PrestartedServer

    taken: list[bool] = []
    original = PrestartedServer.take

    def take(self: PrestartedServer, env: Any) -> Any:
        started = original(self, env)
        taken.append(started is not None)
        return started

    monkeypatch.setattr(PrestartedServer, "take", take)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "luigi.cfg").write_text(f"[TaskOnKart]\nworkspace_directory = {tmp_path / 'resources'}/\n")
    monkeypatch.setenv("LUIGI_CONFIG_PATH", str(tmp_path / "luigi.cfg"))
    monkeypatch.delenv("GOKART_K8S_WARM_INTERPRETER", raising=False)
    import luigi.configuration

    monkeypatch.setattr(luigi.configuration.LuigiConfigParser, "_instance", None)
    assert main(["run", "tests.core.pipelines.Ray", "--i", "7", "--backend", "local-cluster", "--no-logs"]) == 0
    assert taken == [True]
