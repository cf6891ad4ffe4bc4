"""`make report`: pictures of the data, the features, the runs and the submissions."""
