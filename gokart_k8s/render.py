"""Render: write the exact Job manifests a run would submit, one YAML file per step.

``gokart-k8s render TASK --platform P -o DIR`` calls :func:`render_steps`. It plans exactly as a
run does -- every step is checked on the platform profile first, and *all* problems are raised
together as one :class:`~gokart_k8s.errors.PlanError` before any file is written -- then writes
``DIR/<job-name>.yaml`` for each step, so ``kubectl apply -f DIR`` submits the same Jobs a run
would (without the driver's ordering: a Job whose inputs are not cached yet would start anyway).

Files are deterministic: the same pipeline, settings, run id, image and environment give the same
bytes, so a rendered directory can be kept in git and diffed when a platform or class changes.
Each file starts with a comment naming the step and its placement (and any planning warnings);
``kubectl`` ignores comments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from gokart_k8s.conventions import dump_yaml, step_identity
from gokart_k8s.errors import PlanError
from gokart_k8s.manifests import build_job_manifest, check_manifest
from gokart_k8s.platforms import check_steps, get_profile
from gokart_k8s.settings import Settings
from gokart_k8s.steps import StepSpec

#: What a refused render did not do (it never submits anything, so it must not say so).
NOTHING_WRITTEN = "no file was written"


def render_steps(
    specs: Sequence[StepSpec],
    settings: Settings,
    *,
    run_id: str,
    image: str,
    out_dir: Path,
    env: Mapping[str, str],
) -> list[Path]:
    """Write one Job manifest per step into ``out_dir`` and return the paths, in step order.

    Raises :class:`PlanError` with every problem (platform refusals, invalid manifests, two steps
    with one Job name) before writing anything.
    """
    profile = get_profile(settings)
    problems = check_steps(specs, profile)
    if problems:
        raise PlanError(problems, consequence=NOTHING_WRITTEN)
    documents: list[tuple[str, str]] = []
    seen: dict[str, StepSpec] = {}
    for spec in specs:
        placement = profile.place(spec)
        manifest = build_job_manifest(
            spec, placement, settings, run_id=run_id, image=image, env=env, identity=step_identity(image, env)
        )
        name = str(manifest["metadata"]["name"])
        if name in seen:
            problems.append(
                f"Steps {seen[name].task_id} and {spec.task_id} get the same Job name {name!r}: their "
                "unique ids share the first 12 characters. Rename one task family."
            )
            continue
        seen[name] = spec
        problems += [f"Job {name} ({spec.task_id}): {p}" for p in check_manifest(manifest)]
        header = [
            f"# step {spec.task_id}",
            f"# platform {profile.name}: {placement.describe()}",
            *(f"# warning: {w}" for w in placement.warnings),
        ]
        body = dump_yaml(manifest, default_flow_style=False, width=100)
        documents.append((name, "\n".join(header) + "\n" + body))
    if problems:
        raise PlanError(problems, consequence=NOTHING_WRITTEN)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name, text in documents:
        path = out_dir / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
