"""Answer checkers for `llama-simplex eval task`: pure functions from a
completion to its extracted answer, and from (answer, gold) to right or wrong.

``first-line`` (the default): the completion's first line, normalised (case,
accents, punctuation, spacing), is right when it contains the normalised gold
answer as whole words — for short factual answers ("Canberra").

``math``: for competition mathematics (MATH, MATH500). The answer is the
content of the last ``\\boxed{...}``/``\\fbox{...}`` (braces balanced; an
unclosed last box, as in a truncated completion, falls back to the one before);
else what follows the last "The (final) answer is"; else the last number in the
text. It is normalised as MATH grading scripts commonly do (see
:func:`normalise_math`), and it is right when the normalised strings are equal,
or when both are numbers or simple fractions within a relative tolerance of
1e-6, or both are tuples/intervals whose parts are right one by one.

Majority vote counts the normalised extracted answers; a completion without
an answer casts no vote.
"""

from __future__ import annotations

import collections
import math
import re
import unicodedata
from fractions import Fraction
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

__all__ = ["Checker", "CHECKERS", "normalise", "first_line_answer", "first_line_right", "last_boxed",
           "extract_math", "normalise_math", "math_value", "math_equal", "math_answer", "score"]

REL_TOL = 1e-6


# --- first line --------------------------------------------------------------------------------

def normalise(text: str) -> str:
    """Lower case, accents dropped, every run of non-alphanumerics one space."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def first_line_answer(completion: str) -> str:
    """The answer a completion gives under ``first-line``: its first line, normalised."""
    return normalise(completion.strip().split("\n", 1)[0]) if completion.strip() else ""


def first_line_right(answer: str, gold: str) -> bool:
    """Whether the normalised gold answer occurs in `answer` as whole words."""
    g = normalise(gold)
    return bool(g) and f" {g} " in f" {answer} "


# --- math: extraction --------------------------------------------------------------------------

def _braced(text: str, start: int) -> Optional[int]:
    """The index just past the brace group opening at text[start] == '{', or None if unclosed."""
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == "\\":  # an escaped brace \{ or \} does not count
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def last_boxed(text: str) -> Optional[str]:
    """The content of the last complete ``\\boxed{...}`` or ``\\fbox{...}`` in
    `text` (nested braces kept), or of ``\\boxed X`` up to the next space or
    ``$``; None when there is none."""
    for m in reversed(list(re.finditer(r"\\(?:boxed|fbox)(?![A-Za-z])", text))):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            end = _braced(text, i)
            if end is not None:
                return text[i + 1:end - 1]
        elif i > m.end():  # "\boxed 5"
            word = re.match(r"[^\s$]+", text[i:])
            if word:
                return word.group(0)
    return None


_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+"


def extract_math(completion: str) -> Optional[str]:
    """The raw final answer of a math completion: the last boxed answer, else
    what follows the last "The (final) answer is" (to the end of its line or
    sentence), else the last number; None when there is none."""
    boxed = last_boxed(completion)
    if boxed is not None:
        return boxed
    stated = list(re.finditer(r"(?i)\bthe\s+(?:final\s+)?answer\s+is\s*:?\s*([^\n]+)", completion))
    if stated:
        answer = stated[-1].group(1)
        answer = re.split(r"\.(?:\s|$)", answer, maxsplit=1)[0]  # to the end of the sentence
        answer = answer.strip().strip("$").strip()
        if answer:
            return answer
    numbers = re.findall(_NUMBER, completion)
    return numbers[-1] if numbers else None


# --- math: normalisation -----------------------------------------------------------------------

_TEXT_COMMAND = r"\\(?:text|textbf|textrm|mbox|mathrm)\s*\{"


def _drop_units(s: str) -> str:
    """Removes a trailing ``\\text{ unit}`` (words only, optionally squared or
    cubed) after a non-empty answer: ``10\\text{ inches}`` -> ``10``."""
    m = re.search(_TEXT_COMMAND + r"\s*[A-Za-z][A-Za-z .]*\}(?:\^\{?[23]\}?)?\s*$", s)
    if m and s[:m.start()].strip():
        return s[:m.start()]
    return s


def _unwrap_text(s: str) -> str:
    """``\\text{X}`` (and \\mbox, \\mathrm, \\textbf) -> ``X``."""
    while True:
        m = re.search(_TEXT_COMMAND, s)
        if m is None:
            return s
        end = _braced(s, m.end() - 1)
        if end is None:
            return s[:m.start()] + s[m.end():]
        s = s[:m.start()] + s[m.end():end - 1] + s[end:]


def _argument(s: str, i: int) -> Optional[int]:
    """The end of the TeX argument starting at s[i] (spaces skipped by the
    caller): a brace group, or one character; None if there is none."""
    if i >= len(s):
        return None
    return _braced(s, i) if s[i] == "{" else i + 1


def _brace_short_arguments(s: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}`` (and ``\\frac1{2}``, ``\\frac{1}2``),
    ``\\sqrt2`` -> ``\\sqrt{2}``: one-character arguments get braces."""
    out, i = [], 0
    for m in re.finditer(r"\\(frac|sqrt)(?![A-Za-z])", s):
        if m.start() < i:
            continue
        out.append(s[i:m.end()])
        i = m.end()
        for _ in range(2 if m.group(1) == "frac" else 1):
            while i < len(s) and s[i] == " ":
                i += 1
            if i < len(s) and s[i] in "[\\":  # \sqrt[3]{..} or a command argument: left as it is
                break
            end = _argument(s, i)
            if end is None:
                break
            arg = s[i:end]
            out.append("{" + (_brace_short_arguments(arg[1:-1]) if arg.startswith("{") else arg) + "}")
            i = end
    out.append(s[i:])
    return "".join(out)


def normalise_math(answer: str) -> str:
    """A math answer in canonical form for string comparison: ``$``, spaces,
    ``\\left``/``\\right``, ``\\!``/``\\,``/``\\;``/``\\:``, ``\\displaystyle``,
    degrees (``^\\circ``), percent and dollar signs and a trailing period
    removed; ``\\text{...}`` unwrapped (a trailing unit dropped); ``\\dfrac``,
    ``\\tfrac`` -> ``\\frac``; ``\\frac12`` -> ``\\frac{1}{2}``; a leading
    ``x =`` dropped; thousands commas removed (``1,000`` -> ``1000``);
    ``.5`` -> ``0.5``. Idempotent."""
    s = answer.replace("\u2212", "-").replace("\n", " ").strip()
    s = s.replace("\\$", "").replace("$", "")
    s = _drop_units(s)
    s = _unwrap_text(s)
    s = re.sub(r"\\(?:left|right)(?![A-Za-z])", "", s)
    s = re.sub(r"\\(?:displaystyle|[!,;: ])", "", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s).replace("\\circ", "").replace("\u00b0", "")
    s = s.replace("\\%", "").replace("%", "")
    s = re.sub(r"\\[dt]frac(?![A-Za-z])", r"\\frac", s)
    s = _brace_short_arguments(s)
    s = re.sub(r"\s+", "", s)
    s = s.rstrip(".")
    if s.count("=") == 1 and re.fullmatch(r"[A-Za-z](?:_\{?\w+\}?)?|\\[A-Za-z]+", s.split("=")[0]):
        s = s.split("=")[1]  # "x=5" -> "5"
    s = re.sub(r"^[A-Za-z]\\in(?=[\[(])", "", s)  # "x\in[0,1)" -> "[0,1)"
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):
        s = s.replace(",", "")
    s = re.sub(r"(^|[^\d])\.(\d)", r"\g<1>0.\2", s)  # ".5" -> "0.5"
    return s


def math_value(answer: str) -> Optional[Fraction]:
    """The exact value of a normalised answer that is a number (``-12``,
    ``0.5``), a simple fraction (``\\frac{3}{4}``, ``-\\frac{3}{4}``,
    ``\\frac{-3}{4}``, ``3/4``); None otherwise."""
    number = r"-?\d+(?:\.\d+)?"
    m = re.fullmatch(rf"(-?)\\frac\{{({number})\}}\{{({number})\}}|(-?)({number})/({number})|({number})", answer)
    if m is None:
        return None
    if m.group(7) is not None:
        return Fraction(m.group(7))
    sign, num, den = (m.group(1), m.group(2), m.group(3)) if m.group(2) is not None else m.group(4, 5, 6)
    if Fraction(den) == 0:
        return None
    value = Fraction(num) / Fraction(den)
    return -value if sign else value


def _parts(s: str) -> Optional[List[str]]:
    """The comma-separated parts of a tuple or interval ``(a,b)``, ``[a,b)``, ...; None otherwise."""
    if len(s) < 2 or s[0] not in "([" or s[-1] not in ")]":
        return None
    parts, depth, start = [], 0, 1
    for i, c in enumerate(s[1:-1], 1):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return None
        elif c == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:-1])
    return parts if len(parts) > 1 else None


def math_equal(answer: Optional[str], gold: str) -> bool:
    """Whether a math answer is right: equal after :func:`normalise_math`, or
    equal numbers within a relative tolerance of 1e-6, or tuples/intervals with
    the same brackets whose parts are equal one by one. No answer is wrong."""
    if answer is None:
        return False
    a, g = normalise_math(answer), normalise_math(gold)
    if not a or not g:
        return False
    if a == g:
        return True
    va, vg = math_value(a), math_value(g)
    if va is not None and vg is not None:
        return math.isclose(float(va), float(vg), rel_tol=REL_TOL, abs_tol=1e-12)
    pa, pg = _parts(a), _parts(g)
    if pa is not None and pg is not None and len(pa) == len(pg) and (a[0], a[-1]) == (g[0], g[-1]):
        return all(math_equal(x, y) for x, y in zip(pa, pg))
    return False


def math_answer(completion: str) -> str:
    """The answer a completion gives under ``math``: extracted and normalised; "" when none."""
    raw = extract_math(completion)
    return normalise_math(raw) if raw is not None else ""


def _math_right(answer: str, gold: str) -> bool:
    return bool(answer) and math_equal(answer, gold)


# --- checkers and scores -----------------------------------------------------------------------

class Checker(NamedTuple):
    """How a task's completions are judged: `extract` maps a completion to its
    answer ("" for none; majority vote counts these), `is_right` judges an
    extracted answer against the gold one."""

    extract: Callable[[str], str]
    is_right: Callable[[str, str], bool]


CHECKERS: Dict[str, Checker] = {
    "first-line": Checker(first_line_answer, first_line_right),
    "math": Checker(math_answer, _math_right),
}


def score(completions: Sequence[str], gold: str, checker: str = "first-line") -> dict:
    """pass@1 (the fraction of right completions), pass@K (any right) and
    majority (the most frequent non-empty extracted answer is right; ties go
    to the answer seen first) of K completions of one item."""
    if checker not in CHECKERS:
        raise ValueError(f"checker: one of {sorted(CHECKERS)}, got {checker!r}")
    if not completions:
        raise ValueError("completions: at least one")
    extract, is_right = CHECKERS[checker]
    answers = [extract(c) for c in completions]
    right = [is_right(a, gold) for a in answers]
    votes = collections.Counter(a for a in answers if a)
    majority = votes.most_common(1)[0][0] if votes else ""
    return {"pass1": sum(right) / len(right), "passk": float(any(right)),
            "majority": float(bool(majority) and is_right(majority, gold))}
