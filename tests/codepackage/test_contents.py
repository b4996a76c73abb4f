"""What a code package holds, its deterministic bytes, and the size limit."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from gokart_k8s.codepackage import build
from gokart_k8s.codepackage.contents import Contents, IgnoreRules, PackedFile, archive, digest, select
from gokart_k8s.codepackage.sources import gather, list_files, package_roots
from gokart_k8s.errors import CodePackageError


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())


PROJECT = {
    "pkg/__init__.py": "",
    "pkg/steps.py": "X = 1\n",
    "pkg/data/words.txt": "hello\n",
    "pkg/data/__init__.py": "",
    "pkg/__pycache__/steps.cpython-311.pyc": b"\0",
    "notes.txt": "not package data: outside any package\n",
    "script.py": "print(1)\n",
    "big/blob.bin": b"\0" * 10,
    "scratch/tmp.py": "# ignored by .gokart-k8s-ignore\n",
    ".gokart-k8s-ignore": "scratch/\n",
}


def names_in(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return tar.getnames()


def test_a_package_holds_python_files_and_package_data_minus_ignored_files(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    contents = gather([str(tmp_path)], config_files=[], environ={})
    assert [f.name for f in contents.roots[0]] == [
        "pkg/__init__.py",
        "pkg/data/__init__.py",
        "pkg/data/words.txt",
        "pkg/steps.py",
        "script.py",
    ]


def test_gitignore_is_honoured_through_git_in_a_repository(tmp_path: Path) -> None:
    write(tmp_path, {**PROJECT, ".gitignore": "pkg/secret_*.py\n", "pkg/secret_key.py": "KEY = 1\n"})
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    listed = list_files(tmp_path)
    assert "pkg/steps.py" in listed
    assert "pkg/secret_key.py" not in listed


def test_gitignore_is_honoured_without_git_too(tmp_path: Path) -> None:
    write(tmp_path, {**PROJECT, ".gitignore": "pkg/secret_*.py\n", "pkg/secret_key.py": "KEY = 1\n"})
    listed = list_files(tmp_path)  # tmp_path is not a git work tree
    assert "pkg/steps.py" in listed and "pkg/secret_key.py" not in listed


def test_ignore_rules_follow_gitignore_spelling() -> None:
    rules = IgnoreRules.parse("# comment\n*.csv\n!keep.csv\n/build/\ndocs/*.md\n")
    assert rules.ignores("a/b/data.csv")
    assert not rules.ignores("a/keep.csv")
    assert rules.ignores("build/x.py") and not rules.ignores("src/build.py")
    assert rules.ignores("docs/a.md") and not rules.ignores("docs/sub/a.py")


def test_package_data_needs_a_package() -> None:
    assert select(["pkg/__init__.py", "pkg/a.json", "loose/a.json", "top.json"], IgnoreRules()) == [
        "pkg/__init__.py",
        "pkg/a.json",
    ]


def test_the_archive_is_deterministic_and_named_by_its_hash(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    first = archive(gather([str(tmp_path)], config_files=[], environ={}))
    (tmp_path / "pkg/steps.py").touch()  # a new mtime, same bytes
    second = archive(gather([str(tmp_path)], config_files=[], environ={}))
    assert first == second and digest(first) == digest(second)
    (tmp_path / "pkg/steps.py").write_text("X = 2\n")
    assert digest(archive(gather([str(tmp_path)], config_files=[], environ={}))) != digest(first)
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in tar.getmembers())
        assert tar.getnames() == sorted(tar.getnames())


def test_the_config_files_and_settings_in_force_travel_in_the_package(tmp_path: Path) -> None:
    write(tmp_path, {"pkg/__init__.py": "", "conf/luigi.cfg": "[gokart_k8s]\nplatform = gke-standard\n"})
    environ = {"GOKART_K8S_NAMESPACE": "team", "GOKART_K8S_RUN_ID": "not-a-setting", "HOME": "/x"}
    contents = gather([str(tmp_path)], config_files=[str(tmp_path / "conf/luigi.cfg")], environ=environ)
    data = archive(contents)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert tar.extractfile("config/00-luigi.cfg").read() == b"[gokart_k8s]\nplatform = gke-standard\n"  # type: ignore[union-attr]
    assert manifest["config_files"] == ["config/00-luigi.cfg"]
    assert manifest["environment"] == {"GOKART_K8S_NAMESPACE": "team"}
    assert manifest["roots"] == ["roots/00"]


def test_a_package_over_the_limit_is_refused_naming_its_largest_files() -> None:
    files = tuple(PackedFile(f"pkg/f{i}.py", b"x" * (i * 100_000), f"/src/pkg/f{i}.py") for i in range(1, 13))
    with pytest.raises(CodePackageError) as caught:
        build(Contents(roots=(files,)), limit_bytes=1_000_000)
    message = str(caught.value)
    assert "more than the limit of 1.0 MB" in message
    assert "/src/pkg/f12.py" in message and "/src/pkg/f11.py" in message
    assert "/src/pkg/f2.py" not in message  # only the ten largest are named
    assert ".gokart-k8s-ignore" in message and "code_package_max_mb" in message
    assert message.index("f12.py") < message.index("f11.py")


def test_site_packages_and_virtual_environments_are_not_packed(tmp_path: Path) -> None:
    import gokart

    venv = tmp_path / "venv"
    write(venv, {"pyvenv.cfg": "home = /usr\n"})
    installed = str(Path(gokart.__file__).resolve().parent.parent)
    assert package_roots([str(tmp_path), str(venv), installed]) == [tmp_path.resolve()]
