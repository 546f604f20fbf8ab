"""``reviewpulse simulate``: the spike detector on real reviews as simulated streams. A
benchmark, not a test: it prints what the detector catches and what it costs in false alerts,
next to simpler rules on the same streams. Every simulated review is a real review of
``shared/data`` and the **dataset's label stands in for the model's output**: the detector
counts negatives, and what is measured here is the detector, not the model
(``models/packages/*/MODEL_CARD.md`` has the model's accuracy). :mod:`.corpus` loads the
reviews, :mod:`.streams` builds the seeded streams with injected spikes, :mod:`.windows` counts
them into tumbling windows, :mod:`.detectors` runs the alert engine and the simpler rules,
:mod:`.accounting` scores their alerts against the spikes, :mod:`.report` prints the table or
JSON and :mod:`.run` ties them together for the CLI. Everything is seeded; times are event times
from a fixed origin, no clock.
"""
