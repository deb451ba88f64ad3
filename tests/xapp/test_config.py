"""The descriptor, its schema, overrides, and start-up errors (one line naming the control)."""

import json
from pathlib import Path

import jsonschema
import pytest
from wmfm.xapp.controls import load
from wmfm.xapp.schema import controls_schema

from wmfm.cli import main
from wmfm.config import ConfigError

DESC = Path(__file__).resolve().parents[2] / "deploy" / "descriptor"


def test_schema_is_current_and_the_descriptor_validates():
    assert json.loads((DESC / "schema.json").read_text()) == controls_schema(), "run `make descriptor`"
    doc = json.loads((DESC / "config-file.json").read_text())
    jsonschema.validate(doc["controls"], controls_schema())
    cfg = load(DESC / "config-file.json", env={})
    assert cfg.indications.endpoint == "tcp://0.0.0.0:5560" and cfg.redis.url == "auto"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc["controls"], "sync": {"max_skew_ms": "x"}}, controls_schema())


def test_overrides_from_env_and_command_line():
    cfg = load(DESC / "config-file.json", ["sync.max_skew_ms=30", "cameras.unit1_cam1.cells=[\"00101:7\"]"],
               env={"WMFM__BATCH__MAX_BATCH": "8", "WMFM__REDIS__URL": "redis://db:6379/2", "OTHER": "x"})
    assert cfg.sync.max_skew_ms == 30.0 and cfg.batch.max_batch == 8 and cfg.redis.url == "redis://db:6379/2"
    assert cfg.camera_for("00101:7") == "unit1_cam1" and cfg.camera_for("00101:8") is None


@pytest.mark.parametrize("override,message", [
    ("sync.max_skw=3", "controls.sync.max_skw: unknown key"),
    ("batch.max_batch=\"many\"", "controls.batch.max_batch: expected int, got str"),
    ("backend.name=openvino", "controls.backend.name: expected one of"),
    ("redis.url=http://x", "controls.redis.url: expected 'auto', 'embedded' or a redis://"),
    ("bogus=1", "controls.bogus: unknown key"),
])
def test_bad_controls_stop_start_up_with_one_line(override, message, capsys):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load(None, [override], env={})
    assert main(["xapp", "--set", override]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_curve_needs_bind_mode_and_keys():
    with pytest.raises(ConfigError, match="controls.curve.server_secret_key_file: required"):
        load(None, ["curve.enabled=true"], env={})
    with pytest.raises(ConfigError, match="controls.frames.mode: must be bind"):
        load(None, ["curve.enabled=true", "curve.server_secret_key_file=k", "curve.allowed_clients_dir=d",
                    "frames.mode=connect"], env={})
