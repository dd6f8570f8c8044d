"""A character-level English corpus shipped with the package: Ambrose Bierce's "The Devil's
Dictionary" (1911), public domain (its copyright has expired; the Debian package's copyright file
says so and records the Internet Wiretap edition's header "A Public Domain Text, Copyright
Expired").

The file ``assets/devils_dictionary.txt.gz`` (383,069 ASCII characters, 84 distinct, gzip level 9
with mtime 0; SHA-256 of the uncompressed text
``be38cce4ff8d4966a89ecfbd15c2a24faa138005b63c7f92e9627c558e99ff6c``) was made once, by hand:

1. ``apt-get download dict-devil`` (Debian package ``dict-devil`` 1.0-13.1, the dictd version of
   the Internet Wiretap 1st Online Edition, 1993) and ``dpkg-deb -x`` it;
2. ``zcat usr/share/dictd/devil.dict.dz`` (dictd keeps the entries as plain text, in order);
3. drop the dictd header entries (the first 14 lines: format version, source URL, short name)
   and the trailing alphabet entry (the last line, `` abcdefghijklmnopqrstuvwxyz``), so the text
   starts at the edition's title page and ends with the entry ZOOLOGY;
4. strip trailing white space from every line, join with ``\\n`` and end with one newline;
5. ``gzip.compress(text.encode('ascii'), compresslevel=9, mtime=0)``.

Splits are contiguous by characters: the first 90% is ``train``, the next 5% ``validation``, the
last 5% ``test`` (boundaries ``floor(0.9 N)`` and ``floor(0.95 N)``). The vocabulary is taken from
the whole corpus, so token ids agree across splits.
"""

import functools
import gzip
from importlib import resources

import numpy as np

from jgen.checks import check_choice, check_int

ASSET = "assets/devils_dictionary.txt.gz"
SPLITS = ("train", "validation", "test")
_BOUNDARIES = (0.0, 0.9, 0.95, 1.0)


@functools.cache
def load_text() -> str:
    """The whole corpus as one string (module docstring): 383,069 characters."""
    data = resources.files("jgen.data").joinpath(ASSET).read_bytes()
    return gzip.decompress(data).decode("ascii")


def vocabulary(text: str) -> str:
    """The sorted distinct characters of ``text``: token ``t`` is character ``vocab[t]``."""
    return "".join(sorted(set(text)))


def _codepoints(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def encode(text: str, vocab: str) -> np.ndarray:
    """The token ids of ``text``: ``tokens[j] = vocab.index(text[j])``.

    Args:
      text: the characters to encode.
      vocab: distinct characters (e.g. from ``vocabulary``).

    Returns:
      ``(len(text),)`` int32.

    Raises:
      ValueError: naming ``vocab`` when it repeats a character, or ``text`` with the first
        character (and its index) that is not in ``vocab``.
    """
    if len(set(vocab)) != len(vocab):
        raise ValueError(f"vocab must hold distinct characters; got {vocab!r}")
    codes, vocab_codes = _codepoints(text), _codepoints(vocab)
    order = np.argsort(vocab_codes)
    position = np.searchsorted(vocab_codes[order], codes)
    position = np.minimum(position, max(len(vocab) - 1, 0))
    found = vocab_codes[order][position] == codes if len(vocab) else np.zeros(len(codes), bool)
    if not np.all(found):
        first = int(np.argmin(found))
        raise ValueError(
            f"text contains the character {text[first]!r} (at index {first}) that is not in "
            f"vocab {vocab!r}"
        )
    return order[position].astype(np.int32)


def decode(tokens, vocab: str) -> str:
    """The characters of token ids: ``''.join(vocab[t] for t in tokens)``.

    Args:
      tokens: ``(L,)`` integer token ids in ``0 .. len(vocab) - 1``.
      vocab: the characters of the ids.

    Returns:
      A string of length ``L``.

    Raises:
      ValueError: naming ``tokens`` when they are not a 1-D integer array or hold an id outside
        ``0 .. len(vocab) - 1`` (the first such id and its index are named).
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not (tokens.size == 0 or np.issubdtype(tokens.dtype, np.integer)):
        raise ValueError(
            f"tokens must be a 1-D integer array; got shape {tokens.shape}, dtype {tokens.dtype}"
        )
    bad = (tokens < 0) | (tokens >= len(vocab))
    if np.any(bad):
        first = int(np.argmax(bad))
        raise ValueError(
            f"tokens must be in 0..{len(vocab) - 1} (the vocab's ids); got {int(tokens[first])} "
            f"at index {first}"
        )
    table = np.array(list(vocab)) if vocab else np.array([], dtype="<U1")
    return "".join(table[tokens.astype(np.int64)].tolist())


def split_text(split: str) -> str:
    """One contiguous split of the corpus, before chunking (module docstring).

    ``split_text('train') + split_text('validation') + split_text('test') == load_text()``.

    Args:
      split: ``train`` (90%), ``validation`` (5%) or ``test`` (5%).

    Raises:
      ValueError: naming ``split`` when it is not one of those.
    """
    check_choice("split", split, SPLITS)
    text = load_text()
    k = SPLITS.index(split)
    start, stop = (int(np.floor(f * len(text))) for f in _BOUNDARIES[k : k + 2])
    return text[start:stop]


def load(split: str, seq_len: int) -> tuple[np.ndarray, str]:
    """Non-overlapping chunks of ``seq_len`` characters of one split, as token ids.

    ``tokens[r] = encode(split_text(split), vocab)[r * seq_len : (r + 1) * seq_len]`` for
    ``r < floor(len(split_text(split)) / seq_len)``; the remainder is dropped.

    Args:
      split: ``train``, ``validation`` or ``test``.
      seq_len: characters per chunk.

    Returns:
      ``(tokens (n, seq_len) int32, vocab)`` with ``vocab = vocabulary(load_text())``, shared by
      all splits.

    Raises:
      ValueError: naming ``split`` when it is not a split name, or ``seq_len`` when it is not a
        positive integer or exceeds the split's length.
    """
    check_choice("split", split, SPLITS)
    check_int("seq_len", seq_len)
    text = split_text(split)
    if seq_len > len(text):
        raise ValueError(
            f"seq_len must be at most the {split} split's length {len(text)}; got {seq_len}"
        )
    vocab = vocabulary(load_text())
    num_chunks = len(text) // seq_len
    tokens = encode(text[: num_chunks * seq_len], vocab)
    return tokens.reshape(num_chunks, seq_len), vocab
