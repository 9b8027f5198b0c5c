"""Sample data of the 'c3' task: C3 JSON documents whose questions ask which choice word occurs in
the document (the answer is the only choice that does, so learnable); the inference file has
question ids and no answers, as C3's test.json; the bad file is cut-off JSON."""

import json

from task_samples.common import WORDS, sentence


def documents(rng, n, answers=True):
    out = []
    for d in range(n):
        lines = [sentence(rng, 4), sentence(rng, 4)]
        present = set(" ".join(lines).split())
        absent = [w for w in WORDS if w not in present]
        questions = []
        for q in range(2):
            k = rng.choice([2, 3, 4])              # fewer than --max_choices_num: padded
            answer = rng.choice(sorted(present))
            choices = rng.sample(absent, k - 1) + [answer]
            rng.shuffle(choices)
            question = {"question": sentence(rng, 2), "choice": choices}
            question.update({"answer": answer} if answers else {"id": d * 2 + q})
            questions.append(question)
        out.append([lines, questions, f"doc-{d}"])
    return out


def samples(tmp, rng):
    files = []
    for split, n, answers in (("train", 20, True), ("dev", 6, True), ("infer", 3, False)):
        path = tmp / f"{split}.json"
        path.write_text(json.dumps(documents(rng, n, answers), ensure_ascii=False), encoding="utf-8")
        files.append(str(path))
    bad = tmp / "bad.json"
    bad.write_text('[[["w1 w2"], [{"question": "w3", "choice": ["w1", "w4"], "answer": "w1"}]\n', encoding="utf-8")
    return files, [], str(bad)
