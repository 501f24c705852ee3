"""The library the flows are made of: sources and loading, dbt runners, alerts."""
