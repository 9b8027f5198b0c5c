"""Sample data of the 'chid' task: ChID JSON lines of synthetic "idioms" (vocabulary words); the right
candidate of a blank is the word just before it (learnable), the answers a separate JSON file
(--train_answer_path / --dev_answer_path / --test_answer_path); the bad file has a broken line 2."""

import json

from task_samples.common import WORDS, sentence


def lines(rng, n, first_blank):
    """(JSON lines, answers): two passages of one or two blanks per line, 6 candidates."""
    out, answers, blank = [], {}, first_blank
    for _ in range(n):
        candidates = rng.sample(WORDS, 6)
        content, used = [], set()
        for _ in range(2):
            words = sentence(rng, 5).split()
            for _ in range(rng.choice([1, 2])):
                free = [c for c in range(6) if c not in used]
                answer = rng.choice(free)
                used.add(answer)
                tag = f"#idiom{blank:06d}#"
                blank += 1
                at = rng.randrange(1, len(words))
                words[at:at] = [candidates[answer], tag]
                answers[tag] = answer
            content.append(" ".join(words))
        out.append(json.dumps({"candidates": candidates, "content": content}, ensure_ascii=False))
    return out, answers


def samples(tmp, rng):
    files = []
    for split, n, start in (("train", 10, 0), ("dev", 4, 1000), ("infer", 2, 2000)):
        rows, answers = lines(rng, n, start)
        (tmp / f"{split}.json").write_text("\n".join(rows) + "\n", encoding="utf-8")
        files.append(str(tmp / f"{split}.json"))
        if split != "infer":
            (tmp / f"{split}_answer.json").write_text(json.dumps(answers), encoding="utf-8")
    flags = ["--train_answer_path", str(tmp / "train_answer.json"), "--dev_answer_path",
             str(tmp / "dev_answer.json"), "--test_answer_path", str(tmp / "dev_answer.json")]
    bad = tmp / "bad.json"
    good = {"candidates": ["w1", "w2", "w3", "w4", "w5", "w6"], "content": ["w1 #idiom000000# w3"]}
    bad.write_text(json.dumps(good) + '\n{"candidates": [\n', encoding="utf-8")
    return files, flags, str(bad)
