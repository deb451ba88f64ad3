"""The `wmfm` command line: every mistake gives one line naming the sub-command and exit status 2,
Ctrl-C gives one line and 130, and every flag says what it does and its default."""

import argparse

import pytest

from wmfm.cli import build_parser, main


def one_line(capsys, prog: str, want: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"{prog}: error: ") and want in err[0], err


@pytest.mark.parametrize("argv, prog, want", [
    (["twin", "generate", "--out", "x", "--scenes", "-5"], "wmfm twin generate",
     "argument --scenes: must be >= 1, got -5"),
    (["twin", "generate", "--out", "x", "--seed", "-1"], "wmfm twin generate", "argument --seed: must be in [0, "),
    (["twin", "generate", "--out", "x", "--scene", "10"], "wmfm twin generate", "unrecognized arguments: --scene 10"),
    (["twin", "generat"], "wmfm twin", "invalid choice: 'generat'"),
    (["dataset", "build", "--scenario", "s", "--out", "c", "--image-size", "0", "64"], "wmfm dataset build",
     "argument --image-size: must be in [8, 4096], got 0"),
    (["experiment", "--preset", "big", "--out", "x"], "wmfm experiment", "argument --preset: invalid choice: 'big'"),
    (["experiment", "--out", "x"], "wmfm experiment", "the following arguments are required: --preset"),
    (["train", "heads", "--cache", "c", "--out", "o", "--encoders", "e"], "wmfm train heads",
     "required: --preset"),
    (["train", "e2e", "--cache", "c", "--out", "o", "--preset", "tiny", "--fraction", "0"], "wmfm train e2e",
     "argument --fraction: must be in (0, 1], got 0"),
    (["export", "--random-init", "--preset", "cpu", "--out", "a", "--max-batch", "0"], "wmfm export",
     "argument --max-batch: must be in [1, 4096], got 0"),
    (["export", "--out", "a"], "wmfm export", "one of the arguments --checkpoint --random-init is required"),
    (["replay", "--scenario", "s", "--jitter-ms", "nan"], "wmfm replay", "argument --jitter-ms: must be a finite"),
    (["bench", "xapp", "--artifact", "a", "--duration", "0"], "wmfm bench xapp",
     "argument --duration: must be in (0, 600], got 0"),
    (["bench", "xapp", "--artifact", "a", "--camera-size", "1280x"], "wmfm bench xapp",
     "argument --camera-size: expected WIDTHxHEIGHT (e.g. 1280x720), got '1280x'"),
    (["bench", "xapp", "--artifact", "a", "--indications", "tcp://h:1", "--frames", "tcp://h:2", "--redis",
      "redis://h", "--also", "sync.deadline_ms=0"], "wmfm bench xapp", "--also: variants run their own xApp"),
    (["bench", "decode", "--artifact", "a", "--sizes", "8x8"], "wmfm bench decode",
     "argument --sizes: width and height must be in 16..8192, got '8x8'"),
    (["demo", "--speed", "0"], "wmfm demo", "argument --speed: must be > 0, got 0"),
    (["scale", "--duration", "-1"], "wmfm scale", "argument --duration: must be in (0, 3600], got -1"),
    (["xapp", "--set", "http.port=99999", "--artifact", "nowhere"], "wmfm xapp",
     "controls.http.port: must be in [0, 65535], got 99999"),
    (["xapp", "--set", "indications.endpoint=tcp://127.0.0.1:99999"], "wmfm xapp",
     "controls.indications.endpoint: port must be in 1-65535"),
    (["xapp", "--set", "sync.deadline_ms=Infinity"], "wmfm xapp",
     "controls.sync.deadline_ms: expected a finite number, got inf"),
    (["xapp", "--set", "drain_s=1e9"], "wmfm xapp", "controls.drain_s: must be in [0, 3600]"),
    (["xapp", "--set", "drain_s=Infinity"], "wmfm xapp", "controls.drain_s: expected a finite number, got inf"),
    (["xapp", "--set", "sync.max_skew_ms=-Infinity"], "wmfm xapp",
     "controls.sync.max_skew_ms: expected a finite number, got -inf"),
    (["xapp", "--set", "http.port=-1"], "wmfm xapp", "controls.http.port: must be in [0, 65535], got -1"),
    (["xapp", "--set", "frames.queue_bytes=1000"], "wmfm xapp",
     "controls.frames.queue_bytes: must hold one message of up to twice max_message_bytes (8388608)"),
    (["xapp", "--set", "http.timeout_s=0"], "wmfm xapp", "controls.http.timeout_s: must be in [0.1, 600], got 0"),
    (["xapp", "--set", 'cameras={"c": {"max_pixels": 10}}'], "wmfm xapp",
     "controls.cameras.c.max_pixels: must be in [256, 67108864], got 10"),
    # an address that cannot be used stops start-up before the model loads (the artifact is not even read)
    (["xapp", "--artifact", "nowhere", "--set", "http.port=0", "--set", "http.host=nosuch.invalid"], "wmfm xapp",
     "controls.http: cannot listen on nosuch.invalid:0"),
    (["xapp", "--artifact", "nowhere", "--set", "http.port=0", "--set",
      "frames.endpoint=tcp://nosuch.invalid:5561"], "wmfm xapp",
     "controls.frames.endpoint: cannot bind tcp://nosuch.invalid:5561: 'nosuch.invalid' does not resolve"),
    (["nonsense"], "wmfm", "invalid choice: 'nonsense'"),
])
def test_every_mistake_is_one_line_naming_the_command(argv, prog, want, capsys):
    assert main(argv) == 2
    one_line(capsys, prog, want)


def test_an_existing_output_needs_overwrite_for_every_command_that_writes_one(tmp_path, capsys):
    out = tmp_path / "exp"
    out.mkdir()
    (out / "report.json").write_text("{}")
    assert main(["experiment", "--preset", "tiny", "--out", str(out)]) == 2
    one_line(capsys, "wmfm experiment", "already exists (pass --overwrite")
    assert (out / "report.json").read_text() == "{}"
    (tmp_path / "art").mkdir()
    assert main(["export", "--random-init", "--preset", "tiny", "--out", str(tmp_path / "art")]) == 2
    one_line(capsys, "wmfm export", "already exists")


def test_experiment_overwrite_keeps_only_the_data(tmp_path):
    from wmfm.pipeline import check_out
    out = tmp_path / "exp"
    (out / "data" / "cache").mkdir(parents=True)
    (out / "report.md").write_text("old")
    (out / "plots").mkdir()
    check_out(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["data"]
    check_out(tmp_path / "new", overwrite=False)             # a new folder needs nothing


def test_ctrl_c_stops_twin_generate_with_one_line_and_leaves_nothing(tmp_path, capsys, ctrl_c):
    with ctrl_c(1.5):
        rc = main(["twin", "generate", "--out", str(tmp_path), "--name", "t", "--scenes", "100000", "--quiet"])
    assert rc == 130
    assert capsys.readouterr().err.strip().splitlines() == ["wmfm twin generate: interrupted"]
    assert not (tmp_path / "t").exists()


def test_every_flag_has_help_and_no_abbreviation_is_accepted():
    def walk(p: argparse.ArgumentParser):
        yield p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub in a.choices.values():
                    yield from walk(sub)
    parsers = list(walk(build_parser()))
    assert len(parsers) > 15
    for p in parsers:
        assert not p.allow_abbrev, p.prog
        for a in p._actions:
            if a.option_strings and not isinstance(a, argparse._HelpAction):
                assert a.help, f"{p.prog} {a.option_strings[0]}: no help"
        text = p.format_help()
        assert "(default: None)" not in text and "(default: False)" not in text
    assert "(default: 1000)" in next(p for p in parsers if p.prog == "wmfm twin generate").format_help()


def test_ctrl_c_stops_an_experiment_with_one_line(tmp_path, capsys, ctrl_c):
    with ctrl_c(3.0):
        rc = main(["experiment", "--preset", "tiny", "--out", str(tmp_path / "exp"), "--quiet"])
    assert rc == 130
    assert capsys.readouterr().err.strip().splitlines() == ["wmfm experiment: interrupted"]
    assert not (tmp_path / "exp" / "report.json").exists()
    data = tmp_path / "exp" / "data"                          # nothing half-written: a twin is complete or absent,
    twin = data / "twin"                                       # a cache is complete or absent, no temporary folder
    assert not twin.exists() or (twin / "param" / "twin.json").is_file()
    assert not (data / "cache").exists() or (data / "cache" / "meta.json").is_file()
    assert not data.exists() or not [p for p in data.iterdir() if p.name.startswith(".")]
