"""`import sertiny`, its CLI and the device modules never pull in the heavy stack."""

import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "jax", "librosa", "optuna", "numba", "torch")


def _loaded_heavy(statement):
    code = (
        f"{statement}\n"
        "import sys\n"
        f"print(','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize(
    "statement",
    [
        "import sertiny",
        "import sertiny.cli",
        "import sertiny.data, sertiny.data.audio, sertiny.data.splits",
        "import sertiny.features, sertiny.features.numpy_frontend, sertiny.features.normalize",
        "import sertiny.models",
        "import sertiny.metrics",
        # Listing and configuring every family (the baselines' module imports Keras) stays light.
        "from sertiny.models import list_models, model_config; list_models(); "
        "[model_config(n) for n in ('bilstm_att_h64', 'dual_lstm_h64', 'cnn_lstm_h64')]",
        "from sertiny.models.weights import get_weights, set_weights, named_format_families; named_format_families()",
        "from sertiny.models import families; [f.streaming for f in families()]",
        "from sertiny.export.run import load_run",
        "from sertiny.training import TrainConfig",
    ],
)
def test_import_stays_light(statement):
    assert _loaded_heavy(statement) == ""


def test_cli_help_lists_every_stage_without_heavy_imports():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from sertiny.cli import main\n"
        "r = CliRunner().invoke(main, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(r.output)\n"
        f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for command in ("data", "train"):
        assert f"  {command} " in out
    assert out.strip().endswith("HEAVY:")
