"""auditor: a production-readiness auditor mapped to scaling milestones."""

__version__ = "0.1.0"

from auditor.fingerprint import fingerprint  # noqa: E402,F401

__all__ = ["fingerprint", "__version__"]
