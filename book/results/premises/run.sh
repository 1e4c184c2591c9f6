#!/usr/bin/env bash
# The grid of chapter "The paper's premises" (issue 22): Fashion-MNIST, the `medium` preset, on
# the authors' network (conv_dropout="channel", the default), five seeds. Run from the
# repository root; the same command resumes (finished runs are skipped, a killed run resumes
# from its last step).
#
# Runs and cost, written down before it starts (0.05 CPU h a plain `medium` run on two AMD
# EPYC cores; forward correction trains every step after the first twice; the re-labelling
# strategies see the acquired images through out-of-sample predictions, as ActiveLab assumes:
# 4-fold cross-validation, four more trainings a step):
#   epsilon 0.3, oracle memory 1: dean+forward                               5 runs, ~0.4 CPU h
#     (random, dean and dean+denoise at epsilon 0.3 are chapter 6's runs in
#     book/results/channel-dropout/fashion-mnist: the same configuration and run key. None of
#     them asks again, so the oracle's memory cannot change them: one memory is enough)
#   epsilon 0.3, oracle memory 1, 0.5, 0: relabel-majority, activelab      30 runs, ~3.5 CPU h
#   epsilon 0: typiclust on the model's features and on PCA of the pixels  10 runs, ~0.6 CPU h
# In all 45 runs, estimated at about 4.5 CPU hours (about 2.3 hours of wall time with two
# workers). Measured as it ran (the median step times added up, two runs at a time on two
# cores): dean+forward 8.4 minutes a run, typiclust 5, relabel-majority 9.9, activelab 11.6
# (oracle memory 1), so the re-labelling loops take about 5.4 CPU hours, not 3.5, and the whole
# grid about 7.
# The short grids run first, the re-labelling loops last (memory 1 and 0 before 0.5).
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=book/results/premises/fashion-mnist
RUN="nice -n 19 python -m dean_nb run --workers 2 --quiet --seeds 0-4 --dataset fashion-mnist --preset medium --out $OUT"

$RUN --strategies dean+forward --epsilons 0.3
$RUN --strategies typiclust --epsilons 0
$RUN --strategies typiclust --epsilons 0 --override 'strategy_options={"embedding": "pca"}'
for memory in 1 0 0.5; do  # the two ends first: a partial grid answers question 1 sooner
  $RUN --strategies relabel-majority,activelab --epsilons 0.3 --oracle-memory $memory \
    --override relabel_folds=4
done
