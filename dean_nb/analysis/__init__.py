"""Reading records: the results frame, the paper's claims, and the book's other verdicts.

- :mod:`~dean_nb.analysis.results`: the tidy frame of a results folder, labels, tables.
- :mod:`~dean_nb.analysis.claims`: the paper's three claims as per-seed paired gaps.
- :mod:`~dean_nb.analysis.tables`: the results chapters' other tables.
- :mod:`~dean_nb.analysis.head_to_head`: one method against its rivals, seed by seed.
- :mod:`~dean_nb.analysis.channel_fit`: a learned channel against the oracle's.
- :mod:`~dean_nb.analysis.relabelling`: the labels a re-labelling run trained on, step by step.
- :mod:`~dean_nb.analysis.provenance_report`: where and how records were made.
- :mod:`~dean_nb.analysis.agreement`, :mod:`~dean_nb.analysis.pick_stats`: two models' scores
  compared; the sampler's picks (perplexity, chi-square fit, diversity).

The names of ``results`` and ``claims`` are re-exported here (``analysis.load_results``,
``analysis.runs_frame``).
"""

from dean_nb.analysis.claims import (
    PAPER_MNIST_ACCURACY,
    PAPER_MNIST_SIGMA,
    Claim,
    PairedGap,
    claims_table,
    format_claims,
    paired_gap,
    paper_claims,
    paper_gap,
    settled_against,
    verdict,
)
from dean_nb.analysis.results import (
    RESULT_COLUMNS,
    SkippedRecordWarning,
    config_id,
    format_summary,
    label_against,
    load_results,
    runs_frame,
    summary_table,
    uncertainty_table,
)

__all__ = [
    "PAPER_MNIST_ACCURACY",
    "PAPER_MNIST_SIGMA",
    "RESULT_COLUMNS",
    "Claim",
    "PairedGap",
    "SkippedRecordWarning",
    "claims_table",
    "config_id",
    "format_claims",
    "format_summary",
    "label_against",
    "load_results",
    "paired_gap",
    "paper_claims",
    "paper_gap",
    "runs_frame",
    "settled_against",
    "summary_table",
    "uncertainty_table",
    "verdict",
]
