"""The names a setting may use, at the bottom of the house: feature families, the kit's
estimators and the 2016 winners' recipes.

`deepsync.config` checks settings against these without importing a stage; the stages that
implement them (`deepsync.features.families` and `deepsync.features.winners` the families,
`deepsync.train.tabular` the estimators, `deepsync.train.winners` the recipes) register
exactly these names (tests/test_names.py holds the two equal).
"""

from __future__ import annotations

# Feature families in their order: None, cut into the table's windows; else the length in
# seconds of their own windows (the winners' four: `deepsync.features.winners`).
FAMILY_WINDOWS: dict[str, float | None] = {
    "power": None,
    "share": None,  # the power table's log shares (every cache holds them)
    "corr": None,
    "bandcorr": None,
    "coherence": None,
    "entropy": None,
    "hjorth": None,
    "stats": None,
    "rlp": 20.0,
    "xfcoh": 20.0,
    "feng": 30.0,
    "fengmore": 50.0,
}
FAMILIES = tuple(FAMILY_WINDOWS)
# ``all``: the kit's families on the table's windows (share is held in power);
# ``winners``: theirs, on their own windows
GROUPS = {
    "all": tuple(n for n, s in FAMILY_WINDOWS.items() if s is None and n != "share"),
    "winners": tuple(n for n, s in FAMILY_WINDOWS.items() if s is not None),
}

ESTIMATORS = ("logistic", "gbm", "svm", "knn")  # the kit's: ESTIMATOR[:FAMILY+FAMILY]
# The winners' recipes (their settings, their features) and the families each reads
RECIPE_FAMILIES: dict[str, tuple[str, ...]] = {
    "ag_rlp_xgb": ("rlp",),
    "ag_xfcoh_ts_xgb": ("xfcoh",),
    "feng_xgb": ("feng",),
    "feng_knn": ("feng",),
    "feng_knn_more": ("fengmore",),
    "feng_glm_more": ("fengmore",),
    "andriy_svm": ("all",),
}
BASELINE = "ag_rlp_xgb"  # the recipe `baseline` names: the winners' best single model

# How `make submit` calibrates a model's scores (`deepsync.submit.calibration`), in the
# order that breaks ties; ``submit.calibration`` is one of them, or auto (the best)
CALIBRATIONS = ("none", "platt", "prior", "standardise", "rank")
