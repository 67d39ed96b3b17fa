"""vc_app: one-shot any-to-any voice conversion (AdaIN-VC).

Importing the package is cheap: the heavy pieces (torch, librosa, gradio)
load only when a submodule that needs them is imported.
"""

__version__ = "0.1.0"
