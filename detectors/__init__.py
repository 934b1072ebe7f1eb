"""pixeval's built-in detectors (Sp-CFA, CFA, PatchCore, PaDiM, DFM, CFLOW-AD, FastFlow, Reverse
Distillation, EfficientAD), the flow blocks and the backbones they share.

They register through the ``pixeval.detectors`` entry-point group, exactly as third-party plugins do.
"""

#: Marks this package as pixeval's own, so ``pixeval detectors`` can warn when an unrelated
#: PyPI package that is also called ``detectors`` shadows it.
PIXEVAL_BUILTIN = True
