"""faust-streaming agents: correlate messages into calls and registrations, KPIs, anomaly alerts."""
