"""The figure the README and the e5 page show: XNLI alignment per layer of multilingual-e5-small, before fine-tuning and
after each method, from the shipped run records (no compute; seconds).

    .venv/bin/python book/probes/readme_figure.py    # writes book/_static/e5-xnli-alignment-by-layer.png
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

from xltlib.report.shipped import shipped_folder  # noqa: E402
from xltlib.store import load_results  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "book" / "_static" / "e5-xnli-alignment-by-layer.png"
METHODS = ["pretrained", "standard", "pgd", "freelb", "rs_rp", "rs_da"]


def main() -> None:
    results = load_results(shipped_folder("e5", REPO))
    rows = results[(results.task == "xnli") & (results.metric == "cosine_gap") & (results.corpus != "tatoeba")]
    rows = rows[rows.tgt_lang != rows.src_lang].astype({"layer": int})
    per_run = rows.groupby(["method", "seed", "layer"]).value.mean().reset_index()  # mean over the 14 targets
    sns.set_theme(style="whitegrid", context="notebook")
    figure, axis = plt.subplots(figsize=(7, 3.6))
    sns.lineplot(per_run, x="layer", y="value", hue="method", hue_order=METHODS, errorbar="sd", marker="o", ax=axis)
    axis.set(
        xlabel="layer (0 = embeddings)",
        ylabel="cosine gap (en ↔ target)",
        title="XNLI, multilingual-e5-small: alignment before and after fine-tuning\n"
        "(mean over 14 targets; ± sd over 3 seeds)",
    )
    axis.legend(title="method", bbox_to_anchor=(1.01, 1), loc="upper left")
    figure.tight_layout()
    figure.savefig(OUT, dpi=110)
    print(f"wrote {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
