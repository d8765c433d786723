"""Training: data loading, augmentation, devices, optimisation loops, projection, the stage A/B/C schedule."""
