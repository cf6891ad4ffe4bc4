"""`make train`: every model of ``train.models`` per patient, on folds grouped by hour.

`stage.train` makes the `folds` (grouped by recording hour), fits each model and writes
its out-of-fold and test predictions and `metrics` to the run folder. Window models on
feature families (`tabular`; `neighbours`: fast KNN) and the 2016 winners' recipes
(`winners`) run on the cache's tables; the CNN (`cnn`, `dataset`, `augment`, `model`:
timm's nets and the kit's compact `spectral` ones) on its stacks, fold by fold or in
processes of their own (`fold_processes`).
"""
