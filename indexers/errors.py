"""The exceptions of ``indexers/``, in one tree.

::

    IndexerError                  base of everything raised on purpose here
    ├── SetupError                the index layout could not be installed (Elasticsearch refused or is down)
    ├── QueryError                a search request that cannot be run as given (the CLI prints it, exit 2)
    │   ├── InvalidNumber         the "number" has wildcards, control characters, or nothing to search
    │   └── InvalidTimeRange      unknown --last, bad ISO time, or a range entirely outside retention
    └── KibanaError
        ├── KibanaObjectsInvalid  an NDJSON line does not parse, a reference dangles, a field is missing
        └── KibanaImportError     Kibana's import API refused the objects or could not be reached

Bad *data* is never an exception: a record that cannot be decoded or that Elasticsearch refuses is sent
to ``sip.rejected`` with a reason and counted (see :mod:`indexers.indexer`).
"""

from __future__ import annotations


class IndexerError(Exception):
    """Base class."""


class SetupError(IndexerError):
    """The index layout (templates, lifecycle policy) could not be installed."""


class QueryError(IndexerError, ValueError):
    """A search that cannot be run as given; the message says why, in one line."""


class InvalidNumber(QueryError):
    """The number to search has wildcards, control characters, or is empty/too long."""


class InvalidTimeRange(QueryError):
    """Unknown ``--last`` value, unparsable ISO time, or a range outside the retention period."""


class KibanaError(IndexerError):
    """Base of the Kibana saved-object errors."""


class KibanaObjectsInvalid(KibanaError):
    """The NDJSON objects under ``infra/kibana`` are inconsistent; ``problems`` lists every finding."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the Kibana objects: " + "; ".join(problems[:10]))
        self.problems = problems


class KibanaImportError(KibanaError):
    """Kibana's saved-objects import API refused the objects or could not be reached."""
