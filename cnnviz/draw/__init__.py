"""Drawing: arrays to pictures. Normalisation (``normalize``), tiling (``tiling``), grids with headers (``render``,
``headers``, ``marks``, ``text``), heat over images (``overlay``) and PNG encoding (``png``)."""
