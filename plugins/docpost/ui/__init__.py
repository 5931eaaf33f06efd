"""The operator's view inside the Airflow UI: find a letter, read a night, act on it, follow the
departments' figures (an Airflow plugin: a FastAPI app mounted on the API server, shown in
Airflow's own navigation and as a tab of ``docpost_nightly``'s runs)."""
