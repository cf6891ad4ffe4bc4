"""`make submit`: test predictions to a validated submission, scored locally, sent to Kaggle.

`stage.make_submission` picks the model, blend (`blend`) and cross-patient `calibration`
with the best pooled OOF AUC, writes the `File,Class` CSV (`submission`: read, check,
write), scores it on the local labels (`scoring`, `references`) and records it in the
`ledger`; `kaggle_api` sends it, `leaderboard` sets local CV beside Kaggle's scores.
"""
