"""`make data`: the segments from any source, verified, and the segment index.

`stage.prepare` gets them (`synthetic`: the embedded default, generated in the
competition's layout; `kaggle_source`: the kaggle client; a folder on disk, Kaggle's or
the re-release's layout: `layout`), checks them (`archive`, sizes, labels) and writes
``data/segments.csv`` (`index`: patient, split, class, recording hour, path). `segment`
reads one file (`fastmat`: the fast path for the competition's .mat files).
"""
