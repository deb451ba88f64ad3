"""The laptop stack (deploy/compose/compose.yaml and its scaling overlay compose.scale.yaml):
valid against the Compose Specification schema, and consistent with the repository (build
contexts, mounted paths), the descriptor (ports), the app's config loader (environment) and
the real `wmfm` command line (the twin's and the replay's arguments). No Docker daemon here:
nothing is started."""

import json
import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from wmfm.xapp import controls as config

from wmfm.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "deploy" / "compose"
DESCRIPTOR = ROOT / "deploy" / "descriptor" / "config-file.json"
DESC = json.loads(DESCRIPTOR.read_text())
# the xApp container's ports (the descriptor's others are the E2 bridge's, which runs in a RIC only)
PORTS = {p["name"]: p["port"] for p in DESC["messaging"]["ports"] if p["container"] == "wmfm-xapp"}
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)


def load(name):
    return yaml.safe_load((HERE / name).read_text())


def merge(base, over):
    """`docker compose -f base -f over`, for what the overlay uses: mappings merged, `command`
    replaced, other sequences appended."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        elif isinstance(v, list) and isinstance(out.get(k), list) and k not in ("command", "entrypoint"):
            out[k] = out[k] + [x for x in v if x not in out[k]]
        else:
            out[k] = v
    return out


def interpolate(s: str) -> str:
    """${VAR:-default} with VAR unset (the documented defaults)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", s)


MODELS = {"compose.yaml": load("compose.yaml"),
          "compose.yaml + compose.scale.yaml": merge(load("compose.yaml"), load("compose.scale.yaml"))}


def xapps(model):
    return {n: s for n, s in model["services"].items() if s.get("image", "").startswith("wmfm-xapp:")}


@pytest.mark.parametrize("name", ["compose.yaml", "compose.scale.yaml"])
def test_valid_against_the_compose_specification(name):
    ref = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(ref.read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(load(name))


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS)
def test_builds_and_mounts_point_into_the_repository(model):
    for name, svc in model["services"].items():
        if "build" in svc:
            ctx = (HERE / svc["build"]["context"]).resolve()
            assert ctx == ROOT and (ctx / svc["build"]["dockerfile"]).is_file(), name
        for vol in svc.get("volumes", []):
            if isinstance(vol, str):
                assert vol.split(":")[0] in model["volumes"], (name, vol)   # named volumes only, short syntax
                continue
            if vol["type"] == "volume":
                assert vol["source"] in model["volumes"], (name, vol)
                continue
            source = interpolate(vol["source"])
            if vol.get("read_only"):
                if vol["target"] == "/opt/wmfm/artifact":            # `make demo` writes it (not in git)
                    demo = re.search(r"^DEMO\s*:=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
                    assert (HERE / source).resolve() == ROOT / demo / "artifact", (name, source)
                else:
                    assert (HERE / source).exists(), (name, source)
            else:                                                   # an output folder, ignored by git
                probe = (HERE / source / "replay.json").relative_to(ROOT)
                assert subprocess.run(["git", "check-ignore", "-q", str(probe)], cwd=ROOT).returncode == 0, source


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS)
def test_the_xapp_environment_loads_through_the_apps_loader(model):
    apps = xapps(model)
    assert len(apps) == (2 if model is MODELS["compose.yaml + compose.scale.yaml"] else 1)
    for name, svc in apps.items():
        env = {k: str(v) for k, v in svc["environment"].items()}
        cfg = config.load(DESCRIPTOR, env=env)                      # unknown control / wrong type: raises
        assert urlsplit(cfg.redis.url).hostname in model["services"]  # the redis service
        assert cfg.redis.url == "redis://redis:6379/0" and cfg.sync.deadline_ms == 20.0
        assert cfg.scaling.round_robin is (len(apps) > 1), name
        assert svc["image"] == f"wmfm-xapp:{VERSION}" and svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert svc["read_only"] and "/tmp" in svc["tmpfs"] and svc["cap_drop"] == ["ALL"]
        assert {int(p.split(":")[1]) for p in svc["ports"]} <= set(PORTS.values())
    hosts = [p.split(":")[0] for s in model["services"].values() for p in s.get("ports", [])]
    assert len(hosts) == len(set(hosts)), "a host port published twice"
    ports = xapps(model)["xapp"]["ports"]
    assert sorted(int(p.split(":")[1]) for p in ports) == sorted(PORTS.values())


@pytest.mark.parametrize("model", MODELS.values(), ids=MODELS)
def test_the_twin_and_replay_commands_parse_with_the_real_cli(model):
    parser = build_parser()
    twin, replay = model["services"]["twin"], model["services"]["replay"]
    t = parser.parse_args(twin["command"])                            # SystemExit on a bad flag
    r = parser.parse_args(replay["command"])
    assert (t.command, r.command) == ("twin", "replay")
    twin_vol = next(v for v in twin["volumes"] if v.startswith("scenario:")).split(":")[1]
    assert Path(t.out) == Path(twin_vol) and r.scenario == Path(twin_vol) / t.name
    assert any(v["type"] == "volume" and v["source"] == "scenario" and v["target"] == twin_vol
               for v in replay["volumes"])
    apps = set(xapps(model))
    for name, svc in xapps(model).items():                                # the replay speaks each xApp's encoding
        env = {k: str(v) for k, v in svc["environment"].items()}
        assert r.encoding == config.load(DESCRIPTOR, env=env).indications.encoding == "e2ap", name
    for flag, port, scheme in (("indications", PORTS["indications"], "tcp"), ("frames", PORTS["frames"], "tcp"),
                               ("metrics", PORTS["http"], "http")):
        urls = [urlsplit(u) for u in getattr(r, flag).split(",")]
        assert {u.hostname for u in urls} == apps, flag                  # every instance is reached
        assert all(u.scheme == scheme and u.port == port for u in urls), flag
    assert all(u.endswith("/ric/v1/metrics") for u in r.metrics.split(","))
    assert urlsplit(r.redis).hostname == "redis" and r.split == "all"
    assert replay["depends_on"]["twin"]["condition"] == "service_completed_successfully"
    assert {n for n, d in replay["depends_on"].items() if d["condition"] == "service_healthy"} == apps
    assert "healthcheck" in model["services"]["redis"]
    assert "HEALTHCHECK" in (ROOT / "deploy" / "docker" / "Dockerfile").read_text()    # the xApp's is the image's


def test_replay_dockerfile_lints_clean_and_matches_the_package():
    path = HERE / "Dockerfile.replay"
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    out = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    text = path.read_text()
    assert f'"wmfm-xapp[sim]=={VERSION}"' in text and re.search(r"^USER 10001$", text, re.M)
    assert "torch" not in re.sub(r"#.*", "", text)
    for src in re.findall(r"^COPY (?!--)(\S+)", text, re.M):
        assert (ROOT / src.rstrip("/")).exists(), src
    images = {s["image"] for s in MODELS["compose.yaml"]["services"].values() if "image" in s}
    assert f"wmfm-replay:{VERSION}" in images
