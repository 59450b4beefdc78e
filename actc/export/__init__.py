"""Export actc's IR to other deployment formats (ONNX: ``actc.export.onnx``)."""
