"""Touchstone: continuous behavioural authentication of workstation sessions.

The shared kernel lives here (wire contracts, configuration, Kafka plumbing, CLI);
the pipeline stages are the sibling packages ``touchstone.collectors``,
``touchstone.streams``, ``touchstone.detectors`` and ``touchstone.sinks``.
"""

__version__ = "0.1.0"
