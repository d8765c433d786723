"""Data: DICOM reading, importers, synthetic phantoms, crops, negatives, splits, the HDF5 schema."""
