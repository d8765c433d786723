"""Pure metric functions on arrays, below training, evaluation and explanations: classification metrics
(`classification`), patient-level bootstrap intervals (`bootstrap`), activation maps and their
interpretability metrics (`activation`), and the warnings read off a metrics dict (`warnings`)."""
