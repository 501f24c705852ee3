"""The library the flows are made of: datasets and sources, loading, dbt runners, alerts."""
