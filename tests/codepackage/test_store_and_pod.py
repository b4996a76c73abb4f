"""Storing packages create-only (local disk and gs://) and activating one in a pod's process."""

from __future__ import annotations

import io
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gokart_k8s.codepackage import CodePackage, pinned, prepare
from gokart_k8s.codepackage.contents import Contents, PackedFile, archive, digest
from gokart_k8s.codepackage.pod import CACHE_ENV, SHA256_ENV, URL_ENV, activate_from_environment, fetch
from gokart_k8s.codepackage.store import download, upload
from gokart_k8s.errors import CodePackageError

pytest_plugins = ["gokart_k8s.testing.gcs"]


def small_archive(text: str = "X = 1\n") -> bytes:
    root = (PackedFile("zz_cpkg_probe/__init__.py", b""), PackedFile("zz_cpkg_probe/mod.py", text.encode()))
    config = (PackedFile("luigi.cfg", b"[zz_cpkg_probe]\nvalue = from-package\n"),)
    return archive(Contents(roots=(root,), config_files=config, environment={"GOKART_K8S_NAMESPACE": "packed"}))


@pytest.fixture
def restore_sys_path() -> Iterator[None]:
    """sys.path and luigi's config search path as they were (activation changes both, as in a pod)."""
    from luigi.configuration import LuigiConfigParser

    saved, saved_config = list(sys.path), list(LuigiConfigParser._config_paths)
    yield
    sys.path[:] = saved
    LuigiConfigParser._config_paths[:] = saved_config
    LuigiConfigParser.instance().remove_section("zz_cpkg_probe")
    LuigiConfigParser.reload()
    sys.modules.pop("zz_cpkg_probe", None)
    sys.modules.pop("zz_cpkg_probe.mod", None)


def test_a_local_upload_is_create_only_and_named_by_the_hash(tmp_path: Path) -> None:
    data = small_archive()
    url, created = upload(str(tmp_path), data)
    assert url == f"{tmp_path}/gokart_k8s/code/{digest(data)}.tar.gz" and created
    assert upload(str(tmp_path), data) == (url, False)
    assert download(url) == data
    assert [p.name for p in (tmp_path / "gokart_k8s" / "code").iterdir()] == [f"{digest(data)}.tar.gz"]


def test_a_gs_upload_is_create_only(gcs_bucket: str) -> None:
    from google.cloud import storage

    data = small_archive()
    workspace = f"gs://{gcs_bucket}/ws"
    url, created = upload(workspace, data)
    assert created and url == f"{workspace}/gokart_k8s/code/{digest(data)}.tar.gz"
    blob = storage.Client().bucket(gcs_bucket).get_blob(f"ws/gokart_k8s/code/{digest(data)}.tar.gz")
    assert blob is not None
    assert upload(workspace, data) == (url, False)
    again = storage.Client().bucket(gcs_bucket).get_blob(blob.name)
    assert again is not None and again.generation == blob.generation  # never replaced
    assert download(url) == data


def test_the_pod_activates_the_package_first_on_sys_path_with_its_config_and_settings(
    tmp_path: Path, restore_sys_path: None
) -> None:
    import luigi.configuration

    data = small_archive()
    url, _ = upload(str(tmp_path / "ws"), data)
    environ = {
        URL_ENV: url,
        SHA256_ENV: digest(data),
        CACHE_ENV: str(tmp_path / "cache"),
        "GOKART_K8S_NAMESPACE": "pod",
    }
    activated = activate_from_environment(environ)
    assert activated is not None and activated.downloaded
    assert sys.path[0] == str(tmp_path / "cache" / digest(data) / "roots" / "00")
    import zz_cpkg_probe.mod

    assert zz_cpkg_probe.mod.X == 1
    assert luigi.configuration.get_config().get("zz_cpkg_probe", "value") == "from-package"
    assert environ["LUIGI_CONFIG_PATH"].endswith("config/00-luigi.cfg")
    assert environ["GOKART_K8S_NAMESPACE"] == "pod"  # the pod's own environment wins over the packed one
    second = activate_from_environment(dict(environ, GOKART_K8S_NAMESPACE=""))
    assert second is not None and not second.downloaded  # extracted once per node and hash


def test_packed_settings_fill_in_what_the_pod_does_not_set(tmp_path: Path, restore_sys_path: None) -> None:
    data = small_archive()
    url, _ = upload(str(tmp_path / "ws"), data)
    environ = {URL_ENV: url, SHA256_ENV: digest(data), CACHE_ENV: str(tmp_path / "cache")}
    activate_from_environment(environ)
    assert environ["GOKART_K8S_NAMESPACE"] == "packed"


def test_an_archive_with_a_path_out_of_its_directory_is_refused(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    data = raw.getvalue()
    url, _ = upload(str(tmp_path / "ws"), data)
    with pytest.raises(CodePackageError, match="cannot be extracted"):
        fetch(url, digest(data), tmp_path / "cache")
    assert not (tmp_path / "escaped.py").exists()


def test_a_missing_package_says_to_run_again(tmp_path: Path) -> None:
    with pytest.raises(CodePackageError, match=r"does not exist.*Run \(or schedule\) the pipeline again"):
        fetch(str(tmp_path / "nope.tar.gz"), "0" * 64, tmp_path / "cache")


def test_a_scheduled_driver_reuses_the_package_its_cronjob_pins() -> None:
    package = pinned({URL_ENV: "gs://b/ws/gokart_k8s/code/ab.tar.gz", SHA256_ENV: "ab" * 32})
    assert isinstance(package, CodePackage) and package.env() == {
        URL_ENV: "gs://b/ws/gokart_k8s/code/ab.tar.gz",
        SHA256_ENV: "ab" * 32,
    }
    assert pinned({}) is None


def test_prepare_measures_and_reports(tmp_path: Path) -> None:
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "__init__.py").write_text("")
    package = prepare([str(tmp_path / "src")], str(tmp_path / "ws"), limit_mb=1)
    assert package.created and package.files >= 1 and Path(package.url).exists()
    assert "uploaded" in package.describe()
    assert not prepare([str(tmp_path / "src")], str(tmp_path / "ws"), limit_mb=1).created
