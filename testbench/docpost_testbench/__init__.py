"""docpost's test bench: everything that stands in for the world around docpost.

The SF1601 simulator, the letter generator, the embedded stack (moto S3, the simulator, Airflow)
and the demo, the mail sink, the test PKI and sample letters. It imports docpost; docpost never
imports it (tests/unit/test_layout.py).
"""
