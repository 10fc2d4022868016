"""Guards for the corrections of issue 19 in chapters 1 to 4 and the introduction.

Each test reads the sources as text (no build, no execution) and fails if a
statement that the issue corrected comes back; where it is simple it also checks
that the corrected wording is there. Each docstring names the source the text
now follows. Whitespace is collapsed first, so a guard does not depend on where
a line breaks.

(A ``book`` test starts the book's build when a session collects it; to run this
file alone, point SEQLAB_BOOK_HTML at any folder, the tests here never read it.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.book

REPO = Path(__file__).resolve().parents[2]


def text(path: str) -> str:
    """The file's text with every run of whitespace collapsed to one space."""
    return " ".join((REPO / path).read_text(encoding="utf-8").split())


def notebook_markdown(path: str) -> str:
    """The markdown cells of a notebook, joined, whitespace collapsed."""
    cells = json.loads((REPO / path).read_text(encoding="utf-8"))["cells"]
    return " ".join(
        " ".join("".join(c["source"]).split()) for c in cells if c["cell_type"] == "markdown"
    )


def test_1_bahdanau_concatenates_the_two_directions_the_course_sums_them():
    """Bahdanau et al. (2015), sec. 3.2: the annotation h_j concatenates the forward
    and the backward states; appendix A.2.2: s_0 = tanh(W_s h_1 of the backward RNN).
    The course adds them, and must say so instead of attributing the sum to them."""
    page = text("book/attention.md")
    assert not re.search(r"added,? as \{cite:t\}`bahdanau2015` did", page)
    assert "*concatenate* the two directions' states" in page
    assert "this course *adds* the two states" in page
    module = text("seqlab/attention.py")
    assert "the two directions are summed where they concatenate" in module
    assert not re.search(r"sharing their embedding, as in Bahdanau et al\. \(2015\)\.", module)


def test_4_the_written_question_on_reordering_assumes_the_bidirectional_encoder():
    """Every chapter-4 model uses seqlab.attention.BidirectionalEncoder (the checkpoints
    of seqlab.chapters.attention.PRESETS are AttentionSeq2Seq models)."""
    nb = notebook_markdown("solutions/attention/attention.ipynb")
    assert "strictly left to right" not in nb
    assert "left-to-right RNN" not in nb
    assert "reads the source in both directions" in nb


def test_7_length_penalty_names_the_simplification_and_wus_form():
    """Wu et al. (2016), sec. 7: lp(Y) = (5 + |Y|)^alpha / (5 + 1)^alpha, plus a coverage
    penalty; dividing by |y|^alpha is the common simplification, not theirs."""
    page = text("book/seq2seq.md")
    assert not re.search(r"to the power \$\\alpha\$ \{cite:p\}`wu2016`", page)
    assert r"\big((5 + |y|) / 6\big)^{\alpha}" in page
    assert "*coverage penalty*" in page
    module = text("seqlab/base/decoding.py")
    assert "1: the mean log-probability per token; Wu et al., 2016)" not in module
    assert "((5 + length) / 6) ** alpha" in module and "coverage penalty" in module


def test_9_induction_heads_are_not_the_mechanism_of_in_context_learning():
    """Olsson et al. (2022) give preliminary and indirect evidence that induction heads
    drive much of in-context learning (their abstract and sec. 1); chapter 6 says so."""
    intro = text("book/intro.md")
    assert not re.search(r"the mechanism of in-context learning", intro)
    assert "preliminary, indirect evidence" in intro


def test_10_luongs_three_scores_and_decoder_and_the_courses_dot_model():
    """Luong et al. (2015), sec. 3.1: scores dot, general and concat of the current
    target state h_t, the attentional vector tanh(W_c[c_t; h_t]); sec. 3.3: input
    feeding. The course's "dot" model is Bahdanau's decoder with a dot score."""
    page = text("book/attention.md")
    assert "{cite:t}`luong2015` simplified the relevance score" not in page
    assert "{cite:t}`luong2015` found that a plain *dot product* works as well" not in page
    for words in ("*general*", "*concat*", "*current* state", "*input feeding*"):
        assert words in page, words
    assert '"dot": "dot (Bahdanau\'s decoder)"' in page
    module = text("seqlab/attention.py")
    assert 'or "dot" (Luong et al., 2015)' not in module
    assert "(input feeding, their sec. 3.3)" in module


def test_11_the_adding_problem_is_le_et_al_s_variant():
    """Hochreiter & Schmidhuber (1997), experiment 4: values in [-1, 1], target
    0.5 + (X1 + X2) / 4; values in [0, 1] with the sum as target are the variant of
    Le et al. (2015) and Arjovsky et al. (2016)."""
    page = text("book/lstm_gru.md")
    assert not re.search(r"adding problem \{cite:p\}`hochreiter1997` each step carries", page)
    assert "{cite:t}`le2015`" in page and "{cite:t}`arjovsky2016`" in page
    assert "$[-1, 1]$ and asked for $0.5 + (X_1 + X_2)/4$" in page
    module = text("seqlab/chapters/lstm_gru.py")
    assert "A batch of the adding problem (Hochreiter & Schmidhuber, 1997)." not in module
    bib = text("book/references.bib")
    assert "@misc{le2015," in bib and "@inproceedings{arjovsky2016," in bib


def test_12_tanh_factors_shrink_per_factor_and_for_normal_w_only():
    """||diag(d) v|| <= ||v|| for 0 <= d <= 1, and ||prod diag(d_k) W^T|| <= rho^k when
    ||W||_2 = rho (W normal); a non-normal W breaks the comparison (Trefethen & Embree,
    2005, on non-normal transients). The page shows a nilpotent W where it fails."""
    page = text("book/rnn_gradients.md")
    assert "whose entries lie between 0 and 1: it can only shrink the gradient further" not in page
    assert "For a non-normal $W_{hh}$ that comparison fails" in page
    assert "W_nil.T @ D_mid @ W_nil.T" in page  # the computed counterexample


def test_14_the_hidden_size_is_h_and_the_claim_is_answered():
    """The notation page: D is the input size, H the hidden size. The belief "a recurrent
    network is more accurate if H is large" is answered by the chapter's own table."""
    notation = text("book/notation.md")
    assert "| `D` | input features" in notation and "| `H` | hidden size" in notation
    page = text("book/attention.md")
    assert "# D matters" not in page
    assert "a recurrent network is more accurate if its hidden size $H$ is large" in page
    assert "gains {glue:text}`gap_plain` points" in page
