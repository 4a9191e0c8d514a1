"""Stage `prepare`: split the measurements dataset into train and test sets.

A row goes to the test set when a stable hash of its id falls below
`prepare.test_fraction`, so the split never depends on row order or a seed."""

import hashlib

from common import params, read_rows, write_rows

settings = params("prepare")
rows = read_rows("data/measurements/measurements.csv")
fields = list(rows[0])


def in_test(row):
    digest = hashlib.sha256(row["id"].encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < settings["test_fraction"]


test = [row for row in rows if in_test(row)]
train = [row for row in rows if not in_test(row)]
write_rows("build/prepared/train.csv", train, fields)
write_rows("build/prepared/test.csv", test, fields)
print(f"prepare: {len(train)} train rows, {len(test)} test rows")
