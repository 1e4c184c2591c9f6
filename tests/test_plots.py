"""Figures (dean_nb.plots): they draw the tidy frame's numbers and leave no global state."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from dean_nb import plots
from dean_nb.compare import load_results
from dean_nb.oracle import symmetric_channel


def test_plots_return_figures_without_global_state(tmp_path, fake_results):
    fake_results(tmp_path)
    df = load_results(tmp_path)
    before = plt.get_fignums()
    fig = plots.learning_curves(df)
    assert len(fig.axes) == 2  # one panel per epsilon
    assert {line.get_label() for line in fig.axes[0].lines} == {"dean (n=3)", "random (n=3)"}
    np.testing.assert_allclose(
        fig.axes[0].lines[0].get_ydata(), 100 * np.array([0.56, 0.66, 0.76]), rtol=1e-9
    )
    fig2 = plots.uncertainty_curves(df)
    true = symmetric_channel(10, 0.3)
    fig3 = plots.channel_heatmaps(true, torch.eye(10))
    assert len(fig3.axes[0].texts) == 100
    fig3.savefig(tmp_path / "channel.png")
    assert plt.get_fignums() == before and fig2 is not None
    with pytest.raises(ValueError, match="square"):
        plots.channel_heatmaps(torch.ones(2, 3), torch.ones(2, 3))
