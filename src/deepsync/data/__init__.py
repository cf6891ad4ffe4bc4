"""The data stage: sources (synthetic, kaggle, dir), the segment reader, the segment index."""
