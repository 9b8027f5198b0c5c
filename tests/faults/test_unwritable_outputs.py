"""A full disk and a read-only place (issue 10, item 7): one `error:` line naming the path and the
reason, exit status 2, no temporary file left behind.  The disk is a tiny tmpfs (skipped where
mounting is not allowed)."""

import json
import os
import subprocess

import pytest

from uer.cli.tasks import finetune_main

WORDS = [f"w{i}" for i in range(12)]
# About 0.3 M parameters (1.2 MB in fp32): larger than the 256 KiB disk.
MODEL = {"embedding": ["word", "pos", "seg"], "emb_size": 64, "hidden_size": 64, "feedforward_size": 256,
         "heads_num": 2, "layers_num": 2, "max_seq_length": 32, "dropout": 0.0, "target": ["mlm"]}


@pytest.fixture
def small_disk(tmp_path):
    def mount(options):
        place = tmp_path / f"disk-{len(os.listdir(tmp_path))}"
        place.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(place)], capture_output=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.decode().strip() or proc.returncode})")
        mounted.append(place)
        return place
    mounted = []
    yield mount
    for place in mounted:
        subprocess.run(["umount", "-l", str(place)], capture_output=True)   # lazy: a writer may still hold a file


def finetune_into(tmp_path, out, capsys):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS) + "\n", encoding="utf-8")
    config = tmp_path / "model.json"
    config.write_text(json.dumps(MODEL), encoding="utf-8")
    data = tmp_path / "train.tsv"
    data.write_text("label\ttext_a\n" + "\n".join(f"{i % 2}\tw{i % 12} w1" for i in range(16)) + "\n",
                    encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        finetune_main("classification")(["--vocab_path", str(vocab), "--config_path", str(config), "--train_path",
                                          str(data), "--dev_path", str(data), "--output_model_path", str(out),
                                          "--epochs_num", "1", "--batch_size", "8", "--seq_length", "16"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and not any("Traceback" in line for line in err), err
    return err[-1]


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path, small_disk, capsys):
    disk = small_disk("size=256k")
    out = disk / "model.bin"
    line = finetune_into(tmp_path, out, capsys)
    assert "no space left on device" in line and str(out) in line, line
    assert not [name for name in os.listdir(disk) if ".tmp-" in name], os.listdir(disk)


def test_a_read_only_place_is_one_line(tmp_path, small_disk, capsys):
    disk = small_disk("ro,size=64k")
    line = finetune_into(tmp_path, disk / "model.bin", capsys)
    assert "read-only" in line and str(disk) in line, line
