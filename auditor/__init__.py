"""auditor: a production-readiness auditor mapped to scaling milestones."""

__version__ = "0.1.0"
