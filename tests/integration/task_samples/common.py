"""What the sample-data modules share: the words of the contract test's tiny vocabulary and the writers."""

WORDS = [f"w{i}" for i in range(30)]
CHARS = list("甲乙丙丁戊己庚辛")


def sentence(rng, n=6):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write(path, header, rows):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return str(path)
