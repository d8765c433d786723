"""FPN-IAIA-BL and its baselines: nn.Modules (no I/O except `pretrained` and `checkpoint`).

Rooms: `registry` (model.arch -> the module under `archs/` that builds it), `base` (what every model is:
ClassifierNet, PrototypeOutput, TrainingPlan), `backbone` (VGG-16 taps), `fpn` and `addon` (necks),
`similarity` (cosine, log-Euclidean), `prototypes` (the prototype layer g), `head` (the last layer h),
`network` (PrototypeNetwork), `blackbox` (the VGG-16 baseline), `build`, `checkpoint`, `pretrained`,
`receptive_field`. Import from the submodules; this package imports nothing, so `registry` stays light.
"""
