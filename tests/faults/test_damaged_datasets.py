"""Damaged datasets (issue 10, item 5): truncated or halved files, edited counts, flipped bytes in
the index, a bad dtype, missing keys — each is one `error:` line from pretrain.py naming the file
and what is wrong, before anything is trained or written."""

import json
import shutil

import numpy as np
import pytest

from uer.cli.preprocess import main as preprocess_main
from uer.cli.pretrain import main as pretrain_main


@pytest.fixture(scope="module")
def dataset(tiny_corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("good") / "ds"
    preprocess_main(["--corpus_path", str(tiny_corpus / "corpus.txt"), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                     "--dataset_path", str(path), "--seq_length", "48", "--processes_num", "1"])
    return path


def edit_meta(change):
    def damage(path):
        meta = json.loads((path / "meta.json").read_text())
        change(meta)
        (path / "meta.json").write_text(json.dumps(meta))
    return damage


def truncate(name, keep):
    def damage(path):
        data = (path / name).read_bytes()
        (path / name).write_bytes(data[:keep(len(data))])
    return damage


def flip_index_bytes(path):
    index = path / "shard_00000.index.bin"
    data = bytearray(index.read_bytes())
    data[8 * 7] ^= 0x5A          # the low byte of an offset/length/field in the second row
    index.write_bytes(bytes(data))


def shuffle_label_field(path):
    """A label of 7 in an NSP dataset (labels are 0/1)."""
    meta = json.loads((path / "meta.json").read_text())
    columns = 2 * len(meta["streams"]) + len(meta["fields"])
    index = np.fromfile(path / "shard_00000.index.bin", dtype=np.int64).reshape(-1, columns)
    index[3, 2 + meta["fields"].index("label")] = 7
    index.tofile(path / "shard_00000.index.bin")


def token_beyond_the_vocabulary(path):
    """Flipped high bytes in tokens.bin (one token in ten, so every instance is hit): ids no
    vocabulary entry has, caught when an instance is read."""
    data = bytearray((path / "shard_00000.tokens.bin").read_bytes())
    for high_byte in range(1, len(data), 20):
        data[high_byte] ^= 0x80
    (path / "shard_00000.tokens.bin").write_bytes(bytes(data))


CASES = {
    "a token id beyond the vocabulary": (token_beyond_the_vocabulary,
                                         ["shard_00000.tokens.bin", "beyond the vocabulary's"]),
    "tokens truncated by 100 bytes": (truncate("shard_00000.tokens.bin", lambda n: n - 100),
                                      ["shard_00000.tokens.bin", "bytes, but meta.json says"]),
    "index halved": (truncate("shard_00000.index.bin", lambda n: n // 2), ["shard_00000.index.bin", "index rows"]),
    "flipped bytes in the index": (flip_index_bytes, ["shard_00000.index.bin", "instance 1"]),
    "a label out of range": (shuffle_label_field, ["shard_00000.index.bin", "instance 3 has label 7", "0..1"]),
    "edited token count": (edit_meta(lambda m: m["shards"][0].update(tokens=m["shards"][0]["tokens"] + 5)),
                           ["meta.json", "totals say"]),
    "edited instance counts": (edit_meta(lambda m: (m["shards"][0].update(instances=m["shards"][0]["instances"] - 1),
                                                    m.update(instances=m["instances"] - 1))),
                               ["shard_00000.index.bin", "index rows"]),
    "token_dtype banana": (edit_meta(lambda m: m.update(token_dtype="banana")), ["meta.json", "token_dtype", "banana"]),
    "no shards key": (edit_meta(lambda m: m.pop("shards")), ["meta.json", "'shards' is missing"]),
    "no fingerprint": (edit_meta(lambda m: m["tokenizer"].pop("fingerprint")), ["meta.json", "fingerprint"]),
    "seq_length smaller than the instances": (edit_meta(lambda m: m.update(seq_length=16)),
                                              ["meta.json", "more than the dataset's seq_length 16"]),
    "max_length edited": (edit_meta(lambda m: m["max_length"].update(src=3)), ["meta.json", "max_length"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_damaged_dataset_is_one_error_line(case, dataset, tiny_corpus, tmp_path, capsys):
    damage, needles = CASES[case]
    broken = tmp_path / "ds"
    shutil.copytree(dataset, broken)
    damage(broken)
    out = tmp_path / "out" / "m.bin"
    with pytest.raises(SystemExit) as exit_info:
        pretrain_main(["--dataset_path", str(broken), "--vocab_path", str(tiny_corpus / "vocab.txt"),
                       "--config_path", str(tiny_corpus / "tiny_bert.json"), "--output_model_path", str(out),
                       "--total_steps", "2", "--batch_size", "4"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("error: ") and not any("Traceback" in line for line in err), err
    for needle in needles:
        assert needle in err[-1], (needle, err[-1])
    assert not (tmp_path / "out").exists()


class _Failing:
    def __len__(self):
        return 4

    def __getitem__(self, i):
        from uer.errors import DataError
        raise DataError("shard_00000.index.bin: instance 2 is damaged")


def test_an_error_in_a_dataloader_worker_reaches_the_user_as_its_own_line(capsys):
    import torch

    from uer.cli.common import cli_entry

    @cli_entry
    def main(argv=None):
        for _ in torch.utils.data.DataLoader(_Failing(), num_workers=1):
            pass
    with pytest.raises(SystemExit):
        main([])
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: shard_00000.index.bin: instance 2 is damaged"], err
