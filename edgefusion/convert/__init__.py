"""Model conversion: PyTorch -> ONNX (:mod:`edgefusion.convert.onnx`), the common start of every backend."""
