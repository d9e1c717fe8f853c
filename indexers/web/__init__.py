"""The trace web app (``sipscope ui``): search a number, read the ladder of a call, export it.

It lives inside ``indexers/`` because the design card fixes the top-level packages (``sipscope``,
``producers``, ``streams``, ``indexers``) and this app only *reads* what the indexer wrote: it builds on
:mod:`indexers.search` (number search), :mod:`indexers.families` (daily index names) and
:mod:`indexers.es` (the client). Searches it needs that the indexer does not offer (one call with its
correlated legs, alerts, KPI series) are in :mod:`indexers.web.queries`.

Modules::

    app.py        create_app(settings): FastAPI app, error pages, security headers
    auth.py       users file (scrypt hashes), API tokens (SHA-256), signed session cookies
    queries.py    Elasticsearch reads of the app (term/terms/prefix/range queries only)
    ladder.py     pure layout of the ladder diagram (hosts as columns, one arrow per message)
    explain.py    plain-words explanations (infra/web/sip-explanations.yaml) of codes, headers, SDP
    pcapout.py    classic pcap writer: Ethernet / IPv4|IPv6 / UDP|TCP|SCTP frames from indexed messages
    textout.py    the call as plain text
    charts.py     pure layout of the KPI line charts (SVG)
    forms.py      validation of the query-string inputs shared by pages and API
    service.py    what pages and API ask for (trace page, call view, exports, alerts, KPIs), computed once
    pages.py      server-rendered pages (Jinja2, autoescaped)
    api.py        JSON API under /api/ (OpenAPI schema at /openapi.json)
    cli.py        ``sipscope ui`` and ``sipscope users ...``

Nothing is shown without a login: pages redirect to ``/login``, ``/api/*`` and ``/openapi.json`` answer 401.
"""
