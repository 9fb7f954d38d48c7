"""split_transcript: a long transcript shared out among decoded segments, against the
segments the words were really said in."""

import random

from asr.anchoring import split_transcript


def test_words_go_to_the_segments_they_were_said_in_despite_recognition_errors():
    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(30)]
    truth = [[rng.choice(vocabulary) for _ in range(rng.randrange(3, 12))] for _ in range(40)]
    recognized = []
    for words in truth:  # a recognizer with 20% errors: substitutions, deletions and insertions
        heard = []
        for word in words:
            roll = rng.random()
            if roll < 0.08:
                heard.append(rng.choice(vocabulary))
            elif roll < 0.14:
                continue
            elif roll < 0.2:
                heard += [word, rng.choice(vocabulary)]
            else:
                heard.append(word)
        recognized.append(heard)
    reference = [word for words in truth for word in words]
    parts = split_transcript(reference, recognized).parts(reference)
    assert [word for part in parts for word in part] == reference and len(parts) == len(truth)
    misplaced = sum(abs(len(part) - len(words)) for part, words in zip(parts, truth))
    assert misplaced <= 0.05 * len(reference), (misplaced, len(reference))


def test_segments_without_words_get_none_and_edges_lean_on_the_nearest_match():
    reference = "a b c d e f".split()
    split = split_transcript(reference, [["x", "b"], [], ["e", "y"]])
    assert split.parts(reference) == [["a", "b", "c"], [], ["d", "e", "f"]]
    # c and d, missed by the recognizer, may go to either side: the borders may move between b and e.
    assert split.lowest.tolist() == [0, 2, 2, 6] and split.highest.tolist() == [0, 4, 4, 6]
    assert split_transcript(reference, [[], ["a", "b", "c", "d", "e", "f"], []]).parts(reference) == [[], reference, []]
    assert split_transcript(reference, [[], []]) is None
    split = split_transcript(reference, [["x"], ["y"]])  # nothing matched: every border is free
    assert split.lowest.tolist() == [0, 0, 6] and split.highest.tolist() == [0, 6, 6]


def test_exact_recognition_splits_exactly():
    truth = [["one", "two"], ["three"], [], ["four", "five", "six"]]
    reference = [w for t in truth for w in t]
    split = split_transcript(reference, truth)
    assert split.parts(reference) == truth and (split.lowest == split.highest).all()


def test_a_word_heard_on_both_sides_of_a_border_leaves_the_border_free():
    reference = "a b four c d".split()
    split = split_transcript(reference, [["a", "b", "four"], ["four", "c", "d"]])
    # four was said once: it may belong to either segment, for the aligner to choose
    assert split.lowest[1] == 2 and split.highest[1] == 3 and split.cuts[1] in (2, 3)
    split = split_transcript(reference, [["a", "b", "four"], ["c", "d"]])
    assert split.lowest[1] == split.highest[1] == split.cuts[1] == 3
    split = split_transcript("a four four d".split(), [["a", "four"], ["four", "d"]])  # said twice: both anchored
    assert split.lowest[1] == split.highest[1] == split.cuts[1] == 2
