"""bench/gpu_train.py: its arguments, and its message on a machine without CUDA (this one)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu_train.py"


@pytest.fixture(scope="module")
def gpu_train():
    spec = importlib.util.spec_from_file_location("gpu_train", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_and_settings_are_parsed(gpu_train, tmp_path):
    args = gpu_train.parse_args([])
    assert (args.images, args.image_size, args.batch_size, args.amp, args.nproc) == (2000, 224, 64, "bf16", 1)
    args = gpu_train.parse_args(
        ["--project", str(tmp_path), "--batch-size", "32", "--amp", "fp16", "--nproc", "4"]
    )
    assert args.project == tmp_path and args.batch_size == 32 and args.amp == "fp16" and args.nproc == 4


@pytest.mark.parametrize("argv", [["--batch-size", "0"], ["--amp", "fp8"], ["--project", "/no/such/folder"],
                                  ["--images", "10", "--project", "."], ["--epochs", "-1"]])
def test_bad_settings_are_refused_with_a_usage_error(gpu_train, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_train.parse_args(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the bench would really run")
def test_without_cuda_it_says_so_and_measures_nothing(gpu_train, capsys):
    assert gpu_train.main(["--images", "10"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
