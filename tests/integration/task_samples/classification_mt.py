"""Sample data of the classification_mt task through the ordinary task command line: one
--train_path is one dataset (head 0); label = parity of the first word's number, so learnable."""

from task_samples.common import sentence, write


def samples(tmp, rng):
    def rows(n):
        texts = [sentence(rng) for _ in range(n)]
        return [f"{int(t.split()[0][1:]) % 2}\t{t}" for t in texts]
    files = [write(tmp / f"{s}.tsv", "label\ttext_a", rows(n)) for s, n in (("train", 64), ("dev", 16))]
    files.append(write(tmp / "infer.tsv", "text_a", [sentence(rng) for _ in range(5)]))
    bad = write(tmp / "bad.tsv", "label\ttext_a", ["0\tw1 w2", "zz\tw3"])
    return files, [], bad
