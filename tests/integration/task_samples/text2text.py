"""Sample data of the 'text2text' task: the target is the source's words in reverse order (learnable);
a tiny BART-shaped encoder-decoder config replaces the contract test's encoder-only one (extra
--config_path, given after it); the bad file has an example with an empty target."""

import json

from task_samples.common import sentence, write

TINY_SEQ2SEQ = {"embedding": ["word", "pos"], "tgt_embedding": ["word", "pos"], "emb_size": 32, "hidden_size": 32,
                "feedforward_size": 64, "heads_num": 2, "layers_num": 1, "decoder_layers_num": 1,
                "max_seq_length": 64, "dropout": 0.0, "encoder": "transformer", "decoder": "transformer",
                "mask": "fully_visible", "share_embedding": True, "tie_weights": True, "target": ["lm"]}


def samples(tmp, rng):
    def rows(n):
        out = []
        for _ in range(n):
            words = sentence(rng, rng.randrange(2, 5))
            out.append(f"{words}\t{' '.join(reversed(words.split()))}")
        return out
    files = [write(tmp / f"{s}.tsv", "text_a\tlabel", rows(n)) for s, n in (("train", 48), ("dev", 8))]
    files.append(write(tmp / "infer.tsv", "text_a", [sentence(rng, 3) for _ in range(5)]))
    (tmp / "seq2seq.json").write_text(json.dumps(TINY_SEQ2SEQ), encoding="utf-8")
    bad = write(tmp / "bad.tsv", "text_a\tlabel", ["w1 w2\tw2 w1", "w3 w4\t"])
    return files, ["--config_path", str(tmp / "seq2seq.json"), "--tgt_seq_length", "8"], bad
