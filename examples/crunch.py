"""The walkthrough's job (README.md, Uploads): summarise a CSV of samples.

python3 crunch.py inputs/data.csv -> one line per numeric column: its
count, sum and mean. Standard library only, no network: it runs in a
local node's sandbox as it is.
"""
import csv
import sys


def main(path):
    with open(path, newline="") as table:
        rows = list(csv.DictReader(table))
    print(f"{len(rows)} rows")
    for column in ("reads", "gc"):
        values = [float(row[column]) for row in rows]
        print(f"{column}: sum {sum(values):g}, mean {sum(values) / len(values):.4g}")


if __name__ == "__main__":
    main(sys.argv[1])
