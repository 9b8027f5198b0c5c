"""Sample data of the 'simcse' task: supervised positive pairs (text_b = text_a with its last word
replaced) for training; STS-style dev rows whose gold similarity is the number of shared words."""

from task_samples.common import WORDS, sentence, write


def samples(tmp, rng):
    def positive(text):
        return text.rsplit(" ", 1)[0] + " " + rng.choice(WORDS)

    def scored(n):
        rows = []
        for i in range(n):
            a = sentence(rng)
            b = positive(a) if i % 2 else sentence(rng)
            rows.append(f"{len(set(a.split()) & set(b.split()))}\t{a}\t{b}")
        return rows
    train = write(tmp / "train.tsv", "text_a\ttext_b", [f"{a}\t{positive(a)}" for a in
                                                        (sentence(rng) for _ in range(48))])
    dev = write(tmp / "dev.tsv", "label\ttext_a\ttext_b", scored(16))
    infer = write(tmp / "infer.tsv", "text_a\ttext_b", [f"{sentence(rng)}\t{sentence(rng)}" for _ in range(5)])
    bad = write(tmp / "bad.tsv", "text_a\ttext_b", ["w1 w2\tw1 w3", "w4 w5\tw4\tw6"])
    return (train, dev, infer), [], bad
