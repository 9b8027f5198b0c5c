"""A small synthetic English corpus and review-sentiment task, generated offline and deterministically,
so the quickstart needs no download.

Reviews are built from a grammar; the label depends on the sentiment word *and* on negation
("was not great" is negative), so a classifier must read more than one keyword.  The pretraining
corpus is drawn from the same grammar (unlabelled), in documents separated by blank lines.
"""

import os
import random
from typing import List, Tuple

SUBJECTS = ["the food", "the service", "the movie", "the book", "the hotel", "the music", "the room",
            "the staff", "the game", "the coffee", "the plot", "the screen", "the battery", "the camera",
            "the soup", "the concert", "the train", "the teacher", "the lecture", "the garden"]
POSITIVE = ["great", "wonderful", "excellent", "delightful", "amazing", "pleasant", "superb", "lovely",
            "brilliant", "charming", "fantastic", "enjoyable"]
NEGATIVE = ["terrible", "awful", "boring", "disappointing", "dreadful", "poor", "horrible", "dull",
            "mediocre", "annoying", "painful", "unpleasant"]
INTENSIFIERS = ["", "", "really ", "very ", "quite ", "truly ", "rather "]
TIMES = ["yesterday", "last week", "on friday", "this morning", "in the evening", "during the holiday",
         "after work", "on my birthday", "last summer", "in december"]
PEOPLE = ["my sister", "my friend", "our neighbour", "the manager", "my father", "a colleague",
          "my grandmother", "the children", "my brother", "a tourist"]
ACTIONS = ["visited", "tried", "watched", "read", "ordered", "listened to", "booked", "played",
           "reviewed", "recommended"]
PLACES = ["in the city", "near the station", "by the river", "downtown", "at the market",
          "in the old town", "on the coast", "at the airport"]
FILLERS = ["we will come back", "it was crowded", "the price was fair", "we stayed for an hour",
           "it started to rain", "the weather was cold", "parking was easy", "we arrived late",
           "nobody was in a hurry", "the queue was long"]


def review(rng: random.Random) -> Tuple[int, str]:
    positive_word = rng.random() < 0.5
    negated = rng.random() < 0.3
    word = rng.choice(POSITIVE if positive_word else NEGATIVE)
    label = int(positive_word != negated)
    verb = "was not" if negated else "was"
    subject = rng.choice(SUBJECTS)
    parts = [f"{rng.choice(PEOPLE)} {rng.choice(ACTIONS)} it {rng.choice(TIMES)}" if rng.random() < 0.5 else "",
             f"{subject} {rng.choice(PLACES)} {verb} {rng.choice(INTENSIFIERS)}{word}",
             rng.choice(FILLERS) if rng.random() < 0.5 else ""]
    text = " , ".join(p for p in parts if p) + " ."
    return label, text


def sentence(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return review(rng)[1]
    return f"{rng.choice(PEOPLE)} {rng.choice(ACTIONS)} {rng.choice(SUBJECTS)} {rng.choice(PLACES)} " \
           f"{rng.choice(TIMES)} , and {rng.choice(FILLERS)} ."


def write_corpus(path: str, documents: int, rng: random.Random) -> None:
    """BERT-style corpus: one sentence per line, documents separated by a blank line."""
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(documents):
            for _ in range(rng.randint(3, 8)):
                f.write(sentence(rng) + "\n")
            f.write("\n")


def write_labelled(path: str, rows: List[Tuple[int, str]], with_labels: bool = True) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("label\ttext_a\n" if with_labels else "text_a\n")
        for label, text in rows:
            f.write(f"{label}\t{text}\n" if with_labels else f"{text}\n")


def generate(directory: str, documents: int = 3000, train: int = 2000, dev: int = 500, test: int = 500,
             seed: int = 7) -> dict:
    os.makedirs(directory, exist_ok=True)
    rng = random.Random(seed)
    paths = {name: os.path.join(directory, name) for name in
             ("corpus.txt", "train.tsv", "dev.tsv", "test.tsv", "test_nolabel.tsv")}
    write_corpus(paths["corpus.txt"], documents, rng)
    rows = [review(rng) for _ in range(train + dev + test)]
    write_labelled(paths["train.tsv"], rows[:train])
    write_labelled(paths["dev.tsv"], rows[train:train + dev])
    write_labelled(paths["test.tsv"], rows[train + dev:])
    write_labelled(paths["test_nolabel.tsv"], rows[train + dev:], with_labels=False)
    return paths
