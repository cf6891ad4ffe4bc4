"""DeepSync: seizure prediction from intracranial EEG (Kaggle's Melbourne competition)."""

__version__ = "0.1.0"
