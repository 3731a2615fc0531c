"""Images in: datasets and their layouts, splits, distractors, downloads, archives, synthetic and planted images."""
