"""Stage `evaluate`: predict the test set and write accuracy and recall."""

import json

from common import read_rows, write_json, write_rows

model = json.load(open("build/model.json", encoding="utf-8"))
scale, centroids = model["scale"], model["centroids"]


def predict(row):
    point = {n: (float(row[n]) - scale[n]["mean"]) / scale[n]["std"]
             for n in model["features"]}
    return min(centroids, key=lambda species: sum(
        (point[n] - centroids[species][n]) ** 2 for n in model["features"]))


rows = read_rows("build/prepared/test.csv")
predictions = [{"id": row["id"], "species": row["species"],
                "predicted": predict(row)} for row in rows]
write_rows("build/predictions.csv", predictions, ["id", "species", "predicted"])

hits = [p["species"] == p["predicted"] for p in predictions]
recall = {}
for species in sorted(centroids):
    mine = [p for p in predictions if p["species"] == species]
    recall[species] = round(sum(p["predicted"] == species for p in mine)
                            / max(len(mine), 1), 4)
accuracy = round(sum(hits) / max(len(hits), 1), 4)
write_json("build/metrics.json", {"accuracy": accuracy, "recall": recall})
print(f"evaluate: accuracy {accuracy} on {len(rows)} rows")
