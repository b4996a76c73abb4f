"""The kubelet's termination messages: the file's text, cut at 4096 bytes, or the log's tail on error.

https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/ and the
Container API's terminationMessagePath / terminationMessagePolicy. A host process cannot have
/dev/termination-log, so a variable naming the path is given the pod's own file (kubelet docstring).
"""

from __future__ import annotations

import os
from typing import Any

from kubernetes import client

from tests.localcluster.conftest import pod_manifest, wait_for


def _run(core: client.CoreV1Api, name: str, script: str, **container: Any) -> client.V1Pod:
    manifest = pod_manifest(name, script)
    manifest["spec"]["containers"][0].update(container)
    core.create_namespaced_pod("default", manifest)
    pod: client.V1Pod = wait_for(
        lambda: (p := core.read_namespaced_pod(name, "default")).status.phase in ("Succeeded", "Failed") and p,
        timeout=60,
        what=f"pod {name} to end",
    )
    return pod


def _message(pod: client.V1Pod) -> str | None:
    message: str | None = pod.status.container_statuses[0].state.terminated.message
    return message


MSG_ENV = [{"name": "MSG", "value": "/dev/termination-log"}]


def test_a_variable_naming_the_message_path_gets_a_pod_file_whose_text_becomes_the_message(
    core: client.CoreV1Api,
) -> None:
    pod = _run(core, "writer", 'echo "$MSG"; printf "all done\\n" > "$MSG"', env=MSG_ENV)
    assert _message(pod) == "all done\n"
    host_path = core.read_namespaced_pod_log("writer", "default").strip()
    assert host_path != "/dev/termination-log" and os.path.isabs(host_path)
    wait_for(lambda: not os.path.exists(host_path), what="the message file to go with the pod")


def test_a_custom_termination_message_path_is_honoured_too(core: client.CoreV1Api) -> None:
    env = [{"name": "WHERE", "value": "/var/run/my-message"}]
    pod = _run(core, "custom", 'printf custom > "$WHERE"', env=env, terminationMessagePath="/var/run/my-message")
    assert _message(pod) == "custom"


def test_a_message_longer_than_4096_bytes_is_cut_to_its_first_4096(core: client.CoreV1Api) -> None:
    script = "python3 -c \"import os; open(os.environ['MSG'], 'w').write('a' * 4000 + 'b' * 1000)\""
    pod = _run(core, "long", script, env=MSG_ENV)
    assert _message(pod) == "a" * 4000 + "b" * 96


def test_fallback_to_logs_on_error_gives_the_last_80_lines_at_most_2048_bytes(core: client.CoreV1Api) -> None:
    script = "for i in $(seq 1 100); do echo line $i; done; exit 3"
    pod = _run(core, "crashed", script, terminationMessagePolicy="FallbackToLogsOnError")
    assert _message(pod) == "".join(f"line {i}\n" for i in range(21, 101))  # 80 lines, under 2048 bytes
    wide = "for i in $(seq 1 100); do echo line $i $(printf '%040d' 0); done; exit 3"
    pod = _run(core, "crashed-wide", wide, terminationMessagePolicy="FallbackToLogsOnError")
    log = core.read_namespaced_pod_log("crashed-wide", "default")
    assert _message(pod) == log[-2048:]


def test_fallback_only_on_error_and_empty_file_and_file_policy_never_reads_the_log(core: client.CoreV1Api) -> None:
    fine = _run(core, "fine", "echo hello", terminationMessagePolicy="FallbackToLogsOnError")
    assert _message(fine) is None
    plain = _run(core, "plain", "echo hello; exit 2")  # policy File, the default
    assert _message(plain) is None
    said = _run(
        core,
        "said",
        'echo hello; printf "my own words" > "$MSG"; exit 2',
        env=MSG_ENV,
        terminationMessagePolicy="FallbackToLogsOnError",
    )
    assert _message(said) == "my own words"
