-- The docpost ledger lives beside Airflow's metadata database on the same server.
CREATE USER docpost WITH PASSWORD 'docpost';
CREATE DATABASE docpost OWNER docpost;
