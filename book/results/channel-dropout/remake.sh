#!/usr/bin/env bash
# Every committed record re-made on the authors' networks (channel dropout on the conv maps,
# conv_dropout=channel), the same grids as the element-wise records beside this folder.
# Run from the repository root; the same command resumes (finished runs are skipped, a killed
# run resumes from its last step). 375 runs; recorded cost on the element-wise network:
# digits 150 runs, 0.16 CPU hours; Fashion-MNIST 225 runs, 12.6 CPU hours (two workers on two
# cores: about 6.5 hours of wall time). Commit the records as they come.
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT=book/results/channel-dropout
RUN="nice -n 19 python -m dean_nb run --workers 2 --quiet --seeds 0-4"
NET="--override conv_dropout=channel"
DIGITS="$RUN --dataset digits --preset quick"
FMNIST="$RUN --dataset fashion-mnist --preset medium --out $OUT/fashion-mnist"

# digits (chapter 5): 150 runs
$DIGITS --strategies random,entropy,bald,coreset,dean,batchbald --epsilons 0,0.1,0.3 $NET --out $OUT/digits-quick/main
$DIGITS --strategies random+denoise,entropy+denoise,bald+denoise,coreset+denoise,dean+denoise,batchbald+denoise --epsilons 0.3 $NET --out $OUT/digits-quick/main
$DIGITS --strategies dean,bald,random --epsilons 0,0.3 $NET epochs=20 --out $OUT/digits-quick/epochs20

# Fashion-MNIST, chapter 6: 105 runs
$FMNIST --strategies random,entropy,bald,coreset,dean,dean+denoise,random+denoise --epsilons 0,0.1,0.3 $NET
# chapter 7: 120 runs
$FMNIST --strategies power-bald,softmax-bald,badge --epsilons 0,0.3 $NET
$FMNIST --strategies random,bald,dean,power-bald,random+denoise,bald+denoise,dean+denoise,power-bald+denoise --noise pairflip --epsilons 0.3 $NET
for beta in 10 100 1000; do
  $FMNIST --strategies dean --epsilons 0,0.3 $NET "strategy_options={\"beta\": $beta}"
done
$FMNIST --strategies dean --epsilons 0 $NET beta_scale=1
$FMNIST --strategies dean --epsilons 0 $NET beta_scale=0.0625
$FMNIST --strategies batchbald --epsilons 0,0.3 $NET
