"""The character corpus: the shipped file, encoding round trips, the contiguous 90/5/5 splits and
their chunks."""

import hashlib
import math

import numpy as np
import pytest

from jgen.data import text

# Recorded when the asset was made (module docstring): the file is the one described there.
SHA256 = "be38cce4ff8d4966a89ecfbd15c2a24faa138005b63c7f92e9627c558e99ff6c"
NUM_CHARS = 383_069


def test_the_corpus_is_the_recorded_public_domain_text():
    corpus = text.load_text()
    assert len(corpus) == NUM_CHARS
    assert hashlib.sha256(corpus.encode("ascii")).hexdigest() == SHA256
    assert "A Public Domain Text, Copyright Expired" in corpus[:1000]
    assert corpus.rstrip().endswith("the domestic cow sheds its horn every two years.")


def test_encode_and_decode_on_hand_worked_examples():
    assert text.vocabulary("banana bread") == " abdenr"
    np.testing.assert_array_equal(text.encode("abca", "abc"), [0, 1, 2, 0])
    # Ids are positions in the vocab as given, sorted or not.
    np.testing.assert_array_equal(text.encode("abca", "cab"), [1, 2, 0, 1])
    assert text.encode("abca", "abc").dtype == np.int32
    assert text.decode(np.array([2, 0, 1, 1]), "abc") == "cabb"
    assert text.decode(np.array([], np.int32), "abc") == ""


def test_round_trip_on_the_whole_corpus():
    corpus = text.load_text()
    vocab = text.vocabulary(corpus)
    tokens = text.encode(corpus, vocab)
    assert tokens.shape == (len(corpus),) and tokens.min() == 0 and tokens.max() == len(vocab) - 1
    assert text.decode(tokens, vocab) == corpus


def test_splits_are_contiguous_pieces_in_the_stated_proportions():
    corpus = text.load_text()
    pieces = [text.split_text(split) for split in ("train", "validation", "test")]
    assert "".join(pieces) == corpus
    boundaries = [math.floor(0.9 * NUM_CHARS), math.floor(0.95 * NUM_CHARS)]
    assert [len(p) for p in pieces] == [
        boundaries[0],
        boundaries[1] - boundaries[0],
        NUM_CHARS - boundaries[1],
    ]


@pytest.mark.parametrize("seq_len", [1, 7, 256])
def test_chunks_are_the_split_cut_into_consecutive_pieces(seq_len):
    vocab = text.vocabulary(text.load_text())
    for split in ("train", "validation", "test"):
        tokens, split_vocab = text.load(split, seq_len)
        piece = text.split_text(split)
        num_chunks = len(piece) // seq_len  # the remainder is dropped
        assert tokens.shape == (num_chunks, seq_len) and tokens.dtype == np.int32
        # One vocabulary for every split: ids mean the same character everywhere.
        assert split_vocab == vocab
        assert text.decode(tokens.ravel(), vocab) == piece[: num_chunks * seq_len]
        assert text.decode(tokens[-1], vocab) == piece[(num_chunks - 1) * seq_len :][:seq_len]


def test_load_is_deterministic():
    first, vocab = text.load("validation", 64)
    second, vocab_again = text.load("validation", 64)
    np.testing.assert_array_equal(first, second)
    assert vocab == vocab_again


def test_bad_arguments_raise_value_errors_naming_them():
    with pytest.raises(ValueError, match=r"split must be one of .*'val'"):
        text.load("val", 10)
    with pytest.raises(ValueError, match="split"):
        text.split_text("training")
    for seq_len in (0, -3, 2.5, True, "10"):
        with pytest.raises(ValueError, match=r"seq_len must be an integer >= 1"):
            text.load("train", seq_len)
    with pytest.raises(ValueError, match="seq_len must be at most the test split's length"):
        text.load("test", NUM_CHARS)
    with pytest.raises(ValueError, match=r"character 'z' \(at index 2\)"):
        text.encode("abz", "abc")
    with pytest.raises(ValueError, match="vocab must hold distinct characters"):
        text.encode("ab", "aba")
    with pytest.raises(ValueError, match="got 3 at index 1"):
        text.decode(np.array([0, 3, 1]), "abc")
    with pytest.raises(ValueError, match="got -1 at index 0"):
        text.decode(np.array([-1]), "abc")
    with pytest.raises(ValueError, match="tokens must be a 1-D integer array"):
        text.decode(np.zeros((2, 2), np.int32), "abc")
    with pytest.raises(ValueError, match="tokens must be a 1-D integer array"):
        text.decode(np.array([0.0, 1.0]), "abc")
