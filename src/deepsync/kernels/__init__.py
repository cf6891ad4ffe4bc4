"""Kaggle kernels: this pipeline as self-contained kernel scripts, pushed, watched, brought home.

`bundle` renders one script per kernel carrying the package and the settings; `dataset`
uploads its input (the feature cache or the segments); `entry` is what runs on Kaggle
(find the inputs, `pipeline.run`, leave the outputs); `local` runs the scripts here with
inputs laid out as on Kaggle; `remote` pushes them, reads their states and brings the
outputs home, merged into one run and one submission.
"""
