"""Evaluation of a voice-conversion model: one protocol, published with the numbers (README "Evaluation").

    pairs (CSV or built from a corpus) -> VoiceConverter -> converted clips
      -> speaker similarity (Resemblyzer), WER (PocketSphinx), MCD (DTW), DNSMOS, speed (real-time factor)
    every source -> the naturalness ladder: source, copy-synthesis, self-reconstructions, conversion
      -> DNSMOS, similarity to the source, pause and tail level, WER per rung
    held-out clips -> content codes / speaker vectors -> linear speaker probes (disentanglement)
      -> per_pair.csv, summary.json, report.md + plots, the bars met / not met

Modules: `similarity`, `intelligibility`, `mcd`, `naturalness`, `levels` (pause and tail level), `probe`
(one metric each), `ladder` (the rungs of one source), `runner` (the run), `summary` (aggregates and bars),
`report` (files), `extras` (the optional dependencies); the pairs come from `vc_app.pairs`. The optional
packages are imported only where they are used.
"""

from vc_app.pairs import Pair, pairs_from_corpus, read_pairs

__all__ = ["Pair", "pairs_from_corpus", "read_pairs"]
