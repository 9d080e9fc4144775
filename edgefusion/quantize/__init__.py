"""Post-training INT8 quantization of the student for device targets (``edgefusion quantize``).

:mod:`.calibration` builds calibration/validation frames, one module per
backend quantizes (:mod:`.onnxruntime`, :mod:`.openvino`, :mod:`.litert`,
:mod:`.tensorrt`), :mod:`.accuracy` compares INT8 with FP32 against the
target's gate and :mod:`.pipeline` ties it together into a bundle.
"""
