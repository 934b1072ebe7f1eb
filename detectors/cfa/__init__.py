"""CFA (Lee, Lee, Song, IEEE Access 2022), faithful to the original code.

``model``: feature fusion, feature cache, CoordConv descriptor; ``loss``: memory bank, loss with
learned radius, softmin score; ``training``: the training loop and map post-processing;
``detector``: the registered :class:`CFA` detector and its presets.
"""

from detectors.cfa.detector import CFA, PRESETS, CFAParams

__all__ = ["CFA", "CFAParams", "PRESETS"]
