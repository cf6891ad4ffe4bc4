"""`make submit`: test predictions to a validated submission, scored locally, sent to Kaggle."""
