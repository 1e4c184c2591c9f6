"""Noisy labellers (paper section 3, eq. 1; chapter "Problem formulation").

A channel matrix ``T`` of shape ``(K, K)`` holds ``T[i, j] = p(y' = i | y = j)``: column ``j``
is the distribution of the label the oracle returns when the true class is ``j``, so every
column lies on the simplex (columns sum to 1).
"""

from __future__ import annotations

import math

import torch

from dean_nb.runtime import GeneratorLike, make_generator, purpose_seed
from dean_nb.validation import check_float_range, check_int_range, check_label_range

__all__ = [
    "COLUMN_SUM_ATOL",
    "NoisyOracle",
    "RelabellingOracle",
    "channel_information_bits",
    "check_channel",
    "columns_off_one",
    "empirical_channel",
    "majority_vote",
    "pairflip_channel",
    "seeded_vote",
    "symmetric_channel",
    "symmetric_information_bits",
    "wrong_label_chi2",
]


def symmetric_channel(num_classes: int, epsilon: float) -> torch.Tensor:
    """The K-ary symmetric channel (eq. 1): keep the label with probability ``1 - epsilon``,
    otherwise flip it to one of the other ``K - 1`` classes uniformly.

    Returns a float64 ``(K, K)`` column-stochastic matrix. ``epsilon`` must lie in ``[0, 1)``.
    """
    k = check_int_range("num_classes", num_classes, 2)
    eps = check_float_range("epsilon", epsilon, 0.0, 1.0, high_inclusive=False)
    matrix = torch.full((k, k), eps / (k - 1), dtype=torch.float64)
    matrix.fill_diagonal_(1.0 - eps)
    return matrix


def pairflip_channel(num_classes: int, epsilon: float) -> torch.Tensor:
    """The pair-flip channel: class ``j`` is reported as ``j + 1 mod K`` with probability
    ``epsilon`` and kept otherwise, a labeller who confuses each class with one neighbour.

    ``T[(j + 1) % K, j] = epsilon`` and ``T[j, j] = 1 - epsilon``: the transpose of the
    row-stochastic ``P`` of Co-teaching's ``noisify_pairflip`` (Han et al., 2018). Returns a
    float64 ``(K, K)`` column-stochastic matrix. ``epsilon`` must lie in ``[0, 1)``.
    """
    k = check_int_range("num_classes", num_classes, 2)
    eps = check_float_range("epsilon", epsilon, 0.0, 1.0, high_inclusive=False)
    classes = torch.arange(k)
    matrix = torch.zeros((k, k), dtype=torch.float64)
    matrix[classes, classes] = 1.0 - eps
    matrix[(classes + 1) % k, classes] = eps  # K >= 2: never the diagonal
    return matrix


#: How far a channel's column may sum from 1: an absolute tolerance on the exact
#: (``math.fsum``) sum. The one column-sum rule, :func:`columns_off_one`, used by
#: :func:`check_channel` and :func:`dean_nb.problem.noise.check_channel_matrix`.
COLUMN_SUM_ATOL = 1e-6


def columns_off_one(matrix: torch.Tensor, atol: float = COLUMN_SUM_ATOL) -> list[tuple[int, float]]:
    """The columns of a ``(K, K)`` matrix that do not sum to 1: ``(j, sum)`` pairs.

    Column ``j`` is off when its exact sum (``math.fsum`` of its float64 entries) lies more
    than ``atol`` from 1 (a NaN sum is off). Pass ``matrix.T`` to test the rows.
    """
    columns = torch.as_tensor(matrix, dtype=torch.float64).T.tolist()
    sums = [math.fsum(column) for column in columns]
    return [(j, total) for j, total in enumerate(sums) if not abs(total - 1.0) <= atol]


def check_channel(matrix: torch.Tensor, *, atol: float = COLUMN_SUM_ATOL) -> torch.Tensor:
    """Validate a channel matrix: square, finite, non-negative, every column summing to 1
    within ``atol`` (:func:`columns_off_one`). Returns it as float64."""
    if not isinstance(matrix, torch.Tensor):
        matrix = torch.as_tensor(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 2:
        raise ValueError(
            f"matrix must be square (K, K) with K >= 2, got shape {tuple(matrix.shape)}"
        )
    matrix = matrix.to(torch.float64)
    if not torch.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("matrix entries must be finite and lie in [0, 1]")
    if columns_off_one(matrix, atol):
        col_sums = matrix.sum(dim=0)
        raise ValueError(
            "matrix must be column-stochastic (T[i, j] = p(y'=i | y=j), each column summing to 1); "
            f"column sums are {[round(v, 4) for v in col_sums.tolist()]}"
        )
    return matrix


class NoisyOracle:
    """An oracle that returns labels passed through a noisy channel.

    Args:
        matrix: ``(K, K)`` column-stochastic channel, ``matrix[i, j] = p(y'=i | y=j)``.
        seed: seed or ``torch.Generator`` fixing every draw.
    """

    def __init__(self, matrix: torch.Tensor, seed: GeneratorLike = None) -> None:
        self.matrix = check_channel(matrix)
        self.num_classes = int(self.matrix.shape[0])
        self.generator = make_generator(seed)

    def label(self, y_true: torch.Tensor) -> torch.Tensor:
        """Noisy labels for true labels ``y_true`` of shape ``(N,)``; returns ``(N,)`` int64."""
        y = torch.as_tensor(y_true)
        if y.ndim != 1:
            raise ValueError(f"y_true must have shape (N,), got {tuple(y.shape)}")
        if y.dtype.is_floating_point or y.dtype == torch.bool:
            raise TypeError(f"y_true must hold integer class labels, got dtype {y.dtype}")
        if y.numel() == 0:
            return y.to(torch.int64).clone()
        check_label_range("y_true", y, self.num_classes)
        columns = self.matrix.T[y.cpu().long()]  # (N, K): p(y' | y) for each item
        noisy = torch.multinomial(columns, 1, generator=self.generator).squeeze(1)
        return noisy.to(y.device)


class RelabellingOracle:
    """The simulated oracle asked again about images it has answered (issue 22's premise test).

    The paper takes the noise to be *resolute*: asking again repeats the mistake. Real
    annotators sit between that and a fresh draw at every query (a confusing image against a
    slip). Here a share ``memory`` of the images repeat themselves: image ``i`` does with
    probability ``memory`` (one Bernoulli draw per image from the generator of purpose
    ``"oracle-memory"``; none is drawn at ``memory = 1``). The first answer to every image is
    ``first_answers[i]``, the oracle's answer drawn up front as without re-labelling. A later
    answer repeats it for an image that repeats itself; for the others, the ``r``-th answer
    (``r >= 1`` earlier answers) is a fresh draw from the channel's column of the true class,
    from a generator of its own (purpose ``"oracle:{i}:{r}"``), so whichever strategy asks,
    the ``r``-th answer to image ``i`` is the same: common random numbers.

    Args:
        matrix: ``(K, K)`` column-stochastic channel, ``matrix[i, j] = p(y'=i | y=j)``.
        first_answers: ``(N,)`` the oracle's first answer to every image.
        y_true: ``(N,)`` the true classes.
        memory: share of images whose answer repeats, in ``[0, 1]``.
        seed: the run's seed (the purposes above are derived from it).
    """

    def __init__(
        self,
        matrix: torch.Tensor,
        first_answers: torch.Tensor,
        y_true: torch.Tensor,
        memory: float,
        seed: int,
    ) -> None:
        self.matrix = check_channel(matrix)
        self.num_classes = k = int(self.matrix.shape[0])
        self.memory = check_float_range("memory", memory, 0.0, 1.0)
        first = torch.as_tensor(first_answers).reshape(-1).to("cpu", torch.int64)
        truth = torch.as_tensor(y_true).reshape(-1).to("cpu", torch.int64)
        if first.shape != truth.shape:
            raise ValueError(
                f"first_answers and y_true must have one shape (N,), got {tuple(first.shape)} "
                f"and {tuple(truth.shape)}"
            )
        check_label_range("first_answers", first, k)
        check_label_range("y_true", truth, k)
        self.first_answers, self.y_true = first, truth
        self.seed = check_int_range("seed", seed, 0)
        n = first.numel()
        if self.memory == 1.0:
            self.repeats_N = torch.ones(n, dtype=torch.bool)
        else:
            gen = make_generator(purpose_seed(self.seed, "oracle-memory"))
            self.repeats_N = torch.rand(n, generator=gen, dtype=torch.float64) < self.memory

    def answer(self, image: int, asked_before: int) -> int:
        """The answer to ``image`` (an index into the training split) asked for the
        ``asked_before + 1``-th time."""
        image = check_int_range("image", image, 0, self.first_answers.numel() - 1)
        asked_before = check_int_range("asked_before", asked_before, 0)
        if asked_before == 0 or bool(self.repeats_N[image]):
            return int(self.first_answers[image])
        gen = make_generator(purpose_seed(self.seed, f"oracle:{image}:{asked_before}"))
        column = self.matrix[:, int(self.y_true[image])]
        return int(torch.multinomial(column, 1, generator=gen))

    def replay(
        self, answers_by_image: dict[int, list[int]], relabelled: list[int], given: list[int]
    ) -> None:
        """Check a step's recorded re-labels against this oracle, in order.

        ``answers_by_image`` maps every image acquired so far to its answers, oldest first; each
        re-label's answer is appended to its image's list in place. ``relabelled`` and ``given``
        are the step's re-labelled images and the answers recorded for them, one per image.
        ``ValueError`` says which check failed: not one answer per image, an image never
        acquired, or an answer this oracle would not give to that question.
        """
        if len(given) != len(relabelled):
            raise ValueError("its re-labels are not one answer per image")
        for image, answer in zip(relabelled, given, strict=True):
            if image not in answers_by_image:
                raise ValueError("it re-labels an image it never acquired")
            answers = answers_by_image[image]
            if self.answer(image, len(answers)) != answer:
                raise ValueError("its re-labels are not the oracle's answers")
            answers.append(int(answer))

    def vote(self, image: int, answers: list[int]) -> int:
        """The label ``image`` trains on: :func:`seeded_vote` of its ``answers``."""
        return seeded_vote(answers, image=image, seed=self.seed, num_classes=self.num_classes)


def seeded_vote(answers: list[int], *, image: int, seed: int, num_classes: int) -> int:
    """The label an image trains on: the majority of its ``answers``; a tie is broken uniformly
    at random by a generator of the run's ``seed``, the image and its number of answers
    (purpose ``"vote:{image}:{n}"``), so the same answers give the same label in every run of
    a seed. One answer is its own label (nothing is drawn)."""
    if not answers:
        raise ValueError(f"image {image} has no answers to vote on")
    if len(answers) == 1:
        return int(answers[0])
    votes_V_1 = torch.tensor(answers, dtype=torch.int64)[:, None]
    gen = make_generator(purpose_seed(seed, f"vote:{image}:{len(answers)}"))
    return int(majority_vote(votes_V_1, num_classes, gen)[0])


def empirical_channel(
    y_true: torch.Tensor, y_noisy: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts and empirical channel of the answers ``y_noisy (N,)`` to ``y_true (N,)``.

    Returns ``(counts, channel)``, both float64 ``(K, K)``: ``counts[i, j]`` is the number of
    answers ``i`` to a true ``j``, and ``channel`` is ``counts`` normalised by column (the
    orientation of :func:`symmetric_channel`; a class that never occurs gives a NaN column).
    Chapter 1 compares it with eq. (ksc-channel).
    """
    k = check_int_range("num_classes", num_classes, 2)
    check_label_range("y_true", y_true, k)
    check_label_range("y_noisy", y_noisy, k)
    if y_true.shape != y_noisy.shape or y_true.ndim != 1:
        raise ValueError("y_true and y_noisy must have the same shape (N,)")
    counts = torch.bincount(y_noisy * k + y_true, minlength=k * k).reshape(k, k).double()
    return counts, counts / counts.sum(0, keepdim=True)


def wrong_label_chi2(counts: torch.Tensor) -> tuple[float, int]:
    """Chi-squared statistic that the wrong answers of every class are uniform.

    ``counts (K, K)`` as returned by :func:`empirical_channel`. For every true class ``j`` the
    ``K - 1`` off-diagonal counts of column ``j`` are compared with their mean; the statistics
    are summed over the columns. Returns ``(chi2, dof)`` with ``dof = K (K - 2)``. Under the
    K-ary symmetric channel it is approximately chi-squared with ``dof`` degrees of freedom.
    """
    k = counts.shape[0]
    if counts.ndim != 2 or counts.shape[1] != k or k < 3:
        raise ValueError(f"counts must be (K, K) with K >= 3, got {tuple(counts.shape)}")
    off = ~torch.eye(k, dtype=torch.bool)
    wrong_K_Km1 = counts.double().T[off.T].reshape(k, k - 1)  # row j: wrong answers to j
    expected = wrong_K_Km1.mean(1, keepdim=True)
    chi2 = ((wrong_K_Km1 - expected) ** 2 / expected).sum().item()
    return chi2, k * (k - 2)


def channel_information_bits(channel: torch.Tensor) -> float:
    """Mutual information ``I(y; y~)`` in bits of a channel ``(K, K)`` for a uniform ``y``.

    ``channel[i, j] = p(y~ = i | y = j)``, validated by :func:`check_channel`. Chapter 1 uses
    it to count the information a noisy label carries (0 to ``log2 K``).
    """
    channel = check_channel(channel).double()
    joint = channel / channel.shape[1]  # p(y~ = i, y = j)
    p_out, p_in = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    terms = joint * torch.log2(joint / (p_out * p_in))
    # I >= 0: clip the rounding error of a useless channel (no "-0.000")
    bits = float(torch.where(joint > 0, terms, 0.0).sum())
    return bits if bits > 0 else 0.0


def symmetric_information_bits(num_classes: int, epsilon: float) -> float:
    """Closed form of :func:`channel_information_bits` for the K-ary symmetric channel.

    ``log2 K - H2(eps) - eps log2 (K - 1)`` bits, ``H2`` the binary entropy (its capacity).
    """
    k = check_int_range("num_classes", num_classes, 2)
    eps = check_float_range("epsilon", epsilon, 0.0, 1.0)
    h2 = 0.0 if eps in (0.0, 1.0) else -eps * math.log2(eps) - (1 - eps) * math.log2(1 - eps)
    return math.log2(k) - h2 - eps * math.log2(k - 1)


def majority_vote(
    votes_V_N: torch.Tensor, num_classes: int, generator: GeneratorLike = None
) -> torch.Tensor:
    """Most frequent label of every column of ``votes_V_N (V, N)``, ``(N,)`` int64.

    Ties are broken uniformly at random with ``generator`` (a jitter under 1 added to the
    counts never reorders different counts). Chapter 1 votes over V noisy labellers.
    """
    k = check_int_range("num_classes", num_classes, 2)
    if votes_V_N.ndim != 2 or votes_V_N.shape[0] == 0:
        raise ValueError(f"votes must be (V, N) with V >= 1, got {tuple(votes_V_N.shape)}")
    check_label_range("votes", votes_V_N.flatten(), k)
    counts_N_K = torch.nn.functional.one_hot(votes_V_N, k).sum(0).double()
    gen = make_generator(generator)
    jitter = 0.5 * torch.rand(counts_N_K.shape, generator=gen, dtype=torch.float64)
    return (counts_N_K + jitter).argmax(1)
