"""Evaluation of a trained model on the test split: predictions, classification metrics with patient-level
bootstrap CIs (from fpnpipe.metrics), activation precision of its prototypes, plot data and the CSV of
predictions. Rooms: `activations` (the model's maps against the fine annotations), `report` (metrics.json),
`predictions` (predictions.csv), `plots` (DVC plot rows)."""
