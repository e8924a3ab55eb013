#!/usr/bin/env python3
"""Trains the 4-16-3 classifier whose weights examples/inference.cpp imports: "trained
elsewhere", here in plain Python (no NumPy), on three Gaussian blobs in 4 dimensions.

Writes into the directory given (default: beside this script):
  fc1.csv, fc2.csv  one file per layer: `in` rows of `out` weights (W is in x out, y = x W + b),
                    then one row with the `out` biases
  samples.csv       held-out samples, one per line: label, then the 4 features
  logits.csv        this script's logits for those samples, to check the import against

Run: python3 examples/data/train_tiny_mlp.py [DIR]
"""
import math
import os
import random
import sys

IN, HIDDEN, CLASSES = 4, 16, 3


def blobs(rng, n):
    centres = [(2.0, 0.0, -1.0, 0.5), (-1.5, 1.5, 1.0, -0.5), (0.0, -2.0, 0.5, 1.5)]
    data = []
    for i in range(n):
        label = i % CLASSES
        data.append((label, [c + rng.gauss(0.0, 0.8) for c in centres[label]]))
    rng.shuffle(data)
    return data


def forward(w1, b1, w2, b2, x):
    z = [sum(x[i] * w1[i][j] for i in range(IN)) + b1[j] for j in range(HIDDEN)]
    h = [max(v, 0.0) for v in z]
    y = [sum(h[i] * w2[i][k] for i in range(HIDDEN)) + b2[k] for k in range(CLASSES)]
    return z, h, y


def train(data, rng, epochs=200, lr=0.05):
    scale1, scale2 = math.sqrt(6.0 / IN), math.sqrt(6.0 / (HIDDEN + CLASSES))
    w1 = [[rng.uniform(-scale1, scale1) for _ in range(HIDDEN)] for _ in range(IN)]
    w2 = [[rng.uniform(-scale2, scale2) for _ in range(CLASSES)] for _ in range(HIDDEN)]
    b1, b2 = [0.0] * HIDDEN, [0.0] * CLASSES
    for _ in range(epochs):
        for label, x in data:  # plain SGD, one sample at a time
            z, h, y = forward(w1, b1, w2, b2, x)
            top = max(y)
            e = [math.exp(v - top) for v in y]
            dy = [v / sum(e) - (1.0 if k == label else 0.0) for k, v in enumerate(e)]
            dh = [sum(dy[k] * w2[i][k] for k in range(CLASSES)) if z[i] > 0 else 0.0
                  for i in range(HIDDEN)]
            for i in range(HIDDEN):
                for k in range(CLASSES):
                    w2[i][k] -= lr * h[i] * dy[k]
            for k in range(CLASSES):
                b2[k] -= lr * dy[k]
            for i in range(IN):
                for j in range(HIDDEN):
                    w1[i][j] -= lr * x[i] * dh[j]
            for j in range(HIDDEN):
                b1[j] -= lr * dh[j]
    return w1, b1, w2, b2


def write_rows(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(",".join("%.9g" % v for v in row) + "\n")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    rng = random.Random(7)
    train_set, held_out = blobs(rng, 300), blobs(rng, 30)
    w1, b1, w2, b2 = train(train_set, rng)
    write_rows(os.path.join(out, "fc1.csv"), w1 + [b1])
    write_rows(os.path.join(out, "fc2.csv"), w2 + [b2])
    write_rows(os.path.join(out, "samples.csv"), [[label] + x for label, x in held_out])
    # The logits of the weights as written (rounded to 9 digits), so the C++ side can match.
    def rounded(values):
        return [float("%.9g" % v) for v in values]
    w1, w2 = [rounded(r) for r in w1], [rounded(r) for r in w2]
    b1, b2 = rounded(b1), rounded(b2)
    logits = [forward(w1, b1, w2, b2, rounded(x))[2] for _, x in held_out]
    write_rows(os.path.join(out, "logits.csv"), logits)
    correct = sum(max(range(CLASSES), key=lambda k: y[k]) == label
                  for y, (label, _) in zip(logits, held_out))
    print("trained 4-16-3 on %d samples; held-out accuracy %d/%d" % (len(train_set), correct,
                                                                      len(held_out)))


if __name__ == "__main__":
    main()
