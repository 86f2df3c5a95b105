"""facemark's own face detector ("finder"): a small anchor-free network that gives each face a
box, a score and five keypoints (eye centres, nose tip, mouth corners), hence its roll.

- `maps`: what the network's output cells mean, both ways (faces -> training targets, output ->
  faces); numpy only, shared by training and inference.
- `runtime`: the `Detector` that runs the shipped ONNX file (no TensorFlow).
- `network`, `scenes`, `faces`, `training`: how it is built and trained (`facemark[train]`).
"""
