"""Stage `train`: fit a nearest-centroid classifier on the training set."""

from statistics import fmean, pstdev

from common import params, read_rows, write_json

settings = params("train")
features = settings["features"]
rows = read_rows("build/prepared/train.csv")

scale = {}
for name in features:
    column = [float(row[name]) for row in rows]
    spread = pstdev(column) if settings["normalize"] else 1.0
    scale[name] = {"mean": round(fmean(column), 6), "std": round(spread or 1.0, 6)}

centroids = {}
for species in sorted({row["species"] for row in rows}):
    members = [row for row in rows if row["species"] == species]
    centroids[species] = {
        name: round(fmean((float(r[name]) - scale[name]["mean"]) / scale[name]["std"]
                          for r in members), 6)
        for name in features
    }

write_json("build/model.json", {"features": features, "scale": scale,
                                "centroids": centroids})
print(f"train: {len(centroids)} centroids over {len(features)} features")
