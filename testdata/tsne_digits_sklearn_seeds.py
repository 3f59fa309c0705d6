"""Regenerates tsne_digits_sklearn_seeds.json: scikit-learn's Barnes-Hut
t-SNE on the digits data with random initialisation for 30 seeds, at the
settings of tsne_digits_sklearn.json (perplexity 30, angle 0.5, 1,000
iterations, learning rate "auto"), plus one PCA run to show the version
matches the golden file.

Run with Debian 12's python3-sklearn (scikit-learn 1.2.1), one thread:

    OMP_NUM_THREADS=1 /usr/bin/python3 testdata/tsne_digits_sklearn_seeds.py ../shared/golden/digits.csv > testdata/tsne_digits_sklearn_seeds.json
"""
import csv
import json
import sys

import numpy as np
import sklearn
from sklearn.manifold import TSNE

rows = list(csv.reader(open(sys.argv[1])))[1:]
X = np.array(rows, dtype=float)[:, 1:]


def kl(init, seed):
    t = TSNE(n_components=2, perplexity=30, angle=0.5, n_iter=1000,
             learning_rate="auto", init=init, random_state=seed,
             method="barnes_hut")
    t.fit_transform(X)
    return float(t.kl_divergence_)


out = {
    "sklearn_version": sklearn.__version__,
    "pca": kl("pca", 0),
    "random_seeds": list(range(30)),
    "random": [kl("random", s) for s in range(30)],
}
json.dump(out, sys.stdout, indent=1)
print()
