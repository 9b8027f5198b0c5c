"""Sample data of the 'siamese' task: label\ttext_a\ttext_b, label 1 when both texts start with the
same word (a relation between the two towers' vectors, so learnable)."""

from task_samples.common import sentence, write


def samples(tmp, rng):
    def rows(n):
        out = []
        for i in range(n):
            a, b = sentence(rng), sentence(rng)
            if i % 2:
                b = a.split()[0] + " " + b.split(" ", 1)[1]
            out.append(f"{int(a.split()[0] == b.split()[0])}\t{a}\t{b}")
        return out
    files = [write(tmp / f"{s}.tsv", "label\ttext_a\ttext_b", rows(n)) for s, n in (("train", 48), ("dev", 16))]
    files.append(write(tmp / "infer.tsv", "text_a\ttext_b", [f"{sentence(rng)}\t{sentence(rng)}" for _ in range(5)]))
    bad = write(tmp / "bad.tsv", "label\ttext_a\ttext_b", ["1\tw1 w2\tw1 w3", "1\tw4 w5"])
    return files, [], bad
