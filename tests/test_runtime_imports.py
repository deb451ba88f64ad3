"""The xApp's runtime (its command line, the app, the ONNX Runtime backend) imports none of the
training and simulation stack, so its container image can leave torch, scipy, pandas,
matplotlib and deepverse out."""

import subprocess
import sys

HEAVY = ("torch", "scipy", "pandas", "matplotlib", "deepverse", "tqdm", "natsort", "onnx")


def test_the_xapp_runtime_imports_no_training_or_simulation_package():
    code = ("import sys, wmfm.cli; wmfm.cli.build_parser(); import wmfm.xapp.app, wmfm.xapp.inference.ort_backend; "
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_command_lines_preset_names_are_the_experiments():
    from wmfm.model.cli import PRESETS
    from wmfm.model.experiment import PRESETS as defined
    assert set(PRESETS) == set(defined)


def test_a_command_whose_extra_is_missing_says_which_to_install(monkeypatch, capsys, tmp_path):
    from wmfm.cli import main
    monkeypatch.setitem(sys.modules, "tqdm", None)          # as on the slim xApp image
    assert main(["replay", "--scenario", str(tmp_path)]) == 2
    assert "needs tqdm: pip install 'wmfm-xapp[sim]'" in capsys.readouterr().err
