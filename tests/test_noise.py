"""The oracle's channel of a run (dean_nb.problem.noise, ``ExperimentConfig.noise``).

Properties: the pair-flip channel sends class j to j+1 mod K at rate epsilon and nowhere else;
a matrix file's channel is the oracle's, as given; run keys are unchanged for the symmetric
channel and depend on a matrix's entries, not on its file; every malformed file is refused when
the configuration is built, naming the file and the problem; records keep the channel used,
replay compares it, and tables never average two channels.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from dean_nb.analysis.results import load_results, summary_table
from dean_nb.experiment import replay
from dean_nb.experiment.config import ExperimentConfig, run_key
from dean_nb.experiment.loop import oracle_answers, run_active_learning
from dean_nb.problem.datasets import load_dataset
from dean_nb.problem.noise import flip_rate, matrix_digest, read_channel_file
from dean_nb.problem.oracle import (
    NoisyOracle,
    empirical_channel,
    pairflip_channel,
    symmetric_channel,
)
from dean_nb.runtime import purpose_seed

K = 10  # digits
_IDENTITY_TENSOR = torch.eye(K, dtype=torch.float64)
_IDENTITY = _IDENTITY_TENSOR.tolist()


def _dirichlet_channel(seed: int, k: int = K) -> list[list[float]]:
    """A random column-stochastic matrix with a heavy diagonal, as a list of lists."""
    rng = np.random.default_rng(seed)
    cols = rng.dirichlet(np.ones(k), size=k) * 0.4 + np.eye(k) * 0.6  # row j: column j of T
    return cols.T.tolist()


def _write(path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


# --------------------------------------------------------------------------- pair flip


@pytest.mark.parametrize("k, eps", [(2, 0.3), (10, 0.0), (10, 0.45)])
def test_pairflip_channel_moves_mass_to_the_next_class_only(k, eps):
    t = pairflip_channel(k, eps)
    expected = torch.zeros(k, k, dtype=torch.float64)
    for j in range(k):
        expected[j, j] = 1 - eps
        expected[(j + 1) % k, j] += eps
    torch.testing.assert_close(t, expected, rtol=0, atol=0)
    if k == 2:  # with two classes the pair flip is the symmetric channel
        torch.testing.assert_close(t, symmetric_channel(2, eps), rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"epsilon must lie in \[0.0, 1.0\)"):
        pairflip_channel(k, 1.0)


def test_pairflip_answers_land_on_the_next_class_at_rate_epsilon():
    eps, n_per_class = 0.3, 20_000
    y = torch.arange(K * n_per_class) % K
    noisy = NoisyOracle(pairflip_channel(K, eps), seed=0).label(y)
    counts, _ = empirical_channel(y, noisy, K)
    for j in range(K):
        column = counts[:, j]
        to_next = int(column[(j + 1) % K])
        # class j lands on j+1 with probability eps (a two-sided binomial test per class) ...
        assert stats.binomtest(to_next, n_per_class, eps).pvalue > 1e-3 / K, (j, to_next)
        # ... and nowhere but j and j+1
        assert column.sum() - column[j] - to_next == 0


# --------------------------------------------------------------------------- matrix files


def test_a_matrix_files_channel_is_the_oracles_as_given(tmp_path, chisquare_p):
    matrix = _dirichlet_channel(0)
    config = ExperimentConfig(noise=_write(tmp_path / "t.json", matrix), strategy="random")
    assert config.noise == matrix  # kept by value, not by path
    assert torch.equal(config.oracle_channel(), torch.tensor(matrix, dtype=torch.float64))
    assert config.epsilon == pytest.approx(1 - np.trace(np.array(matrix)) / K, abs=1e-12)

    # the loop's oracle draws through exactly this matrix ...
    y_train = load_dataset("digits").y_train
    expected = NoisyOracle(torch.tensor(matrix), seed=purpose_seed(config.seed, "oracle"))
    assert torch.equal(oracle_answers(config), expected.label(y_train))

    # ... and its answers follow the matrix's columns (chi-square per true class)
    n_per_class = 5_000
    y = torch.arange(K * n_per_class) % K
    noisy = NoisyOracle(config.oracle_channel(), seed=1).label(y)
    counts, _ = empirical_channel(y, noisy, K)
    for j in range(K):
        probs = np.array([matrix[i][j] for i in range(K)])
        assert chisquare_p(counts[:, j].numpy(), probs) > 1e-3 / K, j


def test_a_matrix_epsilon_is_its_flip_rate(tmp_path):
    matrix = pairflip_channel(K, 0.2).tolist()
    path = _write(tmp_path / "t.json", matrix)
    assert flip_rate(matrix) == pytest.approx(0.2, abs=1e-15)
    # 0 (the default) or the flip rate itself: the config holds the flip rate
    assert ExperimentConfig(noise=path).epsilon == 0.2
    assert ExperimentConfig(noise=path, epsilon=0.2).epsilon == 0.2
    with pytest.raises(ValueError, match=r"epsilon must be 0 or 0.2 with a noise matrix.*got 0.3"):
        ExperimentConfig(noise=path, epsilon=0.3)
    # a matrix that always errs has epsilon 1, a value the named channels refuse
    always_wrong = pairflip_channel(K, 0.0).roll(1, dims=0).tolist()
    assert ExperimentConfig(noise=always_wrong).epsilon == 1.0
    with pytest.raises(ValueError, match=r"epsilon must lie in \[0.0, 1.0\)"):
        ExperimentConfig(noise="pairflip", epsilon=1.0)


# --------------------------------------------------------------------------- run keys


def test_run_keys_of_symmetric_configs_are_unchanged_and_other_channels_differ(tmp_path):
    # the keys the package gave before the noise field existed: stored records are named by them
    # (the element-wise network of those records; the authors' network adds its field)
    default = ExperimentConfig.preset("digits", "quick", strategy="dean", conv_dropout="element")
    assert run_key(default) == "digits_dean_eps0_seed0_22644290f5"
    noisy = ExperimentConfig.preset(
        "digits", "quick", strategy="bald", epsilon=0.3, denoise=True, seed=3
    ).replace(conv_dropout="element")
    assert run_key(noisy) == "digits_bald+denoise_eps0.3_seed3_9b90b307c0"
    assert run_key(noisy.replace(noise="symmetric")) == run_key(noisy)
    assert "noise" not in default.computed_fields()

    pairflip = noisy.replace(noise="pairflip")
    assert run_key(pairflip).startswith("digits_bald+denoise_pairflip-eps0.3_seed3_")
    assert run_key(pairflip) != run_key(noisy)
    assert pairflip.computed_fields()["noise"] == "pairflip"


def test_a_matrix_run_key_depends_on_the_entries_not_the_file(tmp_path):
    matrix = _dirichlet_channel(1)
    a = _write(tmp_path / "a.json", matrix)
    # the same matrix written otherwise: another name and folder, indented
    (tmp_path / "sub").mkdir()
    b = tmp_path / "sub" / "b.json"
    b.write_text(json.dumps(matrix, indent=4))
    key_a = run_key(ExperimentConfig(noise=a))
    assert key_a == run_key(ExperimentConfig(noise=str(b))) == run_key(ExperimentConfig(noise=b))
    assert key_a == run_key(ExperimentConfig(noise=matrix))
    assert f"_matrix-{matrix_digest(matrix)}-eps" in key_a
    # 1 and 1.0 are the same probability
    ints = _write(tmp_path / "ints.json", torch.eye(K, dtype=torch.int64).tolist())
    assert run_key(ExperimentConfig(noise=ints)) == run_key(ExperimentConfig(noise=_IDENTITY))
    assert run_key(ExperimentConfig(noise=ints)) != run_key(ExperimentConfig())

    # an edited file names a new run; a record's config re-makes the key without the file
    config = ExperimentConfig(noise=a)
    edited = copy.deepcopy(matrix)
    edited[0][0], edited[1][0] = edited[0][0] - 0.01, edited[1][0] + 0.01
    _write(tmp_path / "a.json", edited)
    assert run_key(ExperimentConfig(noise=a)) != key_a
    (tmp_path / "a.json").unlink()
    restored = ExperimentConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config and run_key(restored) == key_a


# --------------------------------------------------------------------------- bad files


def _matrix_with(i: int, j: int, value) -> list:
    matrix = pairflip_channel(K, 0.2).tolist()
    matrix[i][j] = value
    return matrix


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("[[1, 0], [0", "is not valid JSON"),
        (
            '{"T": [[1]]}',
            "must hold a 10 x 10 list of lists (T[i][j] = p(answer i | true class j), K = 10); got an object",
        ),
        ("[1, 2, 3]", "must hold a 10 x 10 list of lists"),
        (json.dumps(torch.eye(3).tolist()), "holds 3 rows of length 3; it must hold a 10 x 10"),
        (json.dumps([*_IDENTITY[:9], _IDENTITY[9][:8]]), "holds 10 rows of length 8, 10"),
        (json.dumps(_matrix_with(2, 3, "0.1")), "entry [2][3] is '0.1', not a number"),
        (json.dumps(_matrix_with(0, 0, True)), "entry [0][0] is True, not a number"),
        (json.dumps(_matrix_with(4, 4, None)), "entry [4][4] is None, not a number"),
        (json.dumps(_matrix_with(1, 1, math.nan)), "entry [1][1] is nan; entries must be finite"),
        (json.dumps(_matrix_with(1, 1, math.inf)), "entry [1][1] is inf; entries must be finite"),
        (json.dumps(_matrix_with(5, 4, -0.2)), "entry [5][4] is -0.2; probabilities must be >= 0"),
        (
            json.dumps(_matrix_with(7, 7, 0.7)),
            "column 7 sums to 0.9, not 1 (1 of 10 columns off by more than 1e-06)",
        ),
    ],
)
def test_every_malformed_file_is_refused_naming_the_file_and_problem(content, message, tmp_path):
    path = tmp_path / "channel.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError) as caught:
        ExperimentConfig(noise=str(path))
    text = str(caught.value)
    assert text.startswith(f"noise file {path}")
    assert message in text, text


def test_a_transposed_matrix_gets_a_hint_and_a_folder_or_name_is_refused(tmp_path):
    row_stochastic = np.array(_dirichlet_channel(2)).T
    assert not np.allclose(row_stochastic.sum(0), 1)
    path = _write(tmp_path / "rows.json", row_stochastic.tolist())
    with pytest.raises(ValueError, match="its rows do: write the transpose"):
        read_channel_file(path, K)
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(ValueError, match=r"noise file .*dir\.json cannot be read"):
        ExperimentConfig(noise=str(tmp_path / "dir.json"))
    with pytest.raises(ValueError, match="noise must be one of symmetric, pairflip, or the path"):
        ExperimentConfig(noise="pair-flip")
    with pytest.raises(TypeError, match="noise must be a channel name"):
        ExperimentConfig(noise=0.3)
    # a matrix for another dataset's K: digits has 10 classes
    with pytest.raises(ValueError, match="noise matrix holds 3 rows"):
        ExperimentConfig(noise=torch.eye(3).tolist())


# --------------------------------------------------------------------------- records


@pytest.fixture(scope="module")
def pairflip_run(tiny):
    config = tiny(strategy="random", noise="pairflip", epsilon=0.5, acquisition_size=200)
    return run_active_learning(config)


def test_a_pairflip_record_keeps_its_channel_and_its_answers_follow_it(pairflip_run):
    assert pairflip_run.true_channel == pairflip_channel(K, 0.5).tolist()
    true = torch.tensor([t for s in pairflip_run.steps for t in s.true_labels])
    noisy = torch.tensor([n for s in pairflip_run.steps for n in s.noisy_labels])
    flipped = noisy != true
    assert torch.equal(noisy[flipped], (true[flipped] + 1) % K)  # only ever to the next class
    assert stats.binomtest(int(flipped.sum()), true.numel(), 0.5).pvalue > 1e-3


def test_replay_compares_the_recorded_channel(pairflip_run):
    replay.check_replay(pairflip_run, copy.deepcopy(pairflip_run), "exact")
    symmetric = copy.deepcopy(pairflip_run)
    symmetric.true_channel = symmetric_channel(K, 0.5).tolist()
    with pytest.raises(replay.ReplayMismatch, match="the oracle's channels differ"):
        replay.check_replay(symmetric, pairflip_run, "tolerant")


# --------------------------------------------------------------------------- tables


def test_load_results_never_averages_two_channels(tmp_path, write_record):
    skip_two = _IDENTITY_TENSOR * 0.7 + _IDENTITY_TENSOR.roll(2, dims=0) * 0.3  # j -> j+2
    matrix = skip_two.tolist()
    write_record(tmp_path, 0.9, strategy="dean", epsilon=0.3)
    write_record(tmp_path, 0.7, strategy="dean", epsilon=0.3, seed=1)  # a repeat: averaged
    write_record(tmp_path, 0.5, strategy="dean", epsilon=0.3, noise="pairflip")
    write_record(tmp_path, 0.4, strategy="dean", noise=matrix)  # epsilon: its flip rate, 0.3
    write_record(tmp_path, 0.6, strategy="dean", epsilon=0.1, noise="pairflip")  # alone
    df = load_results(tmp_path)
    shown = f"dean [noise=matrix-{matrix_digest(matrix)}]"
    assert set(df.loc[df["epsilon"] == 0.3, "method"]) == {
        "dean [noise=symmetric]",
        "dean [noise=pairflip]",
        shown,
    }
    assert set(df.loc[df["epsilon"] == 0.1, "method"]) == {"dean"}
    summary = summary_table(df).set_index(["epsilon", "method", "n_labels"])
    for method, mean, n in (
        ("dean [noise=symmetric]", 0.8, 2),
        ("dean [noise=pairflip]", 0.5, 1),
        (shown, 0.4, 1),
    ):
        assert summary.loc[(0.3, method, 20), "mean"] == pytest.approx(mean)
        assert summary.loc[(0.3, method, 20), "n"] == n
