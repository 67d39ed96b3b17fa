"""Evaluation of a voice-conversion model: one protocol, published with the numbers (README "Evaluation").

    pairs (CSV or built from a corpus) -> VoiceConverter -> converted clips
      -> speaker similarity (Resemblyzer), WER (PocketSphinx), MCD (DTW), speed (real-time factor)
    held-out clips -> content codes / speaker vectors -> linear speaker probes (disentanglement)
      -> per_pair.csv, summary.json, report.md + plots, the bars met / not met

Modules: `similarity`, `intelligibility`, `mcd`, `probe` (one metric each),
`runner` (the run), `summary` (aggregates and bars), `report` (files), `extras` (the optional
dependencies); the pairs come from `vc_app.pairs`. The optional packages are imported only where they are used.
"""

from vc_app.pairs import Pair, pairs_from_corpus, read_pairs

__all__ = ["Pair", "pairs_from_corpus", "read_pairs"]
