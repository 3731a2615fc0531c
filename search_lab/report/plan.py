"""Which evaluation runs each of the report's four questions needs, in full and ``--quick``.

The full plan answers on every feature family, search method, metric and dimension the lab
has; the quick plan keeps the same shape on the cheap hsv / lbp features (seconds, for tests).
"""

from __future__ import annotations

from search_lab.report.runs import Run

TORCHVISION = ("feature=cnn", "feature.download=false")  # never reach for the network here
CNN_REUSED = "cnn 1280-d"  # --quick's Q4 rows on the CNN descriptors (reused, never run)
LITE1 = ("feature.backbone=efficientnet_lite1", "feature.size=240")  # each at its native input
LITE2 = ("feature.backbone=efficientnet_lite2", "feature.size=260")


def _r(
    label: str, group: str, *overrides: str, optional: bool = False, reuse_only: bool = False
) -> Run:
    return Run(label, tuple(overrides), group, optional, reuse_only)


def features(quick: bool) -> list[Run]:
    """Q1: every family, hsv bins and layouts, combinations and weights, CNN variants."""
    runs = [
        _r("hsv", "families"),
        _r("lbp", "families", "feature=lbp"),
        _r("edges", "families", "feature=edges"),
        _r("hsv 4x6x2 bins", "hsv bins", "feature.bins=[4,6,2]"),
        _r("hsv 16x8x4 bins", "hsv bins", "feature.bins=[16,8,4]"),
        _r("hsv grid2x2", "hsv layouts", "feature.layout=grid2x2"),
        _r("hsv + 0.5 lbp", "combinations", "feature=combo"),
        _r("hsv + 1.0 lbp", "combinations", "feature=combo", "feature.weights=[1.0,1.0]"),
    ]
    if quick:
        return runs
    return [
        *runs,
        _r("hog", "families", "feature=hog"),
        _r("cnn", "families", "feature=cnn"),
        _r("hsv 8+12+3 marginals", "hsv bins", "feature.mode=marginal"),
        _r("hsv grid3x3", "hsv layouts", "feature.layout=grid3x3"),
        _r("hsv centre-surround", "hsv layouts", "feature.layout=center_surround"),
        _r("hsv + 0.25 lbp", "combinations", "feature=combo", "feature.weights=[1.0,0.25]"),
        _r(
            "hsv + 0.5 hog",
            "combinations",
            "feature=combo",
            "feature.parts=[hsv,hog]",
            "feature.weights=[1.0,0.5]",
        ),
        _r("best_handcrafted", "combinations", "+experiment=best_handcrafted"),
        _r("best (cnn + hsv)", "combinations", "+experiment=best"),
        _r("cnn avg pooling", "cnn", "feature=cnn", "feature.pooling=avg"),
        _r("cnn max pooling", "cnn", "feature=cnn", "feature.pooling=max"),
        _r("cnn longer side 224", "cnn", "feature=cnn", "feature.size=224"),
        _r("cnn two scales", "cnn", "feature=cnn", "feature.scales=[1.0,1.414]"),
        _r("cnn Lite1 (240)", "cnn", "feature=cnn", *LITE1),
        _r("cnn Lite2 (260)", "cnn", "feature=cnn", *LITE2),
        _r("cnn resnet50", "cnn", *TORCHVISION, "feature.backbone=resnet50", optional=True),
        _r("cnn alexnet fc6", "cnn", *TORCHVISION, "feature.backbone=alexnet", optional=True),
    ]


SEARCH_METHODS = ("exact", "annoy", "kdtree", "hnsw", "faiss_flat", "faiss_ivf", "faiss")


def search(quick: bool) -> list[Run]:
    """Q2: exhaustive against every approximate method on one feature (cnn; hsv if quick)."""
    if quick:
        return [_r(m, "methods", f"index={m}") for m in ("exact", "annoy", "kdtree", "hnsw")]
    names = [*SEARCH_METHODS, "nndescent"]
    return [_r(m, "methods", "feature=cnn", f"index={m}") for m in names]


RERANK_RECIPE = ("+experiment=best",)  # the instance recipe the re-ranking settings were chosen on


def rerank(quick: bool) -> list[Run]:
    """Q2: the instance recipe without and with geometric re-ranking (mAP, cost per query).

    ``--quick`` only cites them once a full report has made them: the SIFT features of every
    image would take longer than the rest of the quick report.
    """
    return [
        _r("without", "re-ranking", *RERANK_RECIPE, reuse_only=quick),
        _r("rerank=sv", "re-ranking", *RERANK_RECIPE, "rerank=sv", reuse_only=quick),
    ]


def metrics(quick: bool) -> list[Run]:
    """Q3: every metric on unit-length and raw hsv histograms, and per feature."""
    raw = ("feature.sqrt=false", "post.l2=false")
    runs = [
        *[_r(m, "unit length (default)", f"metric={m}") for m in ("cosine", "euclidean")],
        *[_r(m, "unit length (default)", f"metric={m}") for m in ("manhattan", "chi2")],
        *[_r(m, "raw histograms", *raw, f"metric={m}") for m in ("cosine", "euclidean")],
        *[_r(m, "raw histograms", *raw, f"metric={m}") for m in ("manhattan", "chi2")],
        _r(
            "hellinger",
            "square root, no L2",
            "feature.sqrt=true",
            "post.l2=false",
            "metric=euclidean",
        ),
        _r("cosine", "square root, no L2", "feature.sqrt=true", "post.l2=false", "metric=cosine"),
    ]
    others = ["lbp"] if quick else ["lbp", "hog", "edges", "cnn"]
    for feat in others:
        runs += [
            _r("cosine", feat, f"feature={feat}"),
            _r("euclidean", feat, f"feature={feat}", "post.l2=false", "metric=euclidean"),
            _r("manhattan", feat, f"feature={feat}", "metric=manhattan"),
            _r("chi2", feat, f"feature={feat}", "metric=chi2", optional=True),
        ]
    return runs


def dimensions(quick: bool) -> tuple[list[Run], int]:
    """Q4: PCA dimension x whitening, Annoy's recall by dimension, AlexNet fc6; the full dim."""
    base, full, dims = (
        ((), 288, [8, 32, 128]) if quick else (("feature=cnn",), 1280, [16, 32, 64, 128, 256, 512])
    )
    runs = [_r(f"{full}-d (no PCA)", "no whitening", *base)]
    for d in dims:
        runs.append(_r(f"PCA {d}", "no whitening", *base, f"post.pca_dim={d}"))
        runs.append(_r(f"PCA {d}", "whitened", *base, f"post.pca_dim={d}", "post.whiten=true"))
    for d in [*dims[::2], None]:
        pca = [f"post.pca_dim={d}"] if d else []
        runs.append(_r(f"{d or full}-d annoy", "annoy", *base, *pca, "index=annoy"))
    runs.append(
        _r("alexnet fc6 4096-d", "alexnet", *TORCHVISION, "feature.backbone=alexnet", optional=True)
    )
    if quick:  # the CNN's own dimension too, from the full report's runs when they exist
        cnn = ("feature=cnn",)
        runs.append(_r("1280-d (no PCA)", CNN_REUSED, *cnn, reuse_only=True))
        white = ("post.pca_dim=128", "post.whiten=true")
        runs.append(_r("PCA 128 (whitened)", CNN_REUSED, *cnn, *white, reuse_only=True))
    return runs, full


def quick_leaves_out() -> str:
    """What ``--quick`` leaves out of the full plan, in words computed from the two plans."""
    made = {r.overrides for r in [*features(True), *metrics(True)]}
    q1 = [r.label for r in features(False) if r.overrides not in made]
    q3 = list(dict.fromkeys(r.group for r in metrics(False) if r.overrides not in made))
    q2 = [r.label for r in search(False) if r.label not in {x.label for x in search(True)}]
    (_, quick_dim), (_, full_dim) = dimensions(True), dimensions(False)
    return (
        f"`--quick` leaves out, to finish in about a minute (the CNN's extraction dominates a "
        f"full cold run): {', '.join(q1)} (question 1); the metrics on {', '.join(q3)} "
        f"(question 3); the search methods {', '.join(q2)} and the re-ranking runs, cited only "
        f"once a full report has made them (question 2). It answers question 2 "
        f"on the {quick_dim}-d hsv histograms instead of the CNN's {full_dim:,}-d descriptors, and "
        f"question 4 on both: hsv here, the CNN's {full_dim:,}-d runs cited once a full report "
        "has made them (and the benchmark's table up to 1,280-d). Every claim speaks only of "
        "the runs shown; `python -m search_lab.report` answers on everything."
    )
