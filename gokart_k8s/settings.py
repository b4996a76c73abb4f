"""Settings: one object, loaded once from ``luigi.cfg`` and the environment, passed explicitly.

Where settings come from, highest first:

1. the step's own declaration (``@gokart_k8s.job(resources=..., eviction=...)``);
2. environment variables ``GOKART_K8S_<FIELD>`` (e.g. ``GOKART_K8S_PLATFORM=gke-autopilot``),
   which override the config file so CI and pods can change one value without editing it;
3. the ``[gokart_k8s]`` section of the luigi config (``luigi.cfg`` in the working directory,
   or the files named by ``LUIGI_CONFIG_PATH``, exactly the files luigi and gokart read);
4. the built-in defaults below.

Resource classes are defined in the same file, one section per class::

    [gokart_k8s.resources.highmem-large]
    cpu = 8
    memory = 64Gi
    spot = false

and node pools (used by platform profiles that map classes onto pools, and by the local cluster)::

    [gokart_k8s.pools.spot-small]
    cpu = 4
    memory = 16Gi
    spot = true
    labels = cloud.google.com/gke-nodepool=spot-small
    min_nodes = 0
    max_nodes = 3

(``min_nodes``/``max_nodes`` bound the embedded cluster's autoscaler, default 0 and 3; ``nodes`` is
the fixed count of a cluster made without one.)

Nothing here is a module-level global: :func:`load_settings` returns a new :class:`Settings`
every time, and everything that needs settings takes them as an argument.
"""

from __future__ import annotations

import configparser
import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gokart_k8s.errors import ConfigurationError, GokartK8sError
from gokart_k8s.eviction import Eviction
from gokart_k8s.pools import NodePool, Taint
from gokart_k8s.resources import DEFAULT_CLASS, Catalog, ResourceClass

SECTION = "gokart_k8s"
RESOURCES_PREFIX = "gokart_k8s.resources."
POOLS_PREFIX = "gokart_k8s.pools."
ENV_PREFIX = "GOKART_K8S_"

PLATFORMS = ("plain", "gke-standard", "gke-autopilot", "eks-karpenter")


def _doc(text: str) -> dict[str, str]:
    return {"doc": text}


@dataclass(frozen=True)
class SecretRef:
    """An environment variable read from one key of a Kubernetes Secret (``secretKeyRef``).

    Only the reference travels -- into a Job, a CronJob, a rendered file -- never the value, which
    stays in the Secret (https://kubernetes.io/docs/concepts/configuration/secret/#using-secrets-as-environment-variables).
    """

    var: str
    secret: str
    key: str

    def __str__(self) -> str:
        return f"{self.var}={self.secret}/{self.key}"


class SecretRefs(tuple[SecretRef, ...]):
    """The value of setting ``secret_env``: a tuple of :class:`SecretRef`, shown in its own spelling."""

    __slots__ = ()

    def __str__(self) -> str:
        return format_secret_refs(self) or "none"


_ENV_NAME_RE = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# A Secret's name is a DNS subdomain; its keys are [-._a-zA-Z0-9]+
# (https://kubernetes.io/docs/concepts/configuration/secret/#restriction-names-data).
_SECRET_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")


def parse_secret_ref(text: str, where: str = "") -> SecretRef:
    """``VAR=SECRET/KEY`` as a :class:`SecretRef`; :class:`ConfigurationError` naming ``where`` if not."""
    where = f"{where}: " if where else ""
    var, sep, ref = text.strip().partition("=")
    secret, slash, key = ref.strip().partition("/")
    var, secret, key = var.strip(), secret.strip(), key.strip()
    if not sep or not slash:
        raise ConfigurationError(
            f"{where}{text.strip()!r} must be VAR=SECRET/KEY, e.g. GCS_CREDENTIAL=gcs-credential/key.json "
            "(the environment variable, the Secret's name, and the key in it)."
        )
    if not _ENV_NAME_RE.match(var):
        raise ConfigurationError(f"{where}{var!r} is not a valid environment variable name.")
    if len(secret) > 253 or not _SECRET_NAME_RE.match(secret):
        raise ConfigurationError(
            f"{where}{secret!r} is not a Secret name (lower-case letters, digits, '-' and '.', "
            "alphanumeric at both ends)."
        )
    if len(key) > 253 or not _SECRET_KEY_RE.match(key):
        raise ConfigurationError(f"{where}{key!r} is not a key of a Secret (letters, digits, '-', '_' and '.').")
    return SecretRef(var, secret, key)


def parse_secret_refs(text: str, where: str = "") -> SecretRefs:
    """Comma- or line-separated ``VAR=SECRET/KEY`` pairs (the form of setting ``secret_env``)."""
    refs = [parse_secret_ref(item, where) for item in text.replace("\n", ",").split(",") if item.strip()]
    return SecretRefs({ref.var: ref for ref in refs}.values())


def format_secret_refs(refs: tuple[SecretRef, ...]) -> str:
    """The setting's own spelling of ``refs``, which :func:`parse_secret_refs` reads back."""
    return ",".join(str(ref) for ref in refs)


@dataclass(frozen=True)
class Settings:
    """Everything gokart_k8s can be told, with its unit, default and reason.

    Every field is a key of the ``[gokart_k8s]`` section and an environment variable
    ``GOKART_K8S_<KEY IN UPPER CASE>``; ``catalog`` and ``pools`` come from their own sections.
    """

    platform: str = field(
        default="plain",
        metadata=_doc(
            "Platform profile: plain, gke-standard, gke-autopilot or eks-karpenter. Decides how "
            "resource classes and eviction tolerance become node selectors, tolerations and annotations. "
            "Switching platform is changing this one value."
        ),
    )
    image: str | None = field(
        default=None,
        metadata=_doc(
            "Container image every step's Job runs; it must hold gokart_k8s and the pipeline's dependencies "
            "(and its code when code_package = off). "
            "Required for the kubernetes backend; the local cluster records it but runs local code."
        ),
    )
    namespace: str = field(default="default", metadata=_doc("Kubernetes namespace for step Jobs."))
    region: str | None = field(
        default=None,
        metadata=_doc(
            "Cloud region whose prices cost estimates and generated pools use (e.g. asia-northeast1, "
            "us-central1); see docs/cost.md. None: gokart-k8s pools and plan --cost ask for it."
        ),
    )
    service_account: str | None = field(
        default=None,
        metadata=_doc(
            "Kubernetes service account of step pods (e.g. one bound to a GCP service account with "
            "Workload Identity for GCS access). None uses the namespace's default account."
        ),
    )
    secret_env: tuple[SecretRef, ...] = field(
        default=SecretRefs(),
        metadata=_doc(
            "Environment variables of step pods read from Secrets, as VAR=SECRET/KEY pairs separated by "
            "commas (e.g. GCS_CREDENTIAL=gcs-credential/key.json). Pods get a secretKeyRef, never the value."
        ),
    )
    kube_context: str | None = field(
        default=None, metadata=_doc("kubeconfig context to use; None uses the current context.")
    )
    default_resources: str = field(
        default=DEFAULT_CLASS,
        metadata=_doc("Resource class of steps without @gokart_k8s.job(resources=...)."),
    )
    default_eviction: Eviction = field(
        default=Eviction.TOLERATE,
        metadata=_doc(
            "Eviction tolerance of steps without @gokart_k8s.job(eviction=...). 'tolerate' is the "
            "cheap default because every finished step is cached."
        ),
    )
    max_concurrent_steps: int = field(
        default=16,
        metadata=_doc("Steps submitted at once (count). Bounds cluster load and driver memory."),
    )
    submit_concurrency: int = field(
        default=8,
        metadata=_doc(
            "Job creations (POSTs) the driver keeps in flight at once (count), so it never waits on "
            "one API call at a time; 1 submits one Job after another."
        ),
    )
    live_log_after_seconds: float = field(
        default=2.0,
        metadata=_doc(
            "A step's log is streamed live once its pod has run this long (seconds); a step that ends "
            "sooner shows its log from the pod's termination message, without a log request. 0 streams "
            "every running pod."
        ),
    )
    eviction_retries: int = field(
        default=10,
        metadata=_doc(
            "Evictions one step may survive (count) before the run gives up on it. Evictions never "
            "spend the step's own retry budget (backoff_limit)."
        ),
    )
    fallback_after_evictions: int = field(
        default=2,
        metadata=_doc(
            "After this many evictions (count) a tolerant step is resubmitted on on-demand capacity, "
            "so a Spot pool under pressure cannot starve it. 0 disables the fallback."
        ),
    )
    backoff_limit: int = field(
        default=1,
        metadata=_doc(
            "Retries (count) of a step that crashed for a reason that may not repeat (killed by a "
            "signal, node trouble). Errors raised by the step's own code fail at once."
        ),
    )
    max_runtime_seconds: int | None = field(
        default=None,
        metadata=_doc(
            "Default maximum run time of one step (seconds), used as the Job's activeDeadlineSeconds "
            "unless the step declares max_runtime=. None means no deadline."
        ),
    )
    termination_budget_seconds: float = field(
        default=10.0,
        metadata=_doc(
            "Time (seconds) a step gets after SIGTERM to save a final checkpoint before it exits as "
            "evicted. Keep it below the platform's grace period (GKE Spot: about 15 s)."
        ),
    )
    termination_grace_seconds: int = field(
        default=30,
        metadata=_doc("terminationGracePeriodSeconds of step pods (seconds); platforms may cap it."),
    )
    ttl_seconds_after_finished: int = field(
        default=86400,
        metadata=_doc(
            "Finished Jobs are deleted by Kubernetes after this long (seconds), so the namespace does "
            "not fill up while logs stay readable for a day."
        ),
    )
    spot_unavailable_fallback_seconds: float = field(
        default=600.0,
        metadata=_doc(
            "A tolerant step whose pod waited Unschedulable on Spot this long (seconds) is moved to "
            "on-demand capacity: the Spot pool is probably out of stock. Longer than a usual scale-up "
            "(GKE: 3-4 minutes), shorter than unschedulable_timeout_seconds. 0 disables it."
        ),
    )
    unschedulable_timeout_seconds: float = field(
        default=900.0,
        metadata=_doc(
            "A step whose pod stays Unschedulable this long (seconds) fails with advice. The default "
            "allows for a node pool scaling up (GKE: usually 3-4 minutes)."
        ),
    )
    request_timeout_seconds: float = field(
        default=30.0,
        metadata=_doc(
            "Client-side timeout of every Kubernetes API request (seconds), so a dead connection "
            "cannot hang the driver."
        ),
    )
    watch_timeout_seconds: int = field(
        default=300,
        metadata=_doc(
            "Server-side timeout of one watch request (seconds); the driver then re-watches from the "
            "last resourceVersion."
        ),
    )
    code_package: str = field(
        default="auto",
        metadata=_doc(
            "auto: the kubernetes and local-cluster backends ship the pipeline's code and config as a "
            "code package the pods download (the image needs only the dependencies); off: the image "
            "must hold the code. See docs/code-packages.md."
        ),
    )
    code_package_max_mb: int = field(
        default=50,
        metadata=_doc("Largest code package (MB, uncompressed); a larger one is refused naming its largest files."),
    )
    api_unreachable_timeout_seconds: float = field(
        default=180.0,
        metadata=_doc(
            "How long (seconds) the driver keeps retrying when the Kubernetes API stops answering mid-run "
            "before it stops with an error; the steps' Jobs may keep running, and a rerun adopts them."
        ),
    )
    warm_interpreter: bool = field(
        default=True,
        metadata=_doc(
            "Rehearsal (local-cluster backend): start each step's pod by forking a helper process that has "
            "imported gokart once, instead of a fresh interpreter (seconds saved per step). false: every pod a "
            "fresh process, for full fidelity. See docs/local-cluster.md."
        ),
    )
    catalog: Catalog = field(
        default_factory=Catalog,
        metadata=_doc("Named resource classes: the built-ins plus [gokart_k8s.resources.NAME] sections."),
    )
    pools: tuple[NodePool, ...] = field(
        default=(),
        metadata=_doc(
            "Node pools from [gokart_k8s.pools.NAME] sections. Empty means the platform profile's default pools."
        ),
    )

    def default_class(self) -> ResourceClass:
        return self.catalog.resolve(self.default_resources, what="default resource class")


_SCALAR_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in ("catalog", "pools")}


def field_docs() -> list[tuple[str, str, str]]:
    """(key, default, doc) of every setting, for the README and ``gokart-k8s config``."""
    out = []
    for f in dataclasses.fields(Settings):
        if f.default is not dataclasses.MISSING:
            default = "none" if f.default is None else str(f.default)
        else:
            default = "built-ins" if f.name == "catalog" else "()"
        out.append((f.name, default, f.metadata.get("doc", "")))
    return out


def _locate(files: list[str], section: str, key: str | None = None) -> str:
    """'file:line' of a section (or key in it), so config errors point at what to edit."""
    for path in reversed(files):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        in_section = False
        for number, line in enumerate(lines, 1):
            stripped = line.strip()
            if stripped.startswith("[") and stripped.endswith("]"):
                in_section = stripped[1:-1].strip() == section
                if in_section and key is None:
                    return f"{path}:{number}"
            elif in_section and key is not None:
                name = stripped.split("=", 1)[0].split(":", 1)[0].strip()
                if name == key:
                    return f"{path}:{number}"
    return f"[{section}]"


def _convert(name: str, raw: str, where: str) -> Any:
    f = _SCALAR_FIELDS[name]
    kind = str(f.type)
    text = raw.strip()
    try:
        if name == "secret_env":
            return parse_secret_refs(text)
        if name == "default_eviction":
            return Eviction.parse(text, what="default_eviction")
        if name == "code_package":
            if text not in ("auto", "off"):
                raise ValueError(f"must be auto or off, got {text!r}")
            return text
        if name == "platform":
            if text not in PLATFORMS:
                raise ValueError(f"must be one of {', '.join(PLATFORMS)}, got {text!r}")
            return text
        if kind == "bool":
            if text.lower() not in ("true", "yes", "1", "on", "false", "no", "0", "off"):
                raise ValueError(f"must be true or false, got {text!r}")
            return _parse_bool(text, where)
        if kind.startswith("int"):
            if kind.endswith("None") and text.lower() in ("", "none"):
                return None
            value = int(text)
            if value < 0:
                raise ValueError(f"must be zero or more, got {value}")
            return value
        if kind.startswith("float"):
            value_f = float(text)
            if value_f < 0:
                raise ValueError(f"must be zero or more, got {value_f}")
            return value_f
        if kind.startswith("str | None"):
            return text or None
        return text
    except ValueError as exc:
        raise ConfigurationError(f"{where}: setting {name!r}: {exc}") from None


def _parse_bool(raw: str, where: str) -> bool:
    text = raw.strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise ConfigurationError(f"{where}: expected true or false, got {raw!r}")


def _parse_mapping(raw: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ConfigurationError(f"{where}: expected key=value pairs separated by commas, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _parse_resource_class(name: str, items: Mapping[str, str], files: list[str]) -> ResourceClass:
    section = RESOURCES_PREFIX + name
    allowed = {"cpu", "memory", "gpu", "accelerator", "disk", "spot"}
    kwargs: dict[str, Any] = {"name": name}
    for key, raw in items.items():
        where = _locate(files, section, key)
        if key not in allowed:
            raise ConfigurationError(
                f"{where}: resource class {name!r} has unknown key {key!r}; valid keys: {', '.join(sorted(allowed))}"
            )
        if key == "gpu":
            try:
                kwargs["gpu"] = int(raw)
            except ValueError:
                raise ConfigurationError(
                    f"{where}: resource class {name!r}, field 'gpu': a whole number of GPUs, got {raw!r}"
                ) from None
        elif key == "spot":
            kwargs["spot"] = _parse_bool(raw, where)
        else:
            kwargs[key] = raw.strip() or None
    try:
        return ResourceClass(**kwargs)
    except GokartK8sError as exc:
        raise ConfigurationError(f"{_locate(files, section)}: {exc}") from None


def _parse_pool(name: str, items: Mapping[str, str], files: list[str]) -> NodePool:
    section = POOLS_PREFIX + name
    allowed = {
        "cpu",
        "memory",
        "gpu",
        "accelerator",
        "disk",
        "spot",
        "labels",
        "taints",
        "nodes",
        "min_nodes",
        "max_nodes",
    }
    kwargs: dict[str, Any] = {"name": name}
    for key, raw in items.items():
        where = _locate(files, section, key)
        if key not in allowed:
            raise ConfigurationError(
                f"{where}: node pool {name!r} has unknown key {key!r}; valid keys: {', '.join(sorted(allowed))}"
            )
        if key in ("gpu", "nodes", "min_nodes", "max_nodes"):
            try:
                kwargs[key] = int(raw)
            except ValueError:
                raise ConfigurationError(f"{where}: node pool {name!r}, {key!r} must be a whole number") from None
            if kwargs[key] < 0:
                raise ConfigurationError(f"{where}: node pool {name!r}, {key!r} must be zero or more, got {raw!r}")
        elif key == "spot":
            kwargs["spot"] = _parse_bool(raw, where)
        elif key == "labels":
            kwargs["labels"] = _parse_mapping(raw, where)
        elif key == "taints":
            taints = []
            for k, v in _parse_mapping(raw, where).items():
                value, _, effect = v.partition(":")
                taints.append(Taint(key=k, value=value, effect=effect or "NoSchedule"))
            kwargs["taints"] = tuple(taints)
        elif key == "disk":
            kwargs["ephemeral_storage"] = raw.strip()
        else:
            kwargs[key] = raw.strip()
    for required in ("cpu", "memory"):
        if required not in kwargs:
            raise ConfigurationError(f"{_locate(files, section)}: node pool {name!r} needs {required}=")
    try:
        # Validate quantities with the same rules as resource classes.
        ResourceClass(cpu=kwargs["cpu"], memory=kwargs["memory"], disk=kwargs.get("ephemeral_storage"))
    except GokartK8sError as exc:
        raise ConfigurationError(f"{_locate(files, section)}: node pool {name!r}: {exc}") from None
    if kwargs.get("min_nodes", 0) > kwargs.get("max_nodes", max(3, kwargs.get("min_nodes", 0))):
        raise ConfigurationError(
            f"{_locate(files, section)}: node pool {name!r} has min_nodes={kwargs['min_nodes']} above "
            f"max_nodes={kwargs['max_nodes']}; set min_nodes <= max_nodes"
        )
    kwargs.setdefault("max_nodes", max(3, kwargs.get("min_nodes", 0)))
    return NodePool(**kwargs)


#: luigi's own search path for its cfg files (``LuigiConfigParser._config_paths``, luigi 3.x).
#: Known here without importing luigi, because importing luigi already parses these files, and a
#: file that does not parse would then fail with a traceback instead of this module's message.
LUIGI_CONFIG_PATHS = ("/etc/luigi/client.cfg", "/etc/luigi/luigi.cfg", "client.cfg", "luigi.cfg")


def config_files() -> list[str]:
    """The luigi config files that exist, in the order luigi reads them (later wins)."""
    import sys

    parser = sys.modules.get("luigi.configuration.cfg_parser")
    paths = list(parser.LuigiConfigParser._config_paths) if parser else list(LUIGI_CONFIG_PATHS)
    env_path = os.environ.get("LUIGI_CONFIG_PATH")
    if env_path and env_path not in paths:
        paths.append(env_path)
    return [p for p in paths if os.path.exists(p)]


def check_config_files(files: list[str] | None = None) -> None:
    """Parse each config file on its own, so a syntax error names its file and line."""
    for path in config_files() if files is None else files:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except configparser.MissingSectionHeaderError as exc:
            raise ConfigurationError(
                f"{path}:{exc.lineno}: the config file does not parse: {exc.line.strip()!r} comes before any "
                "[section]. Put it under the section it belongs to, e.g. [gokart_k8s]."
            ) from None
        except configparser.ParsingError as exc:
            errors = getattr(exc, "errors", [])
            line, text = errors[0] if errors else (None, "")
            where = f"{path}:{line}" if line else path
            # configparser keeps the offending line as its repr(): show it as written.
            shown = text.strip().strip("'\"").replace("\\n", "")
            raise ConfigurationError(
                f"{where}: the config file does not parse: {shown!r} is neither a [section] nor a "
                "'key = value' line. Fix or remove that line."
            ) from None
        except configparser.Error as exc:
            line = getattr(exc, "lineno", None)
            where = f"{path}:{line}" if line else path
            message = getattr(exc, "message", str(exc)).strip().splitlines()[0]
            raise ConfigurationError(f"{where}: the config file does not parse: {message}") from None


def load_settings(
    config: configparser.RawConfigParser | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    files: list[str] | None = None,
) -> Settings:
    """Read settings from the luigi config and the environment (see the module docstring).

    ``config`` defaults to luigi's own parser (``luigi.configuration.get_config()``), so the
    settings come from exactly the files luigi and gokart read. ``environ`` defaults to
    ``os.environ``.
    """
    if config is None:
        import luigi.configuration

        check_config_files(files)
        config = luigi.configuration.get_config()
    if files is None:
        files = config_files()
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if config.has_section(SECTION):
        for key, raw in config.items(SECTION, raw=True):
            if key not in _SCALAR_FIELDS:
                valid = ", ".join(sorted(_SCALAR_FIELDS))
                raise ConfigurationError(
                    f"{_locate(files, SECTION, key)}: unknown setting {key!r} in [{SECTION}]; valid settings: {valid}"
                )
            values[key] = _convert(key, raw, _locate(files, SECTION, key))
    for key in _SCALAR_FIELDS:
        env_name = ENV_PREFIX + key.upper()
        if env_name in env:
            values[key] = _convert(key, env[env_name], f"environment variable {env_name}")
    pools = tuple(
        _parse_pool(section[len(POOLS_PREFIX) :], dict(config.items(section, raw=True)), files)
        for section in config.sections()
        if section.startswith(POOLS_PREFIX)
    )
    settings = Settings(**values, catalog=_catalog(config, files), pools=pools)
    if settings.default_resources not in settings.catalog:
        settings.default_class()  # raises with the list of known classes
    return settings


def _catalog(config: configparser.RawConfigParser, files: list[str]) -> Catalog:
    """The built-in classes plus every [gokart_k8s.resources.NAME] section of ``config``."""
    return Catalog(
        {
            section[len(RESOURCES_PREFIX) :]: _parse_resource_class(
                section[len(RESOURCES_PREFIX) :], dict(config.items(section, raw=True)), files
            )
            for section in config.sections()
            if section.startswith(RESOURCES_PREFIX)
        }
    )


def load_catalog() -> Catalog:
    """Only the catalog, for checks at decoration time (import time of the user's module)."""
    import luigi.configuration

    return _catalog(luigi.configuration.get_config(), config_files())


def setting_sources(
    config: configparser.RawConfigParser | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    files: list[str] | None = None,
) -> dict[str, str]:
    """Where each setting's value comes from, by the precedence of :func:`load_settings`.

    ``environment variable GOKART_K8S_X``, ``file:line`` of the key in the config, or ``default``;
    resource classes and pools (``resources.NAME``, ``pools.NAME``) by their section's ``file:line``
    or ``built-in``. Shown by ``gokart-k8s config``.
    """
    if config is None:
        import luigi.configuration

        config = luigi.configuration.get_config()
    if files is None:
        files = config_files()
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for key in _SCALAR_FIELDS:
        env_name = ENV_PREFIX + key.upper()
        if env_name in env:
            out[key] = f"environment variable {env_name}"
        elif config.has_option(SECTION, key):
            out[key] = _locate(files, SECTION, key)
        else:
            out[key] = "default"
    for name in Catalog({}):
        out[f"resources.{name}"] = "built-in"
    for section in config.sections():
        for prefix, kind in ((RESOURCES_PREFIX, "resources"), (POOLS_PREFIX, "pools")):
            if section.startswith(prefix):
                out[f"{kind}.{section[len(prefix) :]}"] = _locate(files, section)
    return out


def workspace_source(config: configparser.RawConfigParser | None = None, *, files: list[str] | None = None) -> str:
    """Where ``[TaskOnKart] workspace_directory`` (the cache) comes from: ``file:line`` or ``default``."""
    if config is None:
        import luigi.configuration

        config = luigi.configuration.get_config()
    if files is None:
        files = config_files()
    if config.has_option("TaskOnKart", "workspace_directory"):
        return _locate(files, "TaskOnKart", "workspace_directory")
    return "default"
