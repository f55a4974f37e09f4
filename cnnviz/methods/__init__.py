"""Methods: each computes arrays and draws nothing. Feature maps from one extractor (``extract``), kernels
(``filters``), per-filter statistics (``stats``), Grad-CAM (``gradcam``), activation maximisation (``maximize``),
and resizing maps to an image's size (``resample``)."""
